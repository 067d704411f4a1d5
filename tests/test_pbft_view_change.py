"""View changes (PBFT section 4.4) and their liveness rules (section 4.5.2)."""

from __future__ import annotations

from dataclasses import replace

from consortium.pbft.actions import SetTimer
from consortium.pbft.messages import (
    Commit,
    FetchProposals,
    NewView,
    PreparedProof,
    Proposal,
    ViewChange,
    sign,
)
from consortium.pbft.replica import VIEW_CHANGE_TIMER, Replica
from consortium.sim.app import GENESIS
from consortium.sim.cluster import SMALL_CONSENSUS, Cluster, Envelope
from consortium.sim.runner import CHAIN_ID, node_key


def view_change_from(node: str, view: int) -> bytes:
    return sign(node_key(node), CHAIN_ID, node, ViewChange(view, 0, GENESIS, (), ())).encode()


def lose_commits_of_view(
    cluster: Cluster, view: int, delivered: list[Envelope] | None = None
) -> None:
    """Deliver everything queued except the COMMITs of `view`: blocks prepare, none commits.
    What is delivered is added to `delivered`."""
    while cluster.queue:
        envelope = cluster.queue[0]
        body = cluster.cache.decode(envelope.data).body
        if isinstance(body, Commit) and body.view == view:
            cluster.drop(0)
        else:
            cluster.deliver(0)
            if delivered is not None:
                delivered.append(envelope)


def test_f_view_changes_do_not_move_a_replica_but_f_plus_one_do() -> None:
    """Section 4.5.2: a replica joins a view change only on f + 1 VIEW-CHANGEs for higher views,
    so the f faulty replicas alone cannot start one; it joins at the smallest such view."""
    cluster = Cluster(4)
    replica = cluster.replica("n01")
    replica.receive(view_change_from("n02", 5), 0)
    assert (replica.view, replica.changing) == (0, False)
    replica.receive(view_change_from("n03", 3), 0)
    assert (replica.view, replica.changing) == (3, True)


def test_timeouts_double_and_stop_at_the_cap() -> None:
    """Section 4.5.2: each view change without progress doubles the timeout, up to the cap."""
    cluster = Cluster(7)  # n00 is not the primary of views 1 to 6
    others = [f"n0{i}" for i in range(1, 7)]
    replica = cluster.replica("n00")
    waits = []
    for view in range(1, 7):
        timers = []
        for node in others:  # a quorum wants each view, but no NEW-VIEW ever arrives
            timers += replica.receive(view_change_from(node, view), cluster.now).timers
        assert replica.view == view and replica.changing
        (due,) = [
            t.at_ms for t in timers if isinstance(t, SetTimer) and t.name == VIEW_CHANGE_TIMER
        ]
        waits.append(due - cluster.now)
        cluster.now = due
    config = cluster.config
    assert waits[:3] == [
        2 * config.view_change_timeout_ms,
        4 * config.view_change_timeout_ms,
        8 * config.view_change_timeout_ms,
    ]
    assert max(waits) == config.view_change_timeout_max_ms


def test_new_view_carries_a_prepared_block_into_the_next_view() -> None:
    """Section 4.4: a block prepared in view 0 is re-proposed by the new primary and committed,
    never replaced by another block at its sequence number."""
    cluster = Cluster(4)
    for node in ("n00", "n01", "n02", "n03"):
        cluster.submit(node, "alice", 1)
        cluster.submit(node, "alice", 2)

    lose_commits_of_view(cluster, 0)
    assert all(cluster.replica(n).slots[1].proof for n in ("n01", "n02", "n03"))
    digest = cluster.replica("n01").slots[1].digest
    cluster.crash("n00")
    while cluster.replica("n01").view == 0 or cluster.replica("n01").changing:
        cluster.advance(100)
        lose_commits_of_view(cluster, 0)
        assert cluster.now < 60_000, "the view change never completed"
    cluster.settle()
    for node in ("n01", "n02", "n03"):
        replica: Replica = cluster.replica(node)
        assert replica.view >= 1 and replica.executed == 1
        assert cluster.nodes[node].committed[0][1] == digest
    assert cluster.safety_problems() == []


def test_replica_left_in_an_old_view_is_brought_forward() -> None:
    """Section 4.4: a replica that missed a view change adopts the NEW-VIEW, which proves
    itself with a quorum of VIEW-CHANGEs, instead of staying behind forever."""
    cluster = Cluster(4)
    cluster.isolate("n03")
    cluster.crash("n00")
    for node in ("n01", "n02"):
        cluster.submit(node, "bob", 1)
    cluster.restart("n00")
    cluster.submit("n00", "bob", 1)
    cluster.crash("n00")
    cluster.settle(rounds=10)
    assert cluster.replica("n03").view == 0
    cluster.heal()
    cluster.restart("n00")
    cluster.settle()
    views = {n: cluster.replica(n).view for n in ("n00", "n01", "n02", "n03")}
    assert len(set(views.values())) == 1 and views["n03"] > 0, views
    assert cluster.safety_problems() == []


