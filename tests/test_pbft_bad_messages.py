"""Bad input from peers is dropped, counted by reason, never counted toward a quorum, and
leaves the replica's state exactly as it was (PBFT section 4.1: messages are authenticated, and
section 4.2: replicas accept a message only in the right view and within the watermarks)."""

from __future__ import annotations

import pytest

from consortium.crypto import KeyPair, sha256
from consortium.pbft.messages import (
    Commit,
    FetchBlocks,
    NewView,
    Prepare,
    PrePrepare,
    Signed,
    ViewChange,
    sign,
)
from consortium.pbft.replica import MAX_VIEW_JUMP, Replica
from consortium.sim.app import GENESIS, SimBlock, make_request
from consortium.sim.cluster import Cluster
from consortium.sim.runner import CHAIN_ID, node_key


def fingerprint(replica: Replica) -> tuple:
    """Everything a dropped message must not change."""
    return (
        replica.view,
        replica.changing,
        replica.executed,
        replica.stable_seq,
        tuple(
            (s.seq, s.digest, s.validated, s.prepared, s.prepare_sent, s.commit_sent)
            for s in sorted(replica.slots.values(), key=lambda s: s.seq)
        ),
        tuple(sorted((k, tuple(sorted(v))) for k, v in replica.prepare_votes.items())),
        tuple(
            sorted(
                (seq, view, tuple(sorted(votes)))
                for seq, by_view in replica.commit_votes.items()
                for view, votes in by_view.items()
            )
        ),
        tuple(sorted((k, tuple(sorted(v))) for k, v in replica.view_changes.items())),
        tuple(replica.pending),
    )


@pytest.fixture
def cluster() -> Cluster:
    """n01 has accepted the primary's PRE-PREPARE for seq 1 and nothing else."""
    cluster = Cluster(4)
    cluster.submit("n00", "alice", 1)
    cluster.submit("n00", "alice", 2)
    cluster.queue = [e for e in cluster.queue if e.dst == "n01"]
    assert len(cluster.queue) == 1
    cluster.deliver()
    cluster.queue.clear()
    return cluster


def signed_by(node: str, body: object) -> bytes:
    return sign(node_key(node), CHAIN_ID, node, body).encode()  # type: ignore[arg-type]


def assert_dropped(cluster: Cluster, data: bytes, reason: str) -> None:
    replica = cluster.replica("n01")
    before = fingerprint(replica)
    count = replica.counters[reason]
    actions = replica.receive(data, cluster.now)
    assert replica.counters[reason] == count + 1, dict(replica.counters)
    assert fingerprint(replica) == before
    assert not actions.send and not actions.persist and not actions.committed


def digest_of_seq1(cluster: Cluster) -> bytes:
    return cluster.replica("n01").slots[1].digest


def test_forged_signature_is_dropped(cluster: Cluster) -> None:
    """Section 4.1: a PREPARE claiming n02 but signed by n03 is not n02's vote."""
    forged = sign(node_key("n03"), CHAIN_ID, "n03", Prepare(0, 1, digest_of_seq1(cluster)))
    data = Signed("n02", forged.body, forged.signature).encode()
    assert_dropped(cluster, data, "bad_signature")


def test_signature_of_another_message_type_is_dropped(cluster: Cluster) -> None:
    """Section 4.1: signatures are domain-separated, a PREPARE's does not sign a COMMIT."""
    prepare = sign(node_key("n02"), CHAIN_ID, "n02", Prepare(0, 1, digest_of_seq1(cluster)))
    data = Signed("n02", Commit(0, 1, digest_of_seq1(cluster)), prepare.signature).encode()
    assert_dropped(cluster, data, "bad_signature")


def test_non_member_is_dropped(cluster: Cluster) -> None:
    """Section 4.1: only the n replicas vote."""
    outsider = KeyPair(sha256(b"mallory"))
    data = sign(outsider, CHAIN_ID, "mallory", Prepare(0, 1, digest_of_seq1(cluster))).encode()
    assert_dropped(cluster, data, "non_member")


def test_duplicate_vote_counts_once(cluster: Cluster) -> None:
    """Section 4.2: a quorum is of distinct replicas; a replayed COMMIT adds nothing."""
    replica = cluster.replica("n01")
    digest = digest_of_seq1(cluster)
    replica.receive(signed_by("n02", Prepare(0, 1, digest)), cluster.now)
    assert replica.slots[1].prepared  # pre-prepare + two prepares: a quorum of 3
    commit = signed_by("n02", Commit(0, 1, digest))
    replica.receive(commit, cluster.now)
    assert set(replica.commit_votes[1][0]) == {"n01", "n02"}
    assert_dropped(cluster, commit, "duplicate_vote")
    assert replica.executed == 0
    replica.receive(signed_by("n03", Commit(0, 1, digest)), cluster.now)
    assert replica.executed == 1


def test_conflicting_vote_is_dropped(cluster: Cluster) -> None:
    """Section 4.2: a replica votes once per (view, seq); a second digest is equivocation."""
    replica = cluster.replica("n01")
    replica.receive(signed_by("n02", Prepare(0, 1, digest_of_seq1(cluster))), cluster.now)
    assert_dropped(cluster, signed_by("n02", Prepare(0, 1, sha256(b"other"))), "conflicting_vote")


