"""One seeded simulation run: replicas on a virtual network and clock, faults, then healing.

Everything random comes from one `random.Random(seed)`, events are ordered by (time, insertion
counter), and nothing iterates a hash-ordered set, so a seed replays the very same trace. The
trace hash covers every delivered message (time, receiver, sender, checksum of the bytes).
"""

from __future__ import annotations

import random
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consortium.crypto import KeyPair, sha256
from consortium.errors import LocalError
from consortium.pbft.actions import Actions, CancelTimer, Reply, SetTimer
from consortium.pbft.messages import Commit
from consortium.pbft.replica import Replica
from consortium.pbft.settings import ConsensusConfig
from consortium.pbft.wire import WireCache
from consortium.roles import max_faulty, quorum_size
from consortium.sim.app import SimApp, make_request, request_id_of
from consortium.sim.byzantine import Liar
from consortium.sim.checker import Checker
from consortium.sim.faults import FaultPlan, draw_plan, fault_free_plan
from consortium.sim.network import SimNetwork

CHAIN_ID = "consortium-sim"
SIM_CONSENSUS = ConsensusConfig(
    batch_max_txs=8,
    batch_delay_ms=20,
    checkpoint_interval=4,
    watermark_window=8,
    max_inflight_blocks=3,  # keep pipelined heights under test (users may raise the cap)
    view_change_timeout_ms=1000,
    view_change_timeout_max_ms=8000,
)
CLIENT_RETRY_MS = 1500
CHECK_EVERY_MS = 250


def node_ids(n: int) -> list[str]:
    return [f"n{i:02d}" for i in range(n)]


def node_key(node_id: str) -> KeyPair:
    """Fixed keys per node id: the seed picks faults, not identities."""
    return KeyPair(sha256(b"consortium/sim/node/" + node_id.encode()))


@dataclass
class SimSettings:
    nodes: int = 5
    byzantine: bool = True
    safety_ms: int = 10_000
    liveness_budget_ms: int = 120_000
    clients: int = 3
    requests: int = 30
    late_requests: int = 5
    consensus: ConsensusConfig = SIM_CONSENSUS
    app: str = "model"  # "node": the whole node (sim/whole.py); "model": replicas over SimApp
    faults: bool = True  # False: no network, disk or byzantine fault (`--faults none`)
    sync_ms: int = 5  # the whole node's syncs take 1 to this many simulated ms


def plan_for(rng: random.Random, nodes: list[str], settings: SimSettings) -> FaultPlan:
    if not settings.faults:
        return fault_free_plan()
    return draw_plan(rng, nodes, settings.safety_ms, settings.byzantine)


@dataclass
class RunResult:
    seed: int
    nodes: int
    safety_violations: list[str]
    liveness_failure: str | None
    trace_hash: str
    faults: dict[str, int]
    byzantine: dict[str, int]
    messages: int
    bytes: int
    blocks: int
    requests: int
    latencies_ms: list[int]
    virtual_ms: int
    view_changes: int
    drops: dict[str, int] = field(default_factory=dict)
    app: str = "model"
    committed_txs: int = 0
    business_invariant_violations: list[str] = field(default_factory=list)
    disk_faults: int = 0  # crashes that lost writes the node had not synced
    operations: dict[str, int] = field(default_factory=dict)  # committed, by business operation
    messages_by_kind: dict[str, int] = field(default_factory=dict)  # PBFT messages by type

    @property
    def ok(self) -> bool:
        return (
            not self.safety_violations
            and self.liveness_failure is None
            and not self.business_invariant_violations
        )


@dataclass
class Instance:
    name: str
    node_id: str
    index: int
    key: KeyPair
    app: SimApp
    disk: dict[str, bytes]
    replica: Replica | None = None
    liar: Liar | None = None
    honest: bool = True
    twin: str = ""  # "a" or "b" for the two copies of a twinned node
    timers: dict[str, int] = field(default_factory=dict)


