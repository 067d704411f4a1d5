"""View changes (PBFT section 4.4) and their liveness rules (section 4.5.2)."""

from __future__ import annotations

from consortium.pbft.actions import SetTimer
from consortium.pbft.messages import Commit, ViewChange, sign
from consortium.pbft.replica import VIEW_CHANGE_TIMER, Replica
from consortium.sim.app import GENESIS
from consortium.sim.cluster import Cluster
from consortium.sim.runner import CHAIN_ID, node_key


def view_change_from(node: str, view: int) -> bytes:
    return sign(node_key(node), CHAIN_ID, node, ViewChange(view, 0, GENESIS, (), ())).encode()


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

    def lose_view_zero_commits() -> None:
        while cluster.queue:
            body = cluster.cache.decode(cluster.queue[0].data).body
            if isinstance(body, Commit) and body.view == 0:
                cluster.drop(0)
            else:
                cluster.deliver(0)

    lose_view_zero_commits()
    assert all(cluster.replica(n).slots[1].proof for n in ("n01", "n02", "n03"))
    digest = cluster.replica("n01").slots[1].digest
    cluster.crash("n00")
    while cluster.replica("n01").view == 0 or cluster.replica("n01").changing:
        cluster.advance(100)
        lose_view_zero_commits()
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
