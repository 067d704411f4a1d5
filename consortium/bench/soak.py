"""The soak benchmark: a steady load on a fresh durable network for a long time, in windows.

A network that runs for hours must not slow down or grow: each window reports what it committed,
its latency, how often the nodes changed view and how much memory each node gained per committed
transaction, and the last window is compared with the first. At the end of the load a backup is
killed (SIGKILL) and started again from its disk the way `consortium fault restart` does, while a
small open-loop load keeps the others committing, so "back" means it has caught up with blocks
the others are still adding and votes in their view, not merely that its process came up.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from consortium.bench.consensus import (
    DEFAULT_SAMPLE_S,
    MAX_GENERATORS,
    MB,
    LoadGenerators,
    ProcessSample,
    ProcessSampler,
    live_network,
    load_plans,
    load_signer_ids,
    memory_json,
    percentile,
    process_pids,
    report_progress,
    rss_growth_per_tx,
)
from consortium.bench.loadgen import LoadPlan, LoadReport
from consortium.chaos.runner import highest_view, network_primary
from consortium.client.watch import StatusWatcher, collect_statuses
from consortium.config import NetworkConfig
from consortium.node import supervisor

RESTART_SIGNERS = 10  # load signers kept for the load that runs while a node restarts
RESTART_RATE = 50.0  # tx/s offered while a node restarts: blocks keep coming, cheaply
RESTART_SETTLE_S = 2.0  # the restart load commits before the kill
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One window of the soak, from `start_s` to `end_s` seconds after the measurement began."""

    index: int
    start_s: float
    end_s: float
    committed_tx_per_s: float | None
    accepted: int
    latency_ms: dict[str, float | None]
    view_changes_per_min: float | None
    rss_mb_end: dict[str, float | None]
    rss_growth_bytes_per_tx: dict[str, float | None]

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_s": round(self.start_s, 1),
            "end_s": round(self.end_s, 1),
            "committed_tx_per_s": _rounded(self.committed_tx_per_s, 1),
            "accepted": self.accepted,
            "latency_ms": {q: _rounded(v, 1) for q, v in self.latency_ms.items()},
            "view_changes_per_min": _rounded(self.view_changes_per_min, 3),
            "rss_mb_end": self.rss_mb_end,
            "rss_growth_bytes_per_tx": {
                n: _rounded(g, 1) for n, g in self.rss_growth_bytes_per_tx.items()
            },
        }


@dataclass(frozen=True, slots=True)
class RestartResult:
    """A killed backup started again: how long until it was back in consensus, what it held."""

    node: str
    primary: str | None  # the primary the others agreed on when the node was killed
    caught_up: bool
    restart_s: float | None  # None: not back within timeout_s
    committed_txs: int | None
    height: int | None
    others_min_height: int | None
    others_committed_txs: int | None  # the median of the other nodes' at the same moment
    timeout_s: float
    load_tx_per_s: float
    # Each node's view of the network when the measurement ended: what explains a failed restart
    # (a stalled network, a view change that did not finish, pools full, answers refused).
    at_end: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "primary": self.primary,
            "caught_up": self.caught_up,
            "restart_s": _rounded(self.restart_s, 2),
            "committed_txs": self.committed_txs,
            "height": self.height,
            "others_min_height": self.others_min_height,
            "others_committed_txs": self.others_committed_txs,
            "timeout_s": self.timeout_s,
            "load_tx_per_s": self.load_tx_per_s,
            "at_end": self.at_end,
        }


