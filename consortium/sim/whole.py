"""The whole node in the simulator: n `NodeCore`s over the real ledger, contracts and store.

This is the code users run, minus the asyncio shell: admission and its queue, publisher checks,
commit notices and answers to clients, `LedgerApp` over the real chain, persistence and restore
through the real store, and `effects.carry_out` carrying out every step into the node's `Outbox`
(group commit: a sync takes 1 to `sync_ms` simulated ms, and what waits for it leaves when it
completes, while the node goes on). Each node's store lives on a `SimDisk` that loses what was not
synced when the node crashes. Clients sign real business transactions (`sim/business.py`),
broadcast them, retransmit, and accept an outcome on f+1 matching signed notices. The network
faults and byzantine nodes are the model simulator's; crashes strike between steps, in a step
that writes (before its sync) or while a sync runs (after the step's sends were queued).

Besides the consensus checker, the run ends with business checks on every honest store: money
conserved and the audit's consistency rules, every acknowledged transaction committed exactly once
at the height it was acknowledged at, and `ledger verify` passing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from consortium import codec
from consortium.client.protocol import ClientCore, ClientStep, Outcome
from consortium.config import NetworkConfig, parse_config
from consortium.contracts.audit import audit_report
from consortium.crypto import KeyPair, sha256
from consortium.devnet import network_dict
from consortium.errors import RemoteError
from consortium.keys import KeyDirectory
from consortium.ledger.block import Receipt, split_block
from consortium.ledger.ledger import Ledger
from consortium.ledger.signatures import VerifyJob, verify_jobs
from consortium.ledger.tx import SignedTransaction, decode_transaction
from consortium.ledger.verify import verify_open_store
from consortium.node.core import NodeCore, NodeStep, Publish
from consortium.node.effects import carry_out
from consortium.node.outbox import Outbox
from consortium.notices import Answer, CommitNotice, decode_answer
from consortium.pbft.actions import Send
from consortium.pbft.messages import Commit, PrePrepare
from consortium.pbft.settings import ConsensusConfig
from consortium.pbft.wire import WireCache
from consortium.roles import max_faulty, quorum_size
from consortium.sim.business import BusinessWorkload
from consortium.sim.byzantine import Liar
from consortium.sim.checker import Checker
from consortium.sim.disk import MemoryStore, PowerLoss, SimDisk
from consortium.sim.network import SimNetwork
from consortium.sim.runner import RunResult, SimSettings, fault_tallies, plan_for, run_checked
from consortium.transport import topics

CHAIN_ID = "consortium-sim"
NODE_CONSENSUS = ConsensusConfig(
    batch_max_txs=32,
    batch_delay_ms=20,
    checkpoint_interval=4,
    watermark_window=8,
    max_inflight_blocks=3,
    view_change_timeout_ms=1000,
    view_change_timeout_max_ms=8000,
)
CLIENT_RETRY_MS = 1500
CHECK_EVERY_MS = 250
SIGNERS = 8


def sim_network(nodes: int, consensus: ConsensusConfig) -> tuple[NetworkConfig, KeyDirectory]:
    """The default network's shape with fixed keys: the seed picks faults, not identities."""
    raw = network_dict(nodes, load_signers=SIGNERS, chain_id=CHAIN_ID)
    config = dataclasses.replace(
        parse_config(raw, Path("sim/nodes.yaml")), consensus=consensus, durable=True
    )
    keys = KeyDirectory(
        {m.id: member_key(m.id).public_key for m in config.members},
        {n.id: node_key(n.id).public_key for n in config.nodes},
    )
    return config, keys


def member_key(member_id: str) -> KeyPair:
    return KeyPair(sha256(b"consortium/sim/member/" + member_id.encode()))


def node_key(node_id: str) -> KeyPair:
    return KeyPair(sha256(b"consortium/sim/node/" + node_id.encode()))