def test_view_changes_and_new_views_quote_prepared_blocks_by_digest() -> None:
    """A VIEW-CHANGE's size does not grow with the blocks it reports prepared, nor a NEW-VIEW's
    with the blocks it re-issues: both name them by digest."""
    cluster = Cluster(4, replace(SMALL_CONSENSUS, batch_max_txs=100))
    for nonce in range(1, 101):
        for node in ("n00", "n01", "n02", "n03"):
            cluster.submit(node, "carol", nonce, payload=b"x" * 1000)
    lose_commits_of_view(cluster, 0)
    prepared = cluster.replica("n01").slots[1]
    assert prepared.proof is not None and len(prepared.block) > 100_000
    cluster.crash("n00")
    delivered: list[Envelope] = []
    while cluster.replica("n02").view == 0 or cluster.replica("n02").changing:
        cluster.advance(100)
        lose_commits_of_view(cluster, 0, delivered)
        assert cluster.now < 60_000, "the view change never completed"
    sizes: dict[str, list[int]] = {"ViewChange": [], "NewView": []}
    for envelope in delivered:
        body = cluster.cache.decode(envelope.data).body
        if isinstance(body, ViewChange):
            assert body.prepared and all(not p.preprepare.body.block for p in body.prepared)
            sizes["ViewChange"].append(len(envelope.data))
        elif isinstance(body, NewView):
            reissued = [pp.body for pp in body.preprepares if pp.body.seq == 1]
            assert reissued and all(pp.block == b"" for pp in reissued)
            sizes["NewView"].append(len(envelope.data))
    assert sizes["ViewChange"] and max(sizes["ViewChange"]) < 4_000, sizes
    assert sizes["NewView"] and max(sizes["NewView"]) < 16_000, sizes
    cluster.settle()
    for node in ("n01", "n02", "n03"):
        assert cluster.nodes[node].committed[0][1] == prepared.digest
    assert cluster.safety_problems() == []


def test_a_replica_without_a_reissued_block_fetches_it_from_those_that_prepared_it() -> None:
    """A replica cut off while a block prepared learns it only by digest from the NEW-VIEW: it
    asks the certificate's signers for it, checks it against the digest, enters the view and
    commits the same block as the others."""
    cluster = Cluster(4)
    cluster.isolate("n03")
    for node in ("n00", "n01", "n02", "n03"):
        cluster.submit(node, "dave", 1)
        cluster.submit(node, "dave", 2)
    lose_commits_of_view(cluster, 0)
    digest = cluster.replica("n01").slots[1].digest
    assert cluster.replica("n01").slots[1].proof is not None
    assert cluster.replica("n03")._block_for(1, digest) is None
    cluster.crash("n00")
    cluster.heal()
    delivered: list[Envelope] = []
    while cluster.replica("n03").changing or cluster.replica("n03").view == 0:
        cluster.advance(100)
        lose_commits_of_view(cluster, 0, delivered)
        assert cluster.now < 60_000, "n03 never entered the new view"
    fetched = [
        body.wanted
        for envelope in delivered
        if envelope.src == "n03"
        and isinstance(body := cluster.cache.decode(envelope.data).body, FetchProposals)
    ]
    assert (1, digest) in fetched[0]
    cluster.settle()
    replica = cluster.replica("n03")
    assert replica.stats["proposals_fetched"] >= 1 and replica.executed >= 1
    assert cluster.nodes["n03"].committed[0][1] == digest
    assert cluster.safety_problems() == []


def test_a_proposal_is_kept_only_for_a_digest_that_was_asked_for() -> None:
    """Blocks pushed unasked are not kept, nor a block whose hash is not the digest asked for:
    the wanted entry stays until the right block comes."""
    cluster = Cluster(4)
    replica = cluster.replica("n01")
    app = cluster.replica("n00").app
    wanted = app.propose(1, 0, "n00", [])
    other = cluster.replica("n02").app.propose(1, 1, "n01", [])
    assert app.digest(wanted) != app.digest(other)

    def proposal(block: bytes) -> bytes:
        return sign(node_key("n02"), CHAIN_ID, "n02", Proposal(1, block)).encode()

    replica.receive(proposal(wanted), 0)
    assert replica.counters["unwanted_proposal"] == 1 and not replica.proposals
    replica.wanted_proposals[(1, app.digest(wanted))] = ("n02",)
    replica.receive(proposal(other), 0)
    assert replica.counters["unwanted_proposal"] == 2 and not replica.proposals
    replica.receive(proposal(wanted), 0)
    assert replica.proposals == {1: {app.digest(wanted): wanted}}
    assert replica.wanted_proposals == {}


def test_a_view_change_quoting_a_certificate_with_its_block_is_dropped() -> None:
    """Certificates are quoted by digest: one that carries its block would let a VIEW-CHANGE grow
    with the block size, so it is refused; the same certificate by digest is taken."""
    cluster = Cluster(4)
    for node in ("n00", "n01", "n02", "n03"):
        cluster.submit(node, "erin", 1)
        cluster.submit(node, "erin", 2)
    lose_commits_of_view(cluster, 0)
    proof = cluster.replica("n01").slots[1].proof
    assert proof is not None and proof.preprepare.body.block

    def view_change(quoted: PreparedProof) -> bytes:
        body = ViewChange(1, 0, GENESIS, (), (quoted,))
        return sign(node_key("n01"), CHAIN_ID, "n01", body).encode()

    receiver = cluster.replica("n02")
    receiver.receive(view_change(proof), cluster.now)
    assert receiver.counters["bad_prepared_proof"] == 1
    assert "n01" not in receiver.view_changes.get(1, {})
    receiver.receive(view_change(proof.without_block()), cluster.now)
    assert receiver.counters["bad_prepared_proof"] == 1
    assert "n01" in receiver.view_changes[1]
