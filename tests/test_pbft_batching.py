"""Batching and exactly-once execution (PBFT section 5.1.4 batches requests; section 4.1
requires that a request is executed at most once)."""

from __future__ import annotations

from dataclasses import replace

from consortium.sim.cluster import SMALL_CONSENSUS, Cluster

NODES = ("n00", "n01", "n02", "n03")


def blocks_of(cluster: Cluster, node: str = "n01") -> list[int]:
    return [len(ids) for _, _, ids in cluster.nodes[node].committed]


def test_full_batches_go_at_once_and_the_rest_after_the_batch_delay() -> None:
    """Section 5.1.4 (batching): a full batch is proposed at once, a partial one after a delay."""
    cluster = Cluster(4)  # batch_max_txs = 2
    for nonce in range(1, 6):
        cluster.submit("n00", "alice", nonce)
    cluster.deliver_all()
    assert blocks_of(cluster) == [2, 2]
    cluster.advance(SMALL_CONSENSUS.batch_delay_ms)
    cluster.deliver_all()
    assert blocks_of(cluster) == [2, 2, 1]


def test_blocks_respect_the_byte_limit() -> None:
    """Section 5.1.4 (batching): a block never exceeds batch_max_bytes, whatever is pending."""
    cluster = Cluster(4, replace(SMALL_CONSENSUS, batch_max_txs=50, batch_max_bytes=100))
    for nonce in range(1, 7):
        cluster.submit("n00", "alice", nonce)
    cluster.advance(SMALL_CONSENSUS.batch_delay_ms)
    cluster.settle(rounds=5)
    sizes = blocks_of(cluster)
    assert sum(sizes) == 6 and max(sizes) < 6  # each request is about 40 bytes


def test_a_retransmitted_request_executes_once_and_is_answered_again() -> None:
    """Section 4.1 (client retransmission): replicas resend the reply, never re-execute."""
    cluster = Cluster(4)
    rid = cluster.submit("n00", "alice", 1)
    cluster.submit("n00", "alice", 2)
    cluster.deliver_all()
    assert blocks_of(cluster) == [2]
    cluster.replies.clear()
    for node in NODES:  # the client did not hear back and retransmits to everybody
        cluster.submit(node, "alice", 1)
    cluster.settle(rounds=5)
    assert blocks_of(cluster) == [2]
    assert cluster.replies[rid] == set(NODES)
    assert cluster.safety_problems() == []


def test_backups_forward_requests_to_the_primary() -> None:
    """Section 4.1 (client): a request sent to a backup reaches the primary and commits."""
    cluster = Cluster(4)
    cluster.submit("n02", "bob", 1)
    cluster.submit("n03", "bob", 2)
    cluster.deliver_all()
    cluster.advance(SMALL_CONSENSUS.batch_delay_ms)
    cluster.deliver_all()
    assert sum(blocks_of(cluster)) == 2
    assert all(cluster.replica(n).executed >= 1 for n in NODES)