@dataclass(slots=True)
class SoakResult:
    nodes: int
    offered_tx_per_s: float
    duration_s: float
    window_s: float
    warmup_s: float
    batch_max_txs: int
    sample_s: float
    node_ids: tuple[str, ...]
    sent: int
    accepted: int
    refused: int
    committed_after_refusal: int
    failed_receipts: int
    committed_txs: int  # what the nodes committed from before the load began to after it drained
    presign_s: float  # the slowest generator's signing, before the clock started
    presigned_txs: int
    overall: WindowStats
    windows: list[WindowStats]
    restart: RestartResult
    samples: list[ProcessSample] = field(default_factory=list, repr=False)

    @property
    def committed_fraction(self) -> float | None:
        """What the nodes committed of what the generators published over the whole run."""
        return self.committed_txs / self.sent if self.sent else None

    def as_json(self) -> dict[str, Any]:
        first, last = self.windows[0], self.windows[-1]
        return {
            "nodes": self.nodes,
            "offered_tx_per_s": self.offered_tx_per_s,
            "duration_s": self.duration_s,
            "window_s": self.window_s,
            "warmup_s": self.warmup_s,
            "batch_max_txs": self.batch_max_txs,
            "durable": True,
            "sent": self.sent,
            "accepted": self.accepted,
            "refused": self.refused,
            "committed_after_refusal": self.committed_after_refusal,
            "failed_receipts": self.failed_receipts,
            "committed_txs": self.committed_txs,
            "committed_fraction": _rounded(self.committed_fraction, 4),
            "presign_s": round(self.presign_s, 1),
            "presigned_txs": self.presigned_txs,
            "committed_tx_per_s": _rounded(self.overall.committed_tx_per_s, 1),
            "latency_ms": {q: _rounded(v, 1) for q, v in self.overall.latency_ms.items()},
            "view_changes_per_min": _rounded(self.overall.view_changes_per_min, 3),
            "windows": [w.as_json() for w in self.windows],
            "p99_ratio_last_first": _rounded(
                ratio(last.latency_ms["p99"], first.latency_ms["p99"]), 3
            ),
            "view_changes_per_min_ratio_last_first": _rounded(
                ratio(last.view_changes_per_min, first.view_changes_per_min), 3
            ),
            **memory_json(self.samples, self.node_ids, self.sample_s),
            "restart": self.restart.as_json(),
            "restart_s": _rounded(self.restart.restart_s, 2),
            "restart_committed_txs": self.restart.committed_txs,
        }


def _median_int(values: list[int]) -> int | None:
    return int(statistics.median(values)) if values else None


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# -- windows, from samples and latencies --------------------------------------------------------


def window_bounds(duration_s: float, window_s: float) -> list[tuple[float, float]]:
    """Consecutive windows of `window_s` from 0 to `duration_s`; the last one may be shorter."""
    if window_s <= 0 or duration_s <= 0:
        raise ValueError("the duration and the window must be positive")
    bounds = []
    start = 0.0
    while start < duration_s - 1e-9:
        bounds.append((start, min(start + window_s, duration_s)))
        start += window_s
    return bounds


def nearest_sample(samples: Sequence[ProcessSample], at_s: float) -> ProcessSample:
    return min(samples, key=lambda s: abs(s.at_s - at_s))


def ratio(last: float | None, first: float | None) -> float | None:
    """`last / first`, or None when either is missing or `first` is zero (no finite ratio)."""
    if last is None or first is None or first == 0:
        return None
    return last / first


