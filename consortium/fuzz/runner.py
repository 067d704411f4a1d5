"""One fuzzing run against the live network, with the checks that make it a test.

While a background workload keeps submitting, a compromised node (its broker login and node key)
floods its own pbft topics with hostile consensus messages, a client login floods its request
topic with hostile requests, and members send transactions that break business rules. With a
broker per organisation, the compromised node's own broker is also SIGKILLed for the middle third
of the run and started again (the one faulty organisation loses its broker too). Afterwards:
the workload kept being acknowledged and a fresh transaction still commits; the nodes' reject
counters grew; every rule-breaker got a failed receipt; the state changed only where the workload
and the rule-breakers' nonces explain it; every ledger verifies and the heads agree; and the
nodes' resident memory is reported before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from consortium.chaos.checker import CheckReport, check_ledgers
from consortium.chaos.runner import (
    converge,
    network_primary,
    require_running,
    wait_for_statuses,
)
from consortium.chaos.workload import AckWorkload
from consortium.client.client import ChainClient, ClientLogin, Outcome
from consortium.client.wallet import Wallet
from consortium.client.watch import StatusWatcher
from consortium.config import NetworkConfig
from consortium.crypto import sha256
from consortium.errors import ConfigError, RemoteError
from consortium.fuzz.consensus_inputs import BusView, ConsensusFuzzer
from consortium.fuzz.memory import nodes_rss_kib
from consortium.fuzz.request_inputs import RequestFuzzer, sign_rule_breakers
from consortium.keys import KeyDirectory, load_keypair
from consortium.ledger.ledger import store_path
from consortium.ledger.store import Store
from consortium.node import broker
from consortium.transport import credentials, topics
from consortium.transport.mqtt import IncomingMessage, MqttTransport

Progress = Callable[[str], None]
TICK_S = 0.01
SETTLE_S = 30.0
MEMORY_GROWTH_LIMIT_KIB = 256 * 1024
BACKGROUND_CLIENTS = ("load-0", "load-1")
RULE_BREAKER_CLIENT = "load-6"
HOSTILE_CLIENT = "load-7"
OWN_ECHOES = 20_000
BREAKER_ROLES = frozenset({"supplier", "warehouse", "collection_agency"})


@dataclass(frozen=True, slots=True)
class FuzzSettings:
    duration_s: float = 30.0
    seed: int = 0
    victim: str | None = None  # the compromised node; default: the current primary
    consensus_rate: float = 150.0  # hostile consensus messages per second
    request_rate: float = 40.0  # hostile request messages per second
    breaker_pause_s: float = 0.2
    heavy: bool = True  # megabyte arrays that cost every node a long decode


@dataclass(slots=True)
class FuzzReport:
    seed: int
    duration_s: float
    victim: str = ""
    victim_was_primary: bool = False
    sent: Counter[str] = field(default_factory=Counter)
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_by_node: dict[str, dict[str, int]] = field(default_factory=dict)
    committed_during: int = 0
    committed_after: bool = False
    broker_outages: int = 0
    rule_breakers_sent: int = 0
    rule_breakers_failed: int = 0
    rule_breakers_succeeded: list[str] = field(default_factory=list)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    rss_before_kib: dict[str, int | None] = field(default_factory=dict)
    rss_after_kib: dict[str, int | None] = field(default_factory=dict)
    unexplained_state_changes: list[str] = field(default_factory=list)
    check: CheckReport = field(default_factory=CheckReport)

    @property
    def memory_growth_kib(self) -> int:
        growth = [
            after - before
            for node, after in self.rss_after_kib.items()
            if after is not None and (before := self.rss_before_kib.get(node)) is not None
        ]
        return max(growth, default=0)

    @property
    def problems(self) -> list[str]:
        found = list(self.check.problems)
        if self.committed_during == 0:
            found.append("nothing was acknowledged while fuzzing")
        if not self.committed_after:
            found.append("a transaction after fuzzing was not acknowledged")
        if sum(self.rejected.values()) == 0:
            found.append("no node counted a rejected input")
        found += [f"rule breaker succeeded: {why}" for why in self.rule_breakers_succeeded]
        found += [f"unexplained state change: {k}" for k in self.unexplained_state_changes[:5]]
        if self.memory_growth_kib > MEMORY_GROWTH_LIMIT_KIB:
            found.append(f"a node grew by {self.memory_growth_kib} KiB")
        if not self.check.ok and not self.check.problems:
            found.append("ledger check failed")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "duration_s": self.duration_s,
            "victim": self.victim,
            "victim_was_primary": self.victim_was_primary,
            "sent": dict(self.sent),
            "sent_total": sum(self.sent.values()),
            "rejected": self.rejected,
            "rejected_total": sum(self.rejected.values()),
            "rejected_by_node": self.rejected_by_node,
            "committed_during": self.committed_during,
            "committed_after": self.committed_after,
            "broker_outages": self.broker_outages,
            "rule_breakers_sent": self.rule_breakers_sent,
            "rule_breakers_failed": self.rule_breakers_failed,
            "rule_breakers_succeeded": self.rule_breakers_succeeded,
            "failure_reasons": dict(self.failure_reasons.most_common(20)),
            "rss_before_kib": self.rss_before_kib,
            "rss_after_kib": self.rss_after_kib,
            "memory_growth_kib": self.memory_growth_kib,
            "unexplained_state_changes": self.unexplained_state_changes,
            "lost": self.check.lost,
            "duplicated": self.check.duplicated,
            "heads_equal": self.check.heads_equal,
            "ledgers_verified": self.check.ledgers_verified,
            "problems": self.problems,
            "ok": self.ok,
        }


def split_signers(config: NetworkConfig) -> tuple[list[str], list[str]]:
    """(background workload signers, rule-breaking signers): disjoint, so that every state
    change can be attributed; the regulator and banks never break rules (they may do much)."""
    loads = [m.id for m in config.members if m.id.startswith("load-") and m.role == "supplier"]
    suppliers = [m.id for m in config.members if m.role == "supplier" and m.id not in loads]
    background = loads or suppliers[:-1]
    breakers = [
        m.id
        for m in config.members
        if m.role in BREAKER_ROLES and m.id not in background and m.id not in config.node_ids
    ]
    if not background or not breakers:
        raise ConfigError(
            f"{config.path}: fuzzing needs at least two suppliers, or load signers, and a member"
            " that is not a node"
        )
    return background, breakers


def read_state(config: NetworkConfig, node_id: str) -> dict[str, Any]:
    store = Store(store_path(config, node_id), readonly=True)
    try:
        return dict(store.load_state().items())
    finally:
        store.close()


def unexplained_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], signers: set[str], drafters: set[str]
) -> list[str]:
    """Changed keys that neither a signer's nonce nor a workload draft accounts for."""
    found = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        if key.startswith("nonce/") and key.removeprefix("nonce/") in signers:
            continue
        value = after.get(key)
        is_draft = isinstance(value, dict) and value.get("drafter") in drafters
        if key.startswith("rcv/") and key not in before and is_draft:
            continue
        found.append(key)
    return found


