"""One chaos run: workload and nemesis together, then heal, rest, and check every ledger."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from consortium.chaos.checker import CheckReport, check_ledgers, store_heads
from consortium.chaos.nemesis import Nemesis
from consortium.chaos.workload import AckWorkload
from consortium.client.operator import send_control
from consortium.client.watch import StatusWatcher
from consortium.config import NetworkConfig
from consortium.crypto import KeyPair
from consortium.errors import ConfigError
from consortium.keys import KeyDirectory, load_keypair
from consortium.node import supervisor
from consortium.node.faults import heal_message
from consortium.transport import credentials

Progress = Callable[[str], None]
HEAL_RESEND_S = 3.0
HEADS_STABLE_POLLS = 3


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    duration_s: float = 60.0
    seed: int = 0
    clients: int = 4
    rest_timeout_s: float = 90.0
    step_s: tuple[float, float] = (1.0, 3.0)


@dataclass(slots=True)
class ChaosReport:
    seed: int
    duration_s: float
    acknowledged: int = 0
    submitted: int = 0
    indeterminate: int = 0
    failed_receipts: int = 0
    max_stall_s: float = 0.0
    view_changes: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    primary_faults: int = 0
    check: CheckReport = field(default_factory=CheckReport)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = list(self.check.problems)
        if self.acknowledged == 0:
            found.append("no transaction was acknowledged")
        if self.indeterminate:
            found.append(
                f"liveness: {self.indeterminate} transactions still unanswered after the heal"
                " and the rest"
            )
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
            "acknowledged": self.acknowledged,
            "submitted": self.submitted,
            "indeterminate": self.indeterminate,
            "indeterminate_committed": self.check.indeterminate_committed,
            "failed_receipts": self.failed_receipts,
            "lost": self.check.lost,
            "duplicated": self.check.duplicated,
            "misplaced": self.check.misplaced,
            "view_changes": self.view_changes,
            "max_stall_s": round(self.max_stall_s, 3),
            "heads_equal": self.check.heads_equal,
            "ledgers_verified": self.check.ledgers_verified,
            "heights": self.check.heights,
            "faults": self.faults,
            "primary_faults": self.primary_faults,
            "problems": self.problems,
            "events": self.events,
            "ok": self.ok,
        }


def workload_signers(config: NetworkConfig) -> dict[str, KeyPair]:
    """Every supplier may draft receivables: they sign the workload."""
    suppliers = [m.id for m in config.members if m.role == "supplier"]
    if not suppliers:
        raise ConfigError(f"{config.path}: no supplier members to sign a workload")
    return {m: load_keypair(config, m, "member") for m in suppliers}


def require_running(config: NetworkConfig) -> None:
    down = [n for n in config.node_ids if supervisor.node_pid(config, n) is None]
    if down:
        raise ConfigError(
            f"nodes not running here: {', '.join(down)} (start the network with"
            " `consortium up --detach`, or use --fresh)"
        )


def network_primary(statuses: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The primary most nodes agree on (outside a view change), or None."""
    votes = Counter(
        s.get("primary") for s in statuses.values() if not s.get("changing_view", False)
    )
    votes.pop(None, None)
    return votes.most_common(1)[0][0] if votes else None


def highest_view(statuses: Mapping[str, Mapping[str, Any]]) -> int:
    return max((int(s.get("view") or 0) for s in statuses.values()), default=0)


async def wait_for_statuses(
    watcher: StatusWatcher, nodes: tuple[str, ...], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(n not in watcher.latest for n in nodes):
        await asyncio.sleep(0.1)


async def converge(config: NetworkConfig, watcher: StatusWatcher, timeout_s: float) -> bool:
    """Wait until every store holds the same head for a few polls and no node reports a fault
    (a heal sent while a node was paused may never have reached it: send it again)."""
    deadline = time.monotonic() + timeout_s
    last_heal = time.monotonic()
    stable = 0
    previous: set[tuple[int, str]] = set()
    while time.monotonic() < deadline:
        heads = await asyncio.to_thread(store_heads, config)
        distinct = set(heads.values())
        if len(heads) == len(config.node_ids) and len(distinct) == 1 and distinct == previous:
            stable += 1
            if stable >= HEADS_STABLE_POLLS:
                return True
        else:
            stable = 0
        previous = distinct
        faulty = [n for n, s in watcher.latest.items() if s.get("faults")]
        if faulty and time.monotonic() - last_heal > HEAL_RESEND_S:
            await send_control(config, {n: heal_message() for n in config.node_ids})
            last_heal = time.monotonic()
        await asyncio.sleep(0.5)
    return False


async def run_chaos(
    config: NetworkConfig,
    keys: KeyDirectory,
    settings: ChaosSettings,
    progress: Progress | None = None,
) -> ChaosReport:
    """Run the workload under the nemesis for `duration_s`, heal, rest, check."""
    say = progress or (lambda _: None)
    require_running(config)
    clients = [credentials.load_client_id(i) for i in range(settings.clients)]
    report = ChaosReport(settings.seed, settings.duration_s)
    async with StatusWatcher(config) as watcher:
        await wait_for_statuses(watcher, config.node_ids, 10.0)
        views_before = highest_view(watcher.latest)
        workload = AckWorkload(config, keys, workload_signers(config), clients)
        nemesis = Nemesis(
            config, settings.seed, lambda: network_primary(watcher.latest), settings.step_s
        )
        working = asyncio.create_task(workload.run())
        stop = asyncio.Event()
        breaking = asyncio.create_task(nemesis.run(stop))
        say(
            f"chaos seed {settings.seed}: {settings.duration_s:g} s of faults on {len(config.node_ids)} nodes"
        )
        try:
            done, _ = await asyncio.wait({working, breaking}, timeout=settings.duration_s)
            for task in done:
                task.result()  # a failure of either ends the run at once (after the heal)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await breaking
            workload.stop_submitting()
            say("healing: restart the dead, resume the paused, lift partitions and delays")
            await nemesis.heal()
        rest_deadline = time.monotonic() + settings.rest_timeout_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(working), settings.rest_timeout_s)
        workload.give_up()
        result = await working
        say(f"resting until the heads agree ({len(result.acknowledged)} acknowledged)")
        await converge(config, watcher, max(rest_deadline - time.monotonic(), 10.0))
        await asyncio.sleep(1.0)  # the last heartbeats, for the view numbers
        report.view_changes = highest_view(watcher.latest) - views_before
    report.acknowledged = len(result.acknowledged)
    report.submitted = result.submitted
    report.indeterminate = len(result.indeterminate)
    report.failed_receipts = result.failed_receipts
    report.max_stall_s = result.max_stall_s
    report.faults = dict(nemesis.log.injected)
    report.primary_faults = nemesis.log.primary_hits
    report.events = [
        {"at_s": e.at_s, "action": e.action, "kind": e.kind, "node": e.node, "detail": e.detail}
        for e in nemesis.log.events
    ]
    say("checking every ledger")
    report.check = await asyncio.to_thread(
        check_ledgers, config, keys, result.acknowledged, result.indeterminate
    )
    return report