def window_stats(
    samples: Sequence[ProcessSample],
    node_ids: Sequence[str],
    reports: Sequence[LoadReport],
    started_at: float,
    duration_s: float,
    window_s: float,
) -> list[WindowStats]:
    """Each window's figures. Counters come from the samples nearest its two ends (the median
    node's committed rate, the most view changes any node counted), RSS growth from the samples
    within it, latencies from the transactions accepted in it (wall time `started_at` is 0 s)."""
    bounds = window_bounds(duration_s, window_s)
    accepted: list[list[float]] = [[] for _ in bounds]
    for report in reports:
        for latency, at in zip(report.latencies_ms, report.accepted_at, strict=True):
            offset = at - started_at
            if 0 <= offset <= duration_s:
                accepted[min(int(offset // window_s), len(bounds) - 1)].append(latency)
    return [
        _one_window(i, start, end, samples, node_ids, accepted[i])
        for i, (start, end) in enumerate(bounds)
    ]


def _one_window(
    index: int,
    start_s: float,
    end_s: float,
    samples: Sequence[ProcessSample],
    node_ids: Sequence[str],
    latencies: list[float],
) -> WindowStats:
    first = nearest_sample(samples, start_s) if samples else None
    last = nearest_sample(samples, end_s) if samples else None
    spanned = first is not None and last is not None and last.at_s > first.at_s
    committed_rate = vc_rate = None
    within: list[ProcessSample] = []
    if spanned:
        elapsed = last.at_s - first.at_s
        rates = [
            (last.committed_txs[n] - first.committed_txs[n]) / elapsed
            for n in node_ids
            if n in first.committed_txs and n in last.committed_txs
        ]
        committed_rate = statistics.median(rates) if rates else None
        if first.view_changes and last.view_changes:
            changes = max(last.view_changes.values()) - max(first.view_changes.values())
            vc_rate = changes / (elapsed / 60)
        within = [s for s in samples if first.at_s <= s.at_s <= last.at_s]
    return WindowStats(
        index=index,
        start_s=start_s,
        end_s=end_s,
        committed_tx_per_s=committed_rate,
        accepted=len(latencies),
        latency_ms={
            q: percentile(latencies, v) if latencies else None
            for q, v in (("p50", 0.5), ("p99", 0.99))
        },
        view_changes_per_min=vc_rate,
        rss_mb_end={
            n: None
            if last is None or (rss := last.rss_bytes.get(n)) is None
            else round(rss / MB, 1)
            for n in node_ids
        },
        rss_growth_bytes_per_tx={n: rss_growth_per_tx(within, n) for n in node_ids},
    )


# -- the restart ------------------------------------------------------------------------------


def pick_backup(statuses: Mapping[str, Mapping[str, Any]], node_ids: Sequence[str]) -> str:
    """The first node (in the configuration's order) that is not the primary the others agree on."""
    primary = network_primary(statuses)
    for node_id in node_ids:
        if node_id != primary and node_id in statuses:
            return node_id
    raise RuntimeError("no backup node is reporting")


def caught_up(
    status: Mapping[str, Any] | None,
    others: Mapping[str, Mapping[str, Any]],
    pid: int,
    floor_height: int,
) -> bool:
    """Whether a restarted node is back in consensus: its heartbeat comes from the new process
    (not a retained one from before the kill), it is not changing view, it is in the others'
    view, it holds at least the height of the slowest of them, and at least `floor_height` (one
    above the highest block the others held when it was started), so it holds blocks the
    network committed after it came back."""
    if status is None or not others or status.get("pid") != pid:
        return False
    if status.get("changing_view") or int(status.get("view") or 0) != highest_view(others):
        return False
    height = int(status.get("height") or 0)
    return height >= min(int(s.get("height") or 0) for s in others.values()) and (
        height >= floor_height
    )


def measure_restart(config: NetworkConfig, plan: LoadPlan, timeout_s: float) -> RestartResult:
    """Under `plan`'s small load, SIGKILL a backup and start it again as `fault restart` does
    (its supervisor too); time from the start command until it is `caught_up`."""
    with LoadGenerators([plan]) as trickle:
        trickle.start()
        trickle.go()
        time.sleep(RESTART_SETTLE_S)
        return asyncio.run(_restart_backup(config, timeout_s, plan.rate))


async def _restart_backup(config: NetworkConfig, timeout_s: float, rate: float) -> RestartResult:
    async with StatusWatcher(config) as watcher:
        deadline = time.monotonic() + 10
        while len(watcher.latest) < len(config.node_ids) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        primary = network_primary(watcher.latest)
        node = pick_backup(watcher.latest, config.node_ids)
        others = [n for n in config.node_ids if n != node]
        await asyncio.to_thread(supervisor.stop_node, config, node, kill=True)
        floor_height = 1 + max(int(watcher.latest[n].get("height") or 0) for n in others)
        started = time.monotonic()
        process = await asyncio.to_thread(supervisor.spawn_node, config, node)
        status: Mapping[str, Any] | None = None
        seen: dict[str, Mapping[str, Any]] = {}
        elapsed: float | None = None
        while time.monotonic() < started + timeout_s:
            status = watcher.latest.get(node)
            seen = {n: watcher.latest[n] for n in others if n in watcher.latest}
            if caught_up(status, seen, process.pid, floor_height):
                elapsed = time.monotonic() - started
                break
            await asyncio.sleep(POLL_S)
    fresh = status if status is not None and status.get("pid") == process.pid else None
    return RestartResult(
        node=node,
        primary=primary,
        caught_up=elapsed is not None,
        restart_s=elapsed,
        committed_txs=None if fresh is None else int(fresh.get("committed_txs") or 0),
        height=None if fresh is None else int(fresh.get("height") or 0),
        others_min_height=min((int(s.get("height") or 0) for s in seen.values()), default=None),
        others_committed_txs=_median_int([int(s.get("committed_txs") or 0) for s in seen.values()]),
        timeout_s=timeout_s,
        load_tx_per_s=rate,
        at_end={n: restart_diagnosis(s) for n, s in sorted(watcher.latest.items())},
    )


DIAGNOSIS_KEYS = (
    "pid",
    "view",
    "changing_view",
    "height",
    "committed_txs",
    "tx_per_s",
    "mempool",
    "queued_request_bytes",
    "view_changes",
    "answers_sent",
    "refusals_sent",
    "rejected_by_reason",
)


def restart_diagnosis(status: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a node's heartbeat that tells why a restarted node did or did not catch up."""
    return {key: status.get(key) for key in DIAGNOSIS_KEYS}


# -- the run ----------------------------------------------------------------------------------


def run_soak(
    rate: float = 1500.0,
    duration_s: float = 1800.0,
    window_s: float = 600.0,
    nodes: int = 5,
    generators: int = 1,
    batch_max_txs: int = 2000,
    warmup_s: float = 5.0,
    sample_s: float = DEFAULT_SAMPLE_S,
    restart_rate: float = RESTART_RATE,
    restart_timeout_s: float = 120.0,
    progress: Any = None,
) -> SoakResult:
    """Offer `rate` tx/s for `warmup_s + duration_s` on a fresh durable network, measure
    `duration_s` in windows of `window_s`, then restart a backup under a small load."""
    if not 1 <= generators < MAX_GENERATORS:
        raise ValueError(f"generators must be from 1 to {MAX_GENERATORS - 1} (one login is kept)")
    window_bounds(duration_s, window_s)  # refuses bad bounds before anything starts
    with live_network(nodes, batch_max_txs, durable=True) as net, ExitStack() as stack:
        config = net.config
        signers = load_signer_ids(net)
        total_s = warmup_s + duration_s + 2
        plans = load_plans(config, signers[:-RESTART_SIGNERS], generators, rate, 0, total_s)
        load = stack.enter_context(LoadGenerators(plans))
        load.start()
        sampler = stack.enter_context(
            ProcessSampler(config, lambda: process_pids(config, load), sample_s)
        )
        before = asyncio.run(collect_statuses(config, wait_s=0.5))
        began = load.go()
        while time.time() < began + warmup_s:
            report_progress(progress, time.time() - began, total_s)
            time.sleep(min(0.5, max(0.0, began + warmup_s - time.time())))
        started_at = time.time()
        sampler.begin(started_at)
        while time.time() < started_at + duration_s:
            report_progress(progress, time.time() - began, total_s)
            time.sleep(min(0.5, max(0.0, started_at + duration_s - time.time())))
        samples = sampler.end()
        reports = load.reports()
        after = asyncio.run(collect_statuses(config, wait_s=0.5))
        report_progress(progress, total_s, total_s)
        trickle = LoadPlan(
            str(config.path),
            generators,
            tuple(signers[-RESTART_SIGNERS:]),
            restart_rate,
            0,
            RESTART_SETTLE_S + restart_timeout_s + 30,
        )
        restart = measure_restart(config, trickle, restart_timeout_s)
    committed = [
        after[n]["committed_txs"] - before[n]["committed_txs"]
        for n in config.node_ids
        if n in before and n in after
    ]
    node_ids = tuple(config.node_ids)
    return SoakResult(
        nodes=nodes,
        offered_tx_per_s=rate,
        duration_s=duration_s,
        window_s=window_s,
        warmup_s=warmup_s,
        batch_max_txs=batch_max_txs,
        sample_s=sample_s,
        node_ids=node_ids,
        sent=sum(r.sent for r in reports),
        accepted=sum(r.accepted for r in reports),
        refused=sum(r.refused for r in reports),
        committed_after_refusal=sum(r.committed_after_refusal for r in reports),
        failed_receipts=sum(r.failed_receipts for r in reports),
        committed_txs=_median_int(committed) or 0,
        presign_s=max(r.sign_s for r in reports),
        presigned_txs=sum(r.signed for r in reports),
        overall=window_stats(samples, node_ids, reports, started_at, duration_s, duration_s)[0],
        windows=window_stats(samples, node_ids, reports, started_at, duration_s, window_s),
        restart=restart,
        samples=samples,
    )