def _deltas(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for node, counts in after.items():
        old = before.get(node, {})
        grown = {r: c - old.get(r, 0) for r, c in counts.items() if c - old.get(r, 0) > 0}
        out[node] = dict(sorted(grown.items()))
    return out


class _Fuzzing:
    """The concurrent parts of one run, sharing the report."""

    def __init__(
        self, config: NetworkConfig, keys: KeyDirectory, settings: FuzzSettings, report: FuzzReport
    ) -> None:
        self.config = config
        self.keys = keys
        self.settings = settings
        self.report = report
        self.rng = random.Random(settings.seed)
        self.bus = BusView()
        self.stop = asyncio.Event()
        self.extra_acknowledged: dict[bytes, Outcome] = {}
        self.own_order: deque[bytes] = deque(maxlen=OWN_ECHOES)
        self.own_payloads: set[bytes] = set()

    def overhear(self, message: IncomingMessage) -> None:
        """Keep what the nodes said (the victim's own honest messages too), not our echoes."""
        if sha256(message.payload) in self.own_payloads:
            return
        with contextlib.suppress(RemoteError):
            parsed = topics.parse_topic(self.config.chain_id, message.topic)
            if parsed.kind is topics.TopicKind.PBFT:
                self.bus.overhear(message.payload)

    def remember_own(self, payload: bytes) -> None:
        digest = sha256(payload)
        if len(self.own_order) == self.own_order.maxlen:
            self.own_payloads.discard(self.own_order[0])
        self.own_order.append(digest)
        self.own_payloads.add(digest)

    async def broker_outage(self, victim: str) -> None:
        """The victim organisation's broker down for the middle third of the run."""
        if not self.config.per_node_brokers:
            return
        third = self.settings.duration_s / 3
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), third)
        if self.stop.is_set():
            return
        await asyncio.to_thread(broker.stop_running_broker, self.config, victim, kill=True)
        self.report.broker_outages += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), third)
        finally:
            await asyncio.to_thread(broker.restart_broker, self.config, victim)

    async def flood(
        self, attacker: MqttTransport, hostile_client: MqttTransport, workload: AckWorkload
    ) -> None:
        chain = self.config.chain_id
        victim = self.report.victim
        nodes = tuple(sorted(self.config.node_ids))
        victim_key = load_keypair(self.config, victim, "node")
        consensus = ConsensusFuzzer(
            self.rng,
            chain,
            victim,
            victim_key,
            nodes,
            self.config.consensus.watermark_window,
            self.bus,
            heavy=self.settings.heavy,
        )
        members = {m.id: load_keypair(self.config, m.id, "member") for m in self.config.members}
        requests = RequestFuzzer(
            self.rng, chain, members, lambda: list(workload.recent_raws), self.settings.heavy
        )
        request_topic = topics.request_topic(chain, HOSTILE_CLIENT)
        begin = time.monotonic()
        sent_consensus = sent_requests = 0
        while not self.stop.is_set():
            elapsed = time.monotonic() - begin
            while sent_consensus < self.settings.consensus_rate * elapsed:
                message = consensus.next()
                topic = (
                    topics.pbft_topic(chain, victim)
                    if message.to is None
                    else topics.pbft_direct_topic(chain, victim, message.to)
                )
                self.remember_own(message.payload)
                if attacker.publish(topic, message.payload):
                    self.report.sent[message.kind] += 1
                sent_consensus += 1
            while sent_requests < self.settings.request_rate * elapsed:
                request = requests.next()
                if hostile_client.publish(request_topic, request.payload):
                    self.report.sent[request.kind] += 1
                sent_requests += 1
            await asyncio.sleep(TICK_S)

    async def break_rules(self, breakers: list[str]) -> None:
        wallets = [
            Wallet(self.config.chain_id, m, load_keypair(self.config, m, "member"))
            for m in breakers
        ]
        debtor = next((m.id for m in self.config.members if m.role == "core_enterprise"), "core")
        bank = next((m.id for m in self.config.members if m.role == "bank"), "bank-a")
        login = ClientLogin.local(self.config, RULE_BREAKER_CLIENT)
        async with ChainClient(self.config, self.keys, login) as client:
            while not self.stop.is_set():
                batch = sign_rule_breakers(self.rng, wallets, debtor, bank)
                self.report.rule_breakers_sent += len(batch)
                try:
                    outcomes = await client.submit([stx for _, stx in batch], timeout_s=SETTLE_S)
                except TimeoutError:
                    continue
                for (why, stx), outcome in zip(batch, outcomes, strict=True):
                    self.extra_acknowledged[stx.tx_id] = outcome
                    if outcome.ok:
                        self.report.rule_breakers_succeeded.append(why)
                    else:
                        self.report.rule_breakers_failed += 1
                        self.report.failure_reasons[outcome.reason[:80]] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.settings.breaker_pause_s)

    async def probe(self, signer: str) -> bool:
        """A fresh transaction after the flood: the network must still commit."""
        wallet = Wallet(self.config.chain_id, signer, load_keypair(self.config, signer, "member"))
        stx = wallet.sign("receivable.draft", {"debtor": "core", "amount": 7, "due_day": 10**6})
        login = ClientLogin.local(self.config, RULE_BREAKER_CLIENT)
        async with ChainClient(self.config, self.keys, login) as client:
            try:
                outcome = await client.submit_one(stx, timeout_s=SETTLE_S)
            except TimeoutError:
                return False
        self.extra_acknowledged[stx.tx_id] = outcome
        return outcome.ok