def test_wrong_view_is_dropped(cluster: Cluster) -> None:
    """Section 4.2: backups accept messages only for their current view."""
    assert_dropped(cluster, signed_by("n02", Prepare(3, 1, digest_of_seq1(cluster))), "future_view")
    far = signed_by("n02", Prepare(10**12, 1, digest_of_seq1(cluster)))
    assert_dropped(cluster, far, "far_future_view")


def test_stale_view_is_dropped() -> None:
    """Section 4.2: after a view change, votes of the old view are stale."""
    cluster = Cluster(4)
    cluster.crash("n00")
    for node in ("n01", "n02", "n03"):
        cluster.submit(node, "bob", 1)
    cluster.deliver_all()
    cluster.advance(1000)
    cluster.deliver_all()
    assert cluster.replica("n01").view == 1
    assert_dropped(cluster, signed_by("n02", Prepare(0, 1, sha256(b"x"))), "stale_view")


def test_sequence_outside_the_window_is_dropped(cluster: Cluster) -> None:
    """Section 4.2: sequence numbers must lie between the low and high watermarks."""
    window = cluster.config.watermark_window
    assert_dropped(cluster, signed_by("n02", Prepare(0, window + 1, sha256(b"x"))), "out_of_window")
    assert_dropped(cluster, signed_by("n02", Commit(0, 0, sha256(b"x"))), "out_of_window")


def test_digest_that_does_not_match_the_block_is_dropped(cluster: Cluster) -> None:
    """Section 4.2: the pre-prepare's digest must be the digest of the block it carries."""
    block = SimBlock(2, 0, "n00", sha256(b"p"), (make_request("alice", 9, b"op"),)).encode()
    pp = PrePrepare(0, 2, sha256(b"not the block"), block)
    assert_dropped(cluster, signed_by("n00", pp), "digest_mismatch")


def test_preprepare_from_a_backup_is_dropped(cluster: Cluster) -> None:
    """Section 4.2: only the primary of the view assigns sequence numbers."""
    block = SimBlock(2, 0, "n02", GENESIS, ()).encode()
    assert_dropped(cluster, signed_by("n02", PrePrepare(0, 2, sha256(block), block)), "not_primary")


def test_second_preprepare_for_a_sequence_number_is_dropped(cluster: Cluster) -> None:
    """Section 4.2: one pre-prepare per (view, seq); a second one is the primary equivocating."""
    block = SimBlock(1, 0, "n00", GENESIS, ()).encode()
    data = signed_by("n00", PrePrepare(0, 1, sha256(block), block))
    assert_dropped(cluster, data, "equivocation")


def test_undecodable_bytes_are_dropped(cluster: Cluster) -> None:
    """Section 4.1: garbage from the bus is rejected by the decoder, never raised."""
    assert_dropped(cluster, b"\xc1not msgpack", "malformed")
    assert_dropped(cluster, b"", "malformed")


def test_view_change_with_an_absurd_view_cannot_start_a_storm(cluster: Cluster) -> None:
    """Section 4.4: a VIEW-CHANGE far ahead is ignored, so one liar cannot push views up."""
    vc = ViewChange(MAX_VIEW_JUMP + 5, 0, GENESIS, (), ())
    assert_dropped(cluster, signed_by("n02", vc), "far_future_view")


def test_view_change_with_a_forged_checkpoint_is_dropped(cluster: Cluster) -> None:
    """Section 4.4: a VIEW-CHANGE must prove its stable checkpoint with a quorum."""
    vc = ViewChange(1, 8, sha256(b"made up"), (), ())
    assert_dropped(cluster, signed_by("n02", vc), "bad_checkpoint_proof")


def test_new_view_without_a_quorum_is_dropped(cluster: Cluster) -> None:
    """Section 4.4: a NEW-VIEW must carry a quorum of VIEW-CHANGE messages."""
    assert_dropped(cluster, signed_by("n01", NewView(1, (), ())), "own_message")
    assert_dropped(cluster, signed_by("n02", NewView(6, (), ())), "bad_new_view")
    assert_dropped(cluster, signed_by("n03", NewView(6, (), ())), "not_primary")


def test_a_vote_published_by_another_node_is_a_replay(cluster: Cluster) -> None:
    """Section 4.1: a compromised node login may resend what it overheard; a vote arriving on
    another node's topic than its signer's is dropped, however well signed."""
    replica = cluster.replica("n01")
    vote = signed_by("n02", Prepare(0, 1, digest_of_seq1(cluster)))
    before = fingerprint(replica)
    actions = replica.receive(vote, cluster.now, publisher="n03")
    assert replica.counters["relayed_by_other"] == 1
    assert fingerprint(replica) == before and not actions.send
    replica.receive(vote, cluster.now, publisher="n02")
    assert "n02" in replica.prepare_votes[(0, 1)]


def test_a_fetch_is_answered_at_most_once_per_interval() -> None:
    """Section 4.3 (state transfer): blocks are large, so a replayed or repeated FetchBlocks
    cannot make a replica send them again and again."""
    cluster = Cluster(4)
    for seq in (1, 2):
        cluster.submit("n00", "alice", seq)
        cluster.deliver_all()
        cluster.advance(100)
        cluster.deliver_all()
    replica = cluster.replica("n01")
    assert replica.executed >= 1
    fetch = signed_by("n02", FetchBlocks(1))
    first = replica.receive(fetch, cluster.now)
    assert any(s.to == "n02" for s in first.send)
    again = replica.receive(fetch, cluster.now + 1)
    assert replica.counters["fetch_too_often"] == 1 and not again.send