@dataclass
class Host:
    """One simulated machine: a node core, its disk, its outbox and timers. It is the timer
    service `carry_out` needs and what the outbox sends through; what it sends goes through the
    simulation's network."""

    name: str
    node_id: str
    index: int
    sim: WholeNodeSimulation
    disk: SimDisk
    honest: bool = True
    twin: str = ""
    liar: Liar | None = None
    core: NodeCore | None = None
    outbox: Outbox | None = None
    boots: int = 0  # a sync still running when the node crashed must not complete after
    timers: dict[str, int] = field(default_factory=dict)
    crash_in_next_step: bool = False  # power fails in the next step that writes, before its sync
    crash_in_next_sync: bool = False  # power fails while the next sync runs, before it completes
    published: int = 0

    def publish(self, item: Publish) -> None:
        self.published += 1
        self.sim.route(self, item)

    def start_sync(self, number: int) -> None:
        assert self.core is not None
        store = self.core.ledger.store
        assert isinstance(store, MemoryStore)
        image, commits_before = store.begin_sync()
        net, rng = self.sim.net, self.sim.rng
        took = rng.randint(1, self.sim.settings.sync_ms)
        net.push(net.now + took, "synced", (self, self.boots, number, image, commits_before))
        if self.crash_in_next_sync:  # after this step's sends, before the sync completes
            self.crash_in_next_sync = False
            net.push(net.now + rng.randrange(took), "power_cut", (self, self.boots))

    def set_timer(self, name: str, at_ms: int) -> None:
        self.timers[name] = at_ms
        self.sim.net.push(max(at_ms, self.sim.net.now), "timer", (self, name, at_ms))

    def cancel_timer(self, name: str) -> None:
        self.timers.pop(name, None)


@dataclass(frozen=True, slots=True)
class _Waiting:
    stx: SignedTransaction
    signer: str
    client: str
    submitted_at: int


@dataclass(frozen=True, slots=True)
class _ClientEnd:
    """The clients' side of the network, one endpoint per client login."""

    node_id: str
    twin: str = ""


