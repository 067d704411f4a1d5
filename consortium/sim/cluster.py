"""A hand-driven cluster: the same replicas, but every delivery, drop and tick is a command.

The seeded simulator decides what happens next; this cluster lets a test (a scripted scenario or
a Hypothesis state machine) decide instead, one step at a time, and print what it sees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from consortium.pbft.actions import Actions, CancelTimer, SetTimer
from consortium.pbft.messages import Signed
from consortium.pbft.replica import Replica
from consortium.pbft.settings import ConsensusConfig
from consortium.pbft.wire import WireCache
from consortium.roles import max_faulty, quorum_size
from consortium.sim.app import SimApp, make_request, request_id_of
from consortium.sim.runner import CHAIN_ID, node_ids, node_key

SMALL_CONSENSUS = ConsensusConfig(
    batch_max_txs=2,
    batch_delay_ms=10,
    checkpoint_interval=2,
    watermark_window=4,
    max_inflight_blocks=3,  # keep pipelined heights under test (users may raise the cap)
    view_change_timeout_ms=1000,
    view_change_timeout_max_ms=8000,
)


@dataclass(frozen=True, slots=True)
class Envelope:
    src: str
    dst: str
    data: bytes

    def describe(self, cache: WireCache) -> str:
        signed = cache.decode(self.data)
        return f"{self.src}->{self.dst} {describe(signed)}"


def describe(signed: Signed) -> str:
    """A one-line, deterministic rendering of a message for recorded test output."""
    body = signed.body
    name = type(body).__name__
    fields = []
    for attr in ("view", "new_view", "seq", "stable_seq", "executed", "from_height"):
        if hasattr(body, attr):
            fields.append(f"{attr}={getattr(body, attr)}")
    if hasattr(body, "digest"):
        fields.append(f"digest={body.digest.hex()[:8]}")  # type: ignore[union-attr]
    if name == "ViewChange":
        fields.append(f"prepared={len(body.prepared)}")  # type: ignore[union-attr]
    if name == "NewView":
        fields.append(f"preprepares={len(body.preprepares)}")  # type: ignore[union-attr]
    if name == "FetchProposals":
        fields.append(f"wanted={len(body.wanted)}")  # type: ignore[union-attr]
    if name == "CommittedBlocks":
        fields.append(f"blocks={len(body.blocks)}")  # type: ignore[union-attr]
    return f"{name}({', '.join(fields)})"


def describe_actions(actions: Actions, cache: WireCache) -> list[str]:
    """One line per action, in the order the replica emitted each kind: the driver persists
    first, then sends, then arms timers, so only the order within a kind is observable."""
    lines = []
    for item in actions.persist:
        lines.append(f"persist {item.key}" if item.value is not None else f"delete {item.key}")
    for send in actions.send:
        lines.append(f"send {send.to or '*'} {describe(cache.decode(send.data, remember=False))}")
    for timer in actions.timers:
        if isinstance(timer, SetTimer):
            lines.append(f"timer set {timer.name} @{timer.at_ms}")
        else:
            lines.append(f"timer cancel {timer.name}")
    for block in actions.committed:
        lines.append(f"commit {block.height} digest={block.certificate.block_hash.hex()[:8]}")
    return lines


@dataclass
class Node:
    node_id: str
    app: SimApp
    disk: dict[str, bytes] = field(default_factory=dict)
    replica: Replica | None = None
    timers: dict[str, int] = field(default_factory=dict)
    committed: list[tuple[int, bytes, tuple[bytes, ...]]] = field(default_factory=list)
    max_view: int = 0


class Cluster:
    def __init__(self, n: int = 4, config: ConsensusConfig = SMALL_CONSENSUS) -> None:
        self.ids = node_ids(n)
        self.f = max_faulty(n)
        self.q = quorum_size(n)
        self.config = config
        self.keys = {i: node_key(i).public_key for i in self.ids}
        self.cache = WireCache()
        self.now = 0
        self.queue: list[Envelope] = []
        self.blocked: set[tuple[str, str]] = set()
        self.submitted: set[bytes] = set()
        self.replies: dict[bytes, set[str]] = {}
        self.nodes = {i: Node(i, SimApp(CHAIN_ID, self.keys)) for i in self.ids}
        self.trace: list[str] | None = None
        """When a list, every input appends a header line and its actions (see `_step`)."""
        for node in self.nodes.values():
            self._boot(node)

    # -- lifecycle
    def _boot(self, node: Node) -> None:
        node.app.restart()
        node.timers.clear()
        node.replica = Replica(
            node.node_id,
            self.keys,
            node_key(node.node_id),
            CHAIN_ID,
            self.config,
            node.app,
            records=node.disk,
            cache=self.cache,
        )
        self._step(node, f"{node.node_id} start", lambda r: r.start(self.now))

    def crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.replica = None
        node.timers.clear()
        self.queue = [e for e in self.queue if e.dst != node_id]

    def restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.replica is None:
            self._boot(node)

    def isolate(self, node_id: str) -> None:
        for other in self.ids:
            if other != node_id:
                self.blocked.add((node_id, other))
                self.blocked.add((other, node_id))

    def partition(self, *groups: list[str]) -> None:
        side = {node: i for i, group in enumerate(groups) for node in group}
        for a in self.ids:
            for b in self.ids:
                if a != b and side.get(a, -1) != side.get(b, -1):
                    self.blocked.add((a, b))

    def heal(self) -> None:
        self.blocked.clear()

    # -- inputs
    def _step(self, node: Node, label: str, call: Callable[[Replica], Actions]) -> None:
        """Give the node's replica one input and carry out its actions; when tracing, record
        the input, its actions in order, and the inputs the replica dropped (by reason)."""
        replica = node.replica
        assert replica is not None
        before = Counter(replica.counters)
        actions = call(replica)
        if self.trace is not None:
            self.trace.append(label)
            self.trace += ["  " + line for line in describe_actions(actions, self.cache)]
            for reason, count in sorted((replica.counters - before).items()):
                self.trace.append(f"  dropped {reason}" + (f" x{count}" if count > 1 else ""))
        self._apply(node, actions)

    def _apply(self, node: Node, actions: Actions) -> None:
        for item in actions.persist:
            if item.value is None:
                node.disk.pop(item.key, None)
            else:
                node.disk[item.key] = item.value
        for send in actions.send:
            targets = [send.to] if send.to is not None else self.ids
            for dst in targets:
                if dst != node.node_id and (node.node_id, dst) not in self.blocked:
                    self.queue.append(Envelope(node.node_id, dst, send.data))
        for timer in actions.timers:
            if isinstance(timer, SetTimer):
                node.timers[timer.name] = timer.at_ms
            elif isinstance(timer, CancelTimer):
                node.timers.pop(timer.name, None)
        for block in actions.committed:
            node.committed.append((block.height, block.certificate.block_hash, block.request_ids))
        for reply in actions.replies:
            self.replies.setdefault(reply.request_id, set()).add(node.node_id)
        if node.replica is not None:
            node.max_view = max(node.max_view, node.replica.view)

    def submit(self, node_id: str, client: str, nonce: int, payload: bytes = b"op") -> bytes:
        rid = request_id_of(client, nonce)
        self.submitted.add(rid)
        node = self.nodes[node_id]
        if node.replica is not None:
            request = make_request(client, nonce, payload)
            label = f"{node_id} submit {client} {nonce}"
            self._step(node, label, lambda r: r.submit(request, self.now))
        return rid

    def offer(self, node_id: str, client: str, nonce: int) -> bytes:
        """A request as a client broadcasts it on the bus: each replica gets it directly and
        does not forward it (`submit_many(..., forward=False)`)."""
        rid = request_id_of(client, nonce)
        self.submitted.add(rid)
        node = self.nodes[node_id]
        if node.replica is not None:
            request = make_request(client, nonce, b"op")
            label = f"{node_id} offer {client} {nonce}"
            self._step(node, label, lambda r: r.submit_many((request,), self.now, forward=False))
        return rid

    def deliver(self, index: int = 0) -> Envelope | None:
        if not self.queue:
            return None
        envelope = self.queue.pop(index % len(self.queue))
        node = self.nodes[envelope.dst]
        label = envelope.describe(self.cache)
        if node.replica is None:
            if self.trace is not None:
                self.trace.append(f"{label} (lost: {envelope.dst} is down)")
        elif (envelope.src, envelope.dst) in self.blocked:
            if self.trace is not None:
                self.trace.append(f"{label} (lost: link blocked)")
        else:
            self._step(node, label, lambda r: r.receive(envelope.data, self.now))
        return envelope

    def deliver_all(self, limit: int = 100_000) -> int:
        count = 0
        while self.queue and count < limit:
            self.deliver(0)
            count += 1
        return count

    def drop(self, index: int = 0) -> None:
        if self.queue:
            self.queue.pop(index % len(self.queue))

    def duplicate(self, index: int = 0) -> None:
        if self.queue:
            self.queue.append(self.queue[index % len(self.queue)])

    def fire(self, node_id: str, name: str) -> bool:
        """Fire one timer now (the clock jumps to its deadline if that is later)."""
        node = self.nodes[node_id]
        due = node.timers.get(name)
        if node.replica is None or due is None:
            return False
        self.now = max(self.now, due)
        del node.timers[name]
        label = f"{node_id} timer {name} @{self.now}"
        self._step(node, label, lambda r: r.timer(name, self.now))
        return True

    def advance(self, ms: int) -> None:
        """Move the clock, firing due timers in deadline order (ties by node, then name)."""
        end = self.now + ms
        while True:
            due = [
                (at, node_id, name)
                for node_id, node in self.nodes.items()
                for name, at in node.timers.items()
                if at <= end and node.replica is not None
            ]
            if not due:
                break
            _, node_id, name = min(due)
            self.fire(node_id, name)
        self.now = end

    def settle(self, rounds: int = 100, ms: int = 100) -> None:
        """Deliver everything, let timers run, repeat: the network after healing."""
        for _ in range(rounds):
            self.deliver_all()
            self.advance(ms)
        self.deliver_all()

    # -- observations
    def replica(self, node_id: str) -> Replica:
        replica = self.nodes[node_id].replica
        assert replica is not None, f"{node_id} is down"
        return replica

    def status(self) -> list[str]:
        lines = []
        for node_id, node in self.nodes.items():
            r = node.replica
            if r is None:
                lines.append(f"{node_id}: down")
                continue
            head = node.committed[-1][1].hex()[:8] if node.committed else "genesis"
            mode = " view-change" if r.changing else ""
            lines.append(
                f"{node_id}: view={r.view}{mode} primary={r.primary} executed={r.executed} "
                f"stable={r.stable_seq} slots={len(r.slots)} pending={len(r.pending)} head={head}"
            )
        return lines

    def safety_problems(self) -> list[str]:
        """Agreement, exactly-once and validity over what every node committed."""
        problems = []
        canonical: dict[int, bytes] = {}
        seen_at: dict[bytes, int] = {}
        for node_id, node in self.nodes.items():
            for expected, (height, digest, ids) in enumerate(node.committed, start=1):
                if height != expected:
                    problems.append(f"{node_id} committed {height} out of order")
                if canonical.setdefault(height, digest) != digest:
                    problems.append(f"{node_id} disagrees at height {height}")
                for rid in ids:
                    if rid not in self.submitted:
                        problems.append(f"{node_id} executed an unsubmitted request")
                    if seen_at.setdefault(rid, height) != height:
                        problems.append(f"a request executed at two heights ({node_id})")
            replica = node.replica
            if replica is not None and replica.view < node.max_view:
                problems.append(f"{node_id} went back to view {replica.view}")
        return problems
