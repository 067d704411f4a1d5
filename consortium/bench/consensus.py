"""The consensus benchmark: committed transactions per second on a fresh live network.

Committed throughput is counted from the nodes' own committed blocks (their `committed_txs`
heartbeats at the start and end of the measurement window), never from what was sent. Latency
is from publication to the f+1-th matching commit notice, measured by the load generators, which
run in their own processes with every transaction signed before the clock starts.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consortium.bench.loadgen import LoadPlan, LoadReport, run_load
from consortium.bench.validator import measure_verify_rate
from consortium.client.watch import collect_statuses
from consortium.config import NetworkConfig
from consortium.devnet import free_port, make_devnet
from consortium.node import broker, supervisor

SIGNERS = 200
MAX_GENERATORS = 8


@dataclass(slots=True)
class ConsensusResult:
    nodes: int
    duration_s: float
    batch_max_txs: int
    offered_tx_per_s: float | None
    window: int | None
    committed_tx_per_s: float
    latency_ms: dict[str, float]
    view_changes: int
    verify_per_s_1core: float
    cores: int
    bound_tx_per_s: float
    efficiency: float
    sent: int
    accepted: int
    failed_receipts: int
    refused: int  # refused as overloaded by f+1 nodes, explicitly, never silently dropped
    cpu_percent: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    durable: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "duration_s": self.duration_s,
            "batch_max_txs": self.batch_max_txs,
            "offered_tx_per_s": self.offered_tx_per_s,
            "window": self.window,
            "committed_tx_per_s": round(self.committed_tx_per_s, 1),
            "latency_ms": {k: round(v, 1) for k, v in self.latency_ms.items()},
            "view_changes": self.view_changes,
            "verify_per_s_1core": round(self.verify_per_s_1core),
            "cores": self.cores,
            "bound_tx_per_s": round(self.bound_tx_per_s),
            "efficiency": round(self.efficiency, 3),
            "sent": self.sent,
            "accepted": self.accepted,
            "failed_receipts": self.failed_receipts,
            "refused": self.refused,
            "cpu_percent": {k: round(v, 1) for k, v in self.cpu_percent.items()},
            "durable": self.durable,
        }


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_consensus_bench(
    nodes: int = 5,
    duration_s: float = 30.0,
    rate: float | None = 2500.0,
    window: int | None = None,
    generators: int = 1,
    batch_max_txs: int = 2000,
    warmup_s: float = 5.0,
    progress: Any = None,
    durable: bool = True,
    companion: Callable[[NetworkConfig], AbstractContextManager[Any]] | None = None,
) -> ConsensusResult:
    """Start a fresh network, offer load, measure, stop everything. `rate` is the total open-loop
    offered load; with `window` the generators run closed loop instead. `companion(config)`, if
    given, is entered once the nodes are up and left when the load ends: something to run beside
    the network while it is measured (an explorer that refreshes, for instance)."""
    if not 4 <= nodes <= 16:
        raise ValueError("nodes must be from 4 to 16")
    generators = max(1, min(generators, MAX_GENERATORS))
    verify_rate = measure_verify_rate()
    cores = os.cpu_count() or 1
    signers = SIGNERS
    with tempfile.TemporaryDirectory() as tmp:
        net = make_devnet(
            Path(tmp) / "bench",
            nodes=nodes,
            load_signers=signers,
            broker=f"mqtt://127.0.0.1:{free_port()}",
            consensus={"batch_max_txs": batch_max_txs},
            durable=durable,
        )
        config = net.config
        stack = ExitStack()
        try:
            supervisor.start_network(config)
            _wait_for_nodes(config)
            if companion is not None:
                stack.enter_context(companion(config))
            ctx = multiprocessing.get_context("spawn")
            ready = [ctx.Event() for _ in range(generators)]
            go = ctx.Event()
            results = ctx.Queue()
            signer_ids = sorted(m for m in net.member_pairs if m.startswith("load-"))
            total_s = warmup_s + duration_s + 2
            plans = [
                LoadPlan(
                    str(config.path),
                    i,
                    tuple(signer_ids[i::generators]),
                    (rate or 0) / generators,
                    (window or 0) // generators,
                    total_s,
                )
                for i in range(generators)
            ]
            workers = [
                ctx.Process(target=run_load, args=(p, ready[i], go, results))
                for i, p in enumerate(plans)
            ]
            for worker in workers:
                worker.start()
            for event in ready:
                if not event.wait(180):
                    raise RuntimeError("a load generator did not get ready")
            go.set()
            started = time.time()
            _tick(progress, 0, total_s)
            time.sleep(warmup_s)
            pids = _pids(config, workers)
            cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            first = asyncio.run(collect_statuses(config, wait_s=0.5))
            window_start = time.time()
            while time.time() < window_start + duration_s:
                _tick(progress, time.time() - started, total_s)
                time.sleep(0.5)
            last = asyncio.run(collect_statuses(config, wait_s=0.5))
            window_end = time.time()
            cpu_after = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            reports: list[LoadReport] = [results.get(timeout=120) for _ in workers]
            for worker in workers:
                worker.join(10)
        finally:
            stack.close()
            supervisor.stop_network(config)
    elapsed = window_end - window_start
    committed = [
        (last[n]["committed_txs"] - first[n]["committed_txs"]) / elapsed
        for n in config.node_ids
        if n in first and n in last
    ]
    in_window = [
        latency
        for report in reports
        for latency, at in zip(report.latencies_ms, report.accepted_at, strict=True)
        if window_start <= at <= window_end
    ]
    committed_rate = statistics.median(committed) if committed else 0.0
    bound = cores * verify_rate / nodes
    return ConsensusResult(
        nodes=nodes,
        duration_s=duration_s,
        batch_max_txs=batch_max_txs,
        offered_tx_per_s=rate if not window else None,
        window=window,
        committed_tx_per_s=committed_rate,
        latency_ms={
            q: _percentile(in_window, v) for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
        view_changes=max((s.get("view_changes") or 0 for s in last.values()), default=0),
        verify_per_s_1core=verify_rate,
        cores=cores,
        bound_tx_per_s=bound,
        efficiency=committed_rate / bound,
        sent=sum(r.sent for r in reports),
        accepted=sum(r.accepted for r in reports),
        failed_receipts=sum(r.failed_receipts for r in reports),
        refused=sum(r.refused for r in reports),
        cpu_percent={n: 100 * (cpu_after[n] - cpu_before[n]) / elapsed for n in pids},
        latencies_ms=in_window,
        durable=durable,
    )


def _tick(progress: Any, done: float, total: float) -> None:
    if progress is not None:
        progress(done, total)


def _pids(config: Any, workers: list) -> dict[str, int]:
    pids = {n: supervisor.node_pid(config, n) for n in config.node_ids}
    named = {n: p for n, p in pids.items() if p is not None}
    broker_pid = broker.running_broker_pid(config)
    if broker_pid is not None:
        named["mosquitto"] = broker_pid
    for i, worker in enumerate(workers):
        named[f"loadgen-{i}"] = worker.pid
    return named


def _wait_for_nodes(config: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = asyncio.run(collect_statuses(config, wait_s=0.5))
        if all(n in statuses for n in config.node_ids):
            return
    raise RuntimeError("the nodes did not report within 30 s")