async def run_fuzz(
    config: NetworkConfig,
    keys: KeyDirectory,
    settings: FuzzSettings,
    progress: Progress | None = None,
) -> FuzzReport:
    say = progress or (lambda _: None)
    require_running(config)
    background, breakers = split_signers(config)
    report = FuzzReport(settings.seed, settings.duration_s)
    run = _Fuzzing(config, keys, settings, report)
    async with StatusWatcher(config) as watcher:
        await wait_for_statuses(watcher, config.node_ids, 10.0)
        primary = network_primary(watcher.latest)
        victim = settings.victim or primary or config.node_ids[0]
        if victim not in config.node_ids:
            raise ConfigError(f"no node {victim!r} (nodes: {', '.join(config.node_ids)})")
        report.victim, report.victim_was_primary = victim, victim == primary
        before = {n: dict(s.get("rejected_by_reason", {})) for n, s in watcher.latest.items()}
        witness = next(n for n in config.node_ids if n != victim)
        state_before = await asyncio.to_thread(read_state, config, witness)
        report.rss_before_kib = nodes_rss_kib(config)
        signers = {m: load_keypair(config, m, "member") for m in background}
        workload = AckWorkload(config, keys, signers, BACKGROUND_CLIENTS)
        working = asyncio.create_task(workload.run())
        node_login = credentials.broker_login(
            config, credentials.node_username(victim), node_id=victim
        )
        attacker = MqttTransport(
            credentials.mqtt_settings(node_login, (f"c/{config.chain_id}/pbft/#",)),
            on_message=run.overhear,
        )
        hostile = MqttTransport(
            credentials.mqtt_settings(
                credentials.broker_login(config, credentials.client_username(HOSTILE_CLIENT))
            )
        )
        say(
            f"fuzz seed {settings.seed}: {settings.duration_s:g} s as node {victim}"
            f"{' (the primary)' if report.victim_was_primary else ''} and client {HOSTILE_CLIENT}"
        )
        async with attacker, hostile:
            await attacker.wait_connected(timeout_s=10)
            await hostile.wait_connected(timeout_s=10)
            await asyncio.sleep(1.0)  # overhear some traffic to replay
            started = time.monotonic()
            tasks = [
                asyncio.create_task(run.flood(attacker, hostile, workload)),
                asyncio.create_task(run.break_rules(breakers)),
                asyncio.create_task(run.broker_outage(victim)),
            ]
            try:
                done, _ = await asyncio.wait(
                    {*tasks, working},
                    timeout=settings.duration_s,
                    return_when=asyncio.FIRST_EXCEPTION,
                )
                for task in done:
                    task.result()
            finally:
                run.stop.set()
                workload.stop_submitting()
                results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            await attacker.flush(5.0)
            await hostile.flush(5.0)
        report.committed_during = workload.committed_since(started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(working), SETTLE_S)
        workload.give_up()
        result = await working
        say("flood over: a fresh transaction must still commit")
        report.committed_after = await run.probe(background[0])
        await converge(config, watcher, SETTLE_S)
        await asyncio.sleep(1.0)  # fresh heartbeats with the final counters
        after = {n: dict(s.get("rejected_by_reason", {})) for n, s in watcher.latest.items()}
    report.rejected_by_node = _deltas(before, after)
    totals: Counter[str] = Counter()
    for counts in report.rejected_by_node.values():
        totals.update(counts)
    report.rejected = dict(sorted(totals.items()))
    report.rss_after_kib = nodes_rss_kib(config)
    state_after = await asyncio.to_thread(read_state, config, witness)
    report.unexplained_state_changes = unexplained_changes(
        state_before, state_after, set(background) | set(breakers), set(background)
    )
    acknowledged = {**result.acknowledged, **run.extra_acknowledged}
    say("checking every ledger")
    report.check = await asyncio.to_thread(
        check_ledgers, config, keys, acknowledged, result.indeterminate
    )
    return report