@dataclass
class ClientRequest:
    request: bytes
    client: int
    submitted_at: int
    replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)


class Simulation:
    def __init__(self, seed: int, settings: SimSettings) -> None:
        self.seed = seed
        self.settings = settings
        self.rng = random.Random(seed)
        self.nodes = node_ids(settings.nodes)
        self.f = max_faulty(settings.nodes)
        self.keys = {n: node_key(n).public_key for n in self.nodes}
        self.plan: FaultPlan = plan_for(self.rng, self.nodes, settings)
        self.cache = WireCache()
        self.checker = Checker(quorum=quorum_size(settings.nodes))
        self.net = SimNetwork(self.rng, self.plan)
        self.outstanding: dict[bytes, ClientRequest] = {}
        self.latencies: list[int] = []
        self.accepted = 0
        self.instances: dict[str, Instance] = {}
        self.by_node: dict[str, list[Instance]] = {}
        for index, node in enumerate(self.nodes):
            behaviour = self.plan.byzantine.get(node)
            copies = ["a", "b"] if behaviour == "twins" else [""]
            for twin in copies:
                name = node + twin
                inst = Instance(
                    name,
                    node,
                    index * 2 + (twin == "b"),
                    node_key(node),
                    SimApp(CHAIN_ID, self.keys),
                    {},
                    honest=behaviour is None,
                    twin=twin,
                )
                if behaviour is not None and behaviour != "twins":
                    inst.liar = Liar(behaviour, node, inst.key, CHAIN_ID, self.nodes, self.rng)
                self.instances[name] = inst
                self.by_node.setdefault(node, []).append(inst)

    # ------------------------------------------------------------------ events

    @property
    def now(self) -> int:
        return self.net.now

    @property
    def healed(self) -> bool:
        return self.net.healed

    def _push(self, at: int, kind: str, payload: Any) -> None:
        self.net.push(at, kind, payload)

    def _delay(self, src_node: str, dst_node: str) -> int:
        return self.net.delay(src_node, dst_node)

    def _transmit(self, src: Instance, dst: Instance, data: bytes, label: str) -> None:
        self.net.transmit(src, dst, "deliver", (dst, src, data), len(data), label)

    def _apply(self, inst: Instance, actions: Actions) -> None:
        """Persist, then send, then report: the order a real node follows."""
        for item in actions.persist:
            if item.value is None:
                inst.disk.pop(item.key, None)
            else:
                inst.disk[item.key] = item.value
        sends = actions.send
        if inst.liar is not None and sends:
            sends = inst.liar.rewrite(sends, self.cache.decode)
        for send in sends:
            body = self.cache.decode(send.data).body
            if isinstance(body, Commit):
                self.checker.on_commit_vote(inst.node_id, body.view, body.seq, body.digest)
            targets = [send.to] if send.to is not None else self.nodes
            for node in targets:
                if node == inst.node_id:
                    continue
                for dst in self.by_node.get(node, ()):
                    self._transmit(inst, dst, send.data, type(body).__name__)
        for timer in actions.timers:
            if isinstance(timer, SetTimer):
                inst.timers[timer.name] = timer.at_ms
                self._push(max(timer.at_ms, self.now), "timer", (inst, timer.name, timer.at_ms))
            elif isinstance(timer, CancelTimer):
                inst.timers.pop(timer.name, None)
        if inst.honest:
            for block in actions.committed:
                self.checker.on_commit(inst.name, block)
            if inst.replica is not None:
                self.checker.on_view(inst.name, inst.replica.view)
        for reply in actions.replies:
            self._send_reply(inst, reply)

    def _send_reply(self, inst: Instance, reply: Reply) -> None:
        pending = self.outstanding.get(reply.request_id)
        if pending is None:
            return
        if self.net.is_dropped():
            return
        self._push(self.now + self._delay(inst.node_id, ""), "reply", (inst.node_id, reply))

    # ------------------------------------------------------------------ lifecycle

    def _boot(self, inst: Instance) -> None:
        inst.app.restart()
        inst.replica = Replica(
            inst.node_id,
            self.keys,
            inst.key,
            CHAIN_ID,
            self.settings.consensus,
            inst.app,
            records=inst.disk,
            cache=self.cache,
        )
        inst.timers.clear()
        self._apply(inst, inst.replica.start(self.now))

    def _crash(self, inst: Instance) -> None:
        inst.replica = None
        inst.timers.clear()

    def _heal(self) -> None:
        self.net.healed = True
        for inst in self.instances.values():
            if inst.twin == "b":
                self._crash(inst)  # one copy of a twinned node is left: an ordinary peer
            elif inst.replica is None:
                self._boot(inst)
        start = self.now
        for i in range(self.settings.late_requests):
            self._push(start + self.rng.randint(0, 2000), "submit", i % self.settings.clients)
        self._push(self.now + CHECK_EVERY_MS, "check", None)

    def _submit(self, client: int) -> None:
        nonce = self.net.counter
        request = make_request(f"client-{client}", nonce, b"op-%d" % nonce)
        rid = request_id_of(f"client-{client}", nonce)
        self.checker.submitted.add(rid)
        self.outstanding[rid] = ClientRequest(request, client, self.now)
        target = self.rng.choice(self.nodes)
        for inst in self.by_node[target]:
            self._push(self.now + self._delay("", target), "request", (inst, request))
        self._push(self.now + CLIENT_RETRY_MS, "retry", rid)

    def _retry(self, rid: bytes) -> None:
        pending = self.outstanding.get(rid)
        if pending is None:
            return
        for node in self.nodes:
            for inst in self.by_node[node]:
                if self.healed or self.rng.random() >= self.plan.drop_rate:
                    self._push(self.now + self._delay("", node), "request", (inst, pending.request))
        self._push(self.now + CLIENT_RETRY_MS, "retry", rid)

    def _on_reply(self, node: str, reply: Reply) -> None:
        pending = self.outstanding.get(reply.request_id)
        if pending is None:
            return
        pending.replies[node] = (reply.height, reply.digest)
        votes = list(pending.replies.values())
        if votes.count((reply.height, reply.digest)) > self.f:
            del self.outstanding[reply.request_id]
            self.accepted += 1
            self.latencies.append(self.now - pending.submitted_at)
            self.checker.on_accept(reply.request_id, reply.height, reply.digest)

    def _honest_live(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.honest]

    def _converged(self) -> bool:
        if self.outstanding:
            return False
        height = self.checker.height
        for inst in self._honest_live():
            if inst.replica is None or inst.replica.executed != height:
                return False
        return True

    def _describe(self) -> str:
        states = []
        for inst in self.instances.values():
            r = inst.replica
            tag = "" if inst.honest else f"[{self.plan.byzantine.get(inst.node_id)}]"
            if r is None:
                states.append(f"{inst.name}{tag}:down")
            else:
                mode = "vc" if r.changing else "ok"
                states.append(f"{inst.name}{tag}:v{r.view}{mode}/h{r.executed}/p{len(r.pending)}")
        return (
            f"not converged: height {self.checker.height}, "
            f"{len(self.outstanding)} requests unanswered; " + " ".join(states)
        )

    # ------------------------------------------------------------------ main loop

    def run(self) -> RunResult:
        settings = self.settings
        for inst in self.instances.values():
            self._boot(inst)
        for i in range(settings.requests):
            self._push(
                self.rng.randint(0, settings.safety_ms * 4 // 5), "submit", i % settings.clients
            )
        for crash in self.plan.crashes:
            for inst in self.by_node[crash.node]:
                self._push(crash.at, "crash", inst)
                self._push(crash.restart_at, "restart", inst)
        self._push(settings.safety_ms, "heal", None)
        deadline = settings.safety_ms + settings.liveness_budget_ms
        finished = run_checked(self.checker, lambda: self._loop(deadline), "replica")
        return self._result(None if finished else self._describe())

    def _loop(self, deadline: int) -> bool:
        """Process events until convergence (True) or the deadline (False)."""
        while (event := self.net.pop()) is not None:
            at, kind, payload = event
            if at > deadline:
                return False
            if kind == "deliver":
                dst, src, data = payload
                if dst.replica is None:
                    continue
                self.net.trace.update(
                    b"%d:%d:%d:%d;" % (at, dst.index, src.index, zlib.crc32(data))
                )
                self._apply(dst, dst.replica.receive(data, at))
            elif kind == "timer":
                inst, name, due = payload
                if inst.replica is not None and inst.timers.get(name) == due:
                    del inst.timers[name]
                    self._apply(inst, inst.replica.timer(name, at))
            elif kind == "request":
                inst, request = payload
                if inst.replica is not None:
                    self._apply(inst, inst.replica.submit(request, at))
            elif kind == "reply":
                self._on_reply(*payload)
            elif kind == "submit":
                self._submit(payload)
            elif kind == "retry":
                self._retry(payload)
            elif kind == "crash":
                if not self.healed and payload.replica is not None:
                    self._crash(payload)
            elif kind == "restart":
                if payload.replica is None and not (self.healed and payload.twin == "b"):
                    self._boot(payload)
            elif kind == "heal":
                self._heal()
            elif kind == "check":
                if self._converged():
                    return True
                self._push(at + CHECK_EVERY_MS, "check", None)
        return False

    def _result(self, liveness_failure: str | None) -> RunResult:
        faults, byzantine = fault_tallies(self.plan, self.net)
        drops: dict[str, int] = {}
        view_changes = 0
        for inst in self.instances.values():
            if inst.replica is not None and inst.honest:
                for reason, count in inst.replica.counters.items():
                    drops[reason] = drops.get(reason, 0) + count
                view_changes = max(view_changes, inst.replica.view)
        return RunResult(
            seed=self.seed,
            nodes=self.settings.nodes,
            safety_violations=list(self.checker.violations),
            liveness_failure=liveness_failure,
            trace_hash=self.net.trace.hexdigest(),
            faults=faults,
            byzantine=byzantine,
            messages=self.net.messages,
            bytes=self.net.bytes,
            blocks=self.checker.height,
            requests=len(self.checker.submitted),
            latencies_ms=self.latencies,
            virtual_ms=self.now,
            view_changes=view_changes,
            drops=dict(sorted(drops.items())),
            messages_by_kind=dict(sorted(self.net.messages_by_kind.items())),
        )


def run_checked(checker: Checker, loop: Callable[[], bool], who: str) -> bool:
    """Run an event loop to convergence (True) or its deadline (False). A broken invariant the
    code caught itself, or any other exception, is a violation of this seed, so it can be
    replayed; the run then counts as finished."""
    try:
        return loop()
    except LocalError as exc:
        checker.violations.append(f"{who} invariant broken: {exc}")
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        checker.violations.append(
            f"crash {type(exc).__name__}: {exc} at {where.filename}:{where.lineno}"
        )
    return True


def fault_tallies(plan: FaultPlan, net: SimNetwork) -> tuple[dict[str, int], dict[str, int]]:
    """The faults of a run by kind (planned and counted on the wire) and its byzantine nodes by
    behaviour."""
    faults = plan.kinds()
    faults.update(net.fault_counts)
    byzantine: dict[str, int] = {}
    for behaviour in plan.byzantine.values():
        byzantine[behaviour] = byzantine.get(behaviour, 0) + 1
    return faults, byzantine


def run_seed(seed: int, settings: SimSettings | None = None) -> RunResult:
    settings = settings or SimSettings()
    if settings.app == "node":
        from consortium.sim.whole import WholeNodeSimulation

        return WholeNodeSimulation(seed, settings).run()
    return Simulation(seed, settings).run()