class WholeNodeSimulation:
    def __init__(self, seed: int, settings: SimSettings) -> None:
        self.seed = seed
        self.settings = settings
        self.rng = random.Random(seed)
        self.config, self.keys = sim_network(settings.nodes, settings.consensus)
        self.nodes = list(self.config.node_ids)
        self.f = max_faulty(len(self.nodes))
        self.plan = plan_for(self.rng, self.nodes, settings)
        self.net = SimNetwork(self.rng, self.plan)
        self.cache = WireCache()
        self.verifier = MemoVerifier()
        self.checker = Checker(quorum=quorum_size(len(self.nodes)))
        self.workload = BusinessWorkload(
            self.config, {m.id: member_key(m.id) for m in self.config.members}, self.rng
        )
        self.hosts: dict[str, Host] = {}
        self.by_node: dict[str, list[Host]] = {}
        for index, node in enumerate(self.nodes):
            behaviour = self.plan.byzantine.get(node)
            for twin in ["a", "b"] if behaviour == "twins" else [""]:
                host = Host(
                    node + twin,
                    node,
                    index * 2 + (twin == "b"),
                    self,
                    SimDisk(node + twin),
                    honest=behaviour is None,
                    twin=twin,
                )
                if behaviour is not None and behaviour != "twins":
                    host.liar = Liar(
                        behaviour,
                        node,
                        node_key(node),
                        CHAIN_ID,
                        self.nodes,
                        self.rng,
                        corrupt_block=corrupt_ledger_block,
                    )
                self.hosts[host.name] = host
                self.by_node.setdefault(node, []).append(host)
        self.clients = [f"load-{i}" for i in range(settings.clients)]
        self.client_ends = {c: _ClientEnd(c) for c in self.clients}
        self.client_cores = {
            c: ClientCore(
                CHAIN_ID,
                self.keys.node_keys,
                len(self.nodes),
                c,
                retransmit_ms=CLIENT_RETRY_MS,
                decode=self._decode_notice,
            )
            for c in self.clients
        }
        self.waiting: dict[bytes, _Waiting] = {}
        self.acknowledged: dict[bytes, int] = {}
        self.latencies: list[int] = []
        self.notices: dict[bytes, Answer] = {}

    # ------------------------------------------------------------------ hosts

    def _boot(self, host: Host) -> None:
        ledger = Ledger(
            self.config,
            self.keys,
            Path(host.name),
            verifier=self.verifier,
            store=host.disk.open(),
        )
        host.core = NodeCore(
            self.config,
            self.keys,
            host.node_id,
            node_key(host.node_id),
            ledger,
            wire_cache=self.cache,
        )
        host.boots += 1
        host.outbox = Outbox(ledger.store, host.start_sync, host.publish)
        host.timers.clear()
        if host.honest:
            self._resumed(host.name, ledger)
        self._carry(host, host.core.start(self.net.now))

    def _resumed(self, name: str, ledger: Ledger) -> None:
        """A restarted node resumes at what its disk kept: never below what it reported (that
        was synced), and what it holds beyond (commits the disk kept unsynced) must agree."""
        reported = self.checker.heights.get(name, 0)
        head = ledger.head.height
        if head < reported:
            self.checker.violations.append(
                f"{name} restarted at height {head} below its synced height {reported}"
            )
            self.checker.heights[name] = head
            return
        for height in range(reported + 1, head + 1):
            stored = ledger.store.block(height)
            assert stored is not None
            ids = tuple(decode_transaction(raw).tx_id for raw in stored.txs)
            self.checker.on_committed(name, height, stored.hash, ids)

    def _crash(self, host: Host) -> None:
        host.crash_in_next_step = host.crash_in_next_sync = False
        if host.core is not None:
            host.core.ledger.close()
        host.core = None
        host.outbox = None  # what waited for a sync dies with the node
        host.timers.clear()
        host.disk.crash(self.rng)

    def _carry(self, host: Host, step: NodeStep) -> None:
        """The node's step, carried out as the node process does, then observed once what it
        sent has left. A crash due in a step that writes strikes once the step ran: the power
        fails at its first write or sync (whatever `carry_out` sent before that point has left),
        and the disk keeps only what earlier syncs made durable, or one of the later commits."""
        core, outbox = host.core, host.outbox
        assert core is not None and outbox is not None
        seen = self._observation(host, core, step)
        if host.crash_in_next_step and (step.sync or step.records):
            host.disk.power_fails = True
            sent_before = host.published
            with contextlib.suppress(PowerLoss):
                carry_out(step, outbox, outbox, host)
            if host.published != sent_before:  # the world heard this step: it must hold
                seen()
            self._crash(host)
            return
        carry_out(step, outbox, outbox, host)
        outbox.after_sent(seen)

    def _synced(self, host: Host, boots: int, number: int, image: bytes, before: int) -> None:
        if host.core is None or host.outbox is None or host.boots != boots:
            return  # the node crashed while syncing: the sync did not happen
        host.disk.complete_sync(image, before)
        host.outbox.synced(number)

    def _observation(self, host: Host, core: NodeCore, step: NodeStep) -> Callable[[], None]:
        """What the rest of the world can know of an honest node once the step's sends have
        left: its commits (their notices) and its view."""
        if not host.honest:
            return lambda: None
        committed = [(height, core.app.recent[height]) for height in step.committed]
        view = core.replica.view

        def seen() -> None:
            for height, block in committed:
                self.checker.on_committed(host.name, height, block.hash, block.tx_ids)
            self.checker.on_view(host.name, view)

        return seen

    # ------------------------------------------------------------------ the bus

    def route(self, host: Host, item: Publish) -> None:
        parsed = topics.parse_topic(CHAIN_ID, item.topic)
        if parsed.kind is topics.TopicKind.PBFT:
            sends = [Send(parsed.dest, item.payload)]
            if host.liar is not None:
                sends = host.liar.rewrite(sends, self.cache.decode)
            for send in sends:
                self._send_pbft(host, send)
        elif parsed.kind is topics.TopicKind.COMMIT:
            payload = item.payload if host.liar is None else self._lie_to_clients(host, item)
            if payload is None:
                return
            for client in [parsed.dest] if parsed.dest else self.clients:
                if client in self.client_ends:
                    end = self.client_ends[client]
                    message = (client, item.topic, payload)
                    self.net.transmit(host, end, "notice", message, len(payload))

    def _lie_to_clients(self, host: Host, item: Publish) -> bytes | None:
        """A byzantine node tells clients, now and then, that their transactions went into a
        block that does not exist, signed with its own key: f+1 matching notices must be
        needed to believe it. A silent one tells them nothing. Its other answers to clients
        (refusals, unknowns) go out as they are."""
        assert host.liar is not None
        if host.liar.behaviour == "silent":
            return None
        if self.rng.random() < 0.5:
            return item.payload
        notice = self._decode_notice(item.payload, CHAIN_ID, self.keys.node_keys)
        if not isinstance(notice, CommitNotice):  # a refusal or an unknown: passed on as it is
            return item.payload
        fake = sha256(notice.block_hash + b"a block that does not exist")
        lie = CommitNotice(notice.node, notice.height, fake, notice.business_day, notice.receipts)
        host.liar.lies += 1
        return lie.signed(CHAIN_ID, node_key(host.node_id))

    def _send_pbft(self, host: Host, send: Send) -> None:
        body = self.cache.decode(send.data).body
        label = type(body).__name__
        if isinstance(body, Commit):
            self.checker.on_commit_vote(host.node_id, body.view, body.seq, body.digest)
        targets = [send.to] if send.to is not None else self.nodes
        for node in targets:
            if node == host.node_id:
                continue
            topic = (
                topics.pbft_topic(CHAIN_ID, host.node_id)
                if send.to is None
                else topics.pbft_direct_topic(CHAIN_ID, host.node_id, node)
            )
            for dst in self.by_node.get(node, ()):
                message = (dst, host, topic, send.data)
                self.net.transmit(host, dst, "deliver", message, len(send.data), label)

    # ------------------------------------------------------------------ clients

    def _submit_next(self) -> None:
        """Every signer with nothing in flight sends its next transaction."""
        busy = {w.signer for w in self.waiting.values()}
        for signer, stx in self.workload.next_transactions(busy):
            client = self.clients[zlib.crc32(stx.tx_id) % len(self.clients)]
            self.checker.submitted.add(stx.tx_id)
            self.waiting[stx.tx_id] = _Waiting(stx, signer, client, self.net.now)
            self._client_step(client, self.client_cores[client].submit([stx], self.net.now))

    def _client_step(self, client: str, step: ClientStep) -> None:
        """What the client core asks for: its requests broadcast to every node, its decided
        outcomes handed to the workload, a tick when its next retransmission is due."""
        end = self.client_ends[client]
        for item in step.publish:
            parsed = topics.parse_topic(CHAIN_ID, item.topic)
            kind = "request" if parsed.kind is topics.TopicKind.REQUEST else "ask"
            for node in self.nodes:
                for dst in self.by_node[node]:
                    payload = (dst, item.topic, item.payload)
                    self.net.transmit(end, dst, kind, payload, len(item.payload))
        for outcome in step.decided:
            if isinstance(outcome, Outcome):
                self._accepted(outcome)
        if step.wake_at_ms is not None:
            self.net.push(step.wake_at_ms, "client_tick", client)

    def _accepted(self, outcome: Outcome) -> None:
        waiting = self.waiting.pop(outcome.tx_id, None)
        if waiting is None:
            return
        self.acknowledged[outcome.tx_id] = outcome.height
        self.latencies.append(self.net.now - waiting.submitted_at)
        self.checker.on_accept(outcome.tx_id, outcome.height, outcome.block_hash)
        receipt = Receipt(outcome.tx_id, outcome.ok, outcome.reason, outcome.result)
        self.workload.on_outcome(waiting.signer, waiting.stx, receipt)

    def _decode_notice(self, payload: bytes, chain_id: str, node_keys: dict[str, bytes]) -> Answer:
        """One broadcast reaches every client: check it once."""
        notice = self.notices.get(payload)
        if notice is None:
            notice = self.notices[payload] = decode_answer(payload, chain_id, node_keys)
        return notice

    # ------------------------------------------------------------------ run

    def run(self) -> RunResult:
        settings = self.settings
        for host in self.hosts.values():
            self._boot(host)
        for at in range(0, settings.safety_ms, 100):
            self.net.push(at, "submit", None)
        for crash in self.plan.crashes:
            for host in self.by_node[crash.node]:
                self.net.push(crash.at, "crash", host)
                self.net.push(crash.restart_at, "restart", host)
        self.net.push(settings.safety_ms, "heal", None)
        deadline = settings.safety_ms + settings.liveness_budget_ms

        def loop_and_check() -> bool:
            converged = self._loop(deadline)
            if converged:
                self._final_checks()
            return converged

        finished = run_checked(self.checker, loop_and_check, "node")
        return self._result(None if finished else self._describe())

    def _loop(self, deadline: int) -> bool:
        while (event := self.net.pop()) is not None:
            at, kind, payload = event
            if at > deadline:
                return False
            if kind == "deliver":
                dst, src, topic, data = payload
                if dst.core is None:
                    continue
                self.net.trace.update(
                    b"%d:%d:%d:%d;" % (at, dst.index, src.index, zlib.crc32(data))
                )
                self._carry(dst, dst.core.on_message(topic, data, at))
            elif kind == "synced":
                self._synced(*payload)
            elif kind == "timer":
                host, name, due = payload
                if host.core is not None and host.timers.get(name) == due:
                    del host.timers[name]
                    self._carry(host, host.core.on_timer(name, at))
            elif kind in ("request", "ask"):
                host, topic, message = payload
                if host.core is not None:
                    self._carry(host, host.core.on_message(topic, message, at))
                    while host.core.has_queued_requests:
                        self._carry(host, host.core.admit_next(at))
            elif kind == "notice":
                client, topic, message = payload
                self._client_step(client, self.client_cores[client].on_message(topic, message, at))
            elif kind == "client_tick":
                self._client_step(payload, self.client_cores[payload].tick(at))
            elif kind == "submit":
                self._submit_next()
            elif kind == "crash":
                if not self.net.healed and payload.core is not None:
                    strike = self.rng.random()
                    if strike < 1 / 3:
                        payload.crash_in_next_step = True
                    elif strike < 2 / 3:
                        payload.crash_in_next_sync = True
                    else:
                        self._crash(payload)
            elif kind == "power_cut":
                host, boots = payload
                if not self.net.healed and host.core is not None and host.boots == boots:
                    self._crash(host)
            elif kind == "restart":
                if payload.core is None and not (self.net.healed and payload.twin == "b"):
                    self._boot(payload)
            elif kind == "heal":
                self._heal()
            elif kind == "check":
                if self._converged():
                    return True
                self.net.push(at + CHECK_EVERY_MS, "check", None)
        return False

    def _heal(self) -> None:
        self.net.healed = True
        for host in self.hosts.values():
            host.crash_in_next_step = host.crash_in_next_sync = False
            if host.twin == "b":
                if host.core is not None:
                    host.core.ledger.close()
                host.core = None  # one copy of a twinned node is left: an ordinary peer
                host.timers.clear()
            elif host.core is None:
                self._boot(host)
        self.net.push(self.net.now + 100, "submit", None)
        self.net.push(self.net.now + CHECK_EVERY_MS, "check", None)

    def _converged(self) -> bool:
        self._submit_next()
        if self.waiting or not self.workload.done():
            return False
        height = self.checker.height
        for host in self.hosts.values():
            if host.honest and (host.core is None or host.core.ledger.head.height != height):
                return False
        return True

    def _final_checks(self) -> None:
        """Business invariants and the acknowledged outcomes, on every honest store."""
        for host in self.hosts.values():
            if not host.honest or host.core is None:
                continue
            ledger = host.core.ledger
            report = audit_report(ledger.chain.state)
            if report["total_money"] != self.workload.genesis_money:
                self.workload.violations.append(
                    f"{host.name}: money {report['total_money']} != genesis "
                    f"{self.workload.genesis_money}"
                )
            for problem in report["problems"][:5]:
                self.workload.violations.append(f"{host.name}: audit: {problem}")
            for tx_id, height in self.acknowledged.items():
                locations = ledger.store.tx_locations(tx_id)
                if [h for h, _ in locations] != [height]:
                    self.checker.violations.append(
                        f"{host.name}: acknowledged tx {tx_id.hex()[:16]} at {height} is stored "
                        f"at {[h for h, _ in locations]}"
                    )
            verified = verify_open_store(self.config, self.keys, ledger.store, self.verifier)
            if not verified.ok:
                self.checker.violations.append(f"{host.name}: ledger verify: {verified.errors[0]}")
            stale = stale_consensus_records(ledger.store.consensus_records())
            if stale:
                self.checker.violations.append(
                    f"{host.name}: {len(stale)} consensus records at or below the stable "
                    f"checkpoint are kept forever, e.g. {stale[0]}"
                )

    def _describe(self) -> str:
        states = []
        for host in self.hosts.values():
            tag = "" if host.honest else f"[{self.plan.byzantine.get(host.node_id)}]"
            core = host.core
            if core is None:
                states.append(f"{host.name}{tag}:down")
                continue
            r = core.replica
            mode = "vc" if r.changing else "ok"
            states.append(f"{host.name}{tag}:v{r.view}{mode}/h{r.executed}/p{len(r.pending)}")
        return (
            f"not converged: height {self.checker.height}, {len(self.waiting)} transactions "
            f"unanswered, {self.workload.remaining()} still to send; " + " ".join(states)
        )

    def _result(self, liveness_failure: str | None) -> RunResult:
        faults, byzantine = fault_tallies(self.plan, self.net)
        drops: dict[str, int] = {}
        view_changes = 0
        for host in self.hosts.values():
            if host.core is not None and host.honest:
                for reason, count in host.core.status(self.net.now)["rejected_by_reason"].items():
                    drops[reason] = drops.get(reason, 0) + count
                view_changes = max(view_changes, host.core.replica.view)
        return RunResult(
            seed=self.seed,
            nodes=len(self.nodes),
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
            virtual_ms=self.net.now,
            view_changes=view_changes,
            drops=dict(sorted(drops.items())),
            app="node",
            committed_txs=len(self.acknowledged),
            business_invariant_violations=list(self.workload.violations),
            disk_faults=sum(h.disk.lost_writes for h in self.hosts.values()),
            operations=dict(sorted(self.workload.operations.items())),
            messages_by_kind=dict(sorted(self.net.messages_by_kind.items())),
        )


