"""Hypothesis drives the cluster through arbitrary interleavings of client requests, deliveries,
drops, duplicates, partitions, crashes, restarts and timer ticks, and checks the safety
properties of PBFT section 4.5.1 after every step, while node n03 also lies: agreement on every height, exactly-once
execution of client requests, and views that never go back. At the end it heals the network and
demands that every replica converges on the same chain (section 4.5.2, liveness)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from consortium.crypto import sha256
from consortium.pbft.messages import Commit, Prepare, PrePrepare, sign
from consortium.sim.app import SimBlock
from consortium.sim.cluster import Cluster, Envelope
from consortium.sim.runner import CHAIN_ID, node_key

NODES = ["n00", "n01", "n02", "n03"]


class PbftMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster = Cluster(4)
        self.nonce = 0
        self.requests: list[tuple[str, int]] = []

    @rule(node=st.sampled_from(NODES))
    def submit(self, node: str) -> None:
        self.nonce += 1
        self.requests.append(("client", self.nonce))
        self.cluster.submit(node, "client", self.nonce)

    @rule(node=st.sampled_from(NODES), nonce=st.integers(min_value=1, max_value=20))
    def resubmit(self, node: str, nonce: int) -> None:
        """A client retransmits (or replays) a request: it must still execute once."""
        if nonce <= self.nonce:
            self.cluster.submit(node, "client", nonce)

    @precondition(lambda self: self.cluster.queue)
    @rule(index=st.integers(min_value=0, max_value=10_000), count=st.integers(1, 30))
    def deliver(self, index: int, count: int) -> None:
        for _ in range(count):
            if not self.cluster.queue:
                break
            self.cluster.deliver(index)

    @precondition(lambda self: self.cluster.queue)
    @rule(index=st.integers(min_value=0, max_value=10_000))
    def drop(self, index: int) -> None:
        self.cluster.drop(index)

    @precondition(lambda self: self.cluster.queue)
    @rule(index=st.integers(min_value=0, max_value=10_000))
    def duplicate(self, index: int) -> None:
        self.cluster.duplicate(index)

    @rule(group=st.sets(st.sampled_from(NODES), min_size=1, max_size=3))
    def partition(self, group: set[str]) -> None:
        self.cluster.partition(sorted(group), [n for n in NODES if n not in group])

    @rule()
    def heal(self) -> None:
        self.cluster.heal()

    @rule(node=st.sampled_from(NODES))
    def crash(self, node: str) -> None:
        self.cluster.crash(node)

    @rule(node=st.sampled_from(NODES))
    def restart(self, node: str) -> None:
        self.cluster.restart(node)

    @rule(
        victim=st.sampled_from(NODES[:3]),
        kind=st.sampled_from([Prepare, Commit, PrePrepare]),
        view=st.integers(min_value=0, max_value=4),
        seq=st.integers(min_value=1, max_value=6),
    )
    def lie(self, victim: str, kind: type, view: int, seq: int) -> None:
        """n03 is byzantine on top of its honest code: it votes for blocks nobody proposed and
        pre-prepares blocks that do not extend the chain, all signed with its real key."""
        if kind is PrePrepare:
            block = SimBlock(seq, view, "n03", sha256(b"nowhere"), ()).encode()
            body: object = PrePrepare(view, seq, sha256(block), block)
        else:
            body = kind(view, seq, sha256(b"lie %d" % seq))
        data = sign(node_key("n03"), CHAIN_ID, "n03", body).encode()  # type: ignore[arg-type]
        self.cluster.queue.append(Envelope("n03", victim, data))

    @rule(ms=st.sampled_from([10, 100, 500, 1000, 3000]))
    def tick(self, ms: int) -> None:
        self.cluster.advance(ms)

    @invariant()
    def safe(self) -> None:
        problems = self.cluster.safety_problems()
        assert not problems, problems

    def teardown(self) -> None:
        cluster = self.cluster
        cluster.heal()
        for node in NODES:
            cluster.restart(node)
        for nonce in range(1, self.nonce + 1):  # clients retransmit what is unanswered
            for node in NODES:
                cluster.submit(node, "client", nonce)
        cluster.settle(rounds=400, ms=100)
        assert not cluster.safety_problems()
        heights = {node: cluster.replica(node).executed for node in NODES}
        assert len(set(heights.values())) == 1, heights
        executed = {
            rid for node in cluster.nodes.values() for _, _, ids in node.committed for rid in ids
        }
        assert len(executed) == self.nonce, (len(executed), self.nonce, cluster.status())


PbftMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPbftMachine = PbftMachine.TestCase