def stale_consensus_records(records: dict[str, bytes]) -> list[str]:
    """Pre-prepares and prepared certificates at or below the stable checkpoint: nothing reads
    them again, so a store that keeps them grows with the chain's history and so does every
    restart, which reads all consensus records back."""
    if "stable" not in records:
        return []
    stable = codec.decode(records["stable"])[0]
    return [
        key
        for key in sorted(records)
        if key.startswith(("pp/", "proof/")) and int(key.split("/")[1]) <= stable
    ]


class MemoVerifier:
    """Transaction signatures checked once for all simulated nodes: a verdict is a pure function
    of (key, message, signature), so remembering it changes no outcome, only the wall time."""

    def __init__(self) -> None:
        self.verdicts: dict[VerifyJob, bool] = {}

    def start(self, jobs: Sequence[VerifyJob]) -> Callable[[], list[bool]]:
        verdicts = self.verify_many(jobs)
        return lambda: verdicts

    def verify_many(self, jobs: Sequence[VerifyJob]) -> list[bool]:
        out = []
        for job in jobs:
            verdict = self.verdicts.get(job)
            if verdict is None:
                verdict = self.verdicts[job] = verify_jobs([job])[0]
            out.append(verdict)
        return out


def corrupt_ledger_block(pp: PrePrepare, rng: random.Random) -> bytes:
    """A ledger block with a wrong parent or height, or bytes that are no block at all."""
    choice = rng.randrange(3)
    if choice == 0:
        return b"\x93garbage" + pp.block[:8]
    try:
        header, txs = split_block(pp.block)
    except RemoteError:
        return pp.block
    if choice == 1:
        header = dataclasses.replace(header, parent_hash=sha256(b"x"))
    else:
        header = dataclasses.replace(header, height=header.height + 1)
    return codec.encode_flat((header.to_wire(), list(txs)))


def run_whole_node_seed(seed: int, settings: SimSettings | None = None) -> RunResult:
    settings = settings or SimSettings(consensus=NODE_CONSENSUS)
    return WholeNodeSimulation(seed, settings).run()
