"""The consensus benchmark: committed transactions per second on a fresh live network.

Committed throughput is counted from the nodes' own committed blocks (their `committed_txs`
heartbeats at the start and end of the measurement window), never from what was sent. Latency
is from publication to the f+1-th matching commit notice, measured by the load generators, which
run in their own processes with every transaction signed before the clock starts.

Resident memory is sampled beside the measurement, on a thread of its own, together with each
node's `committed_txs` at that moment: memory that grows with the chain shows as a positive slope
of RSS against committed transactions, which a bounded node keeps near zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consortium.bench.loadgen import LoadPlan, LoadReport, presign_count, run_load
from consortium.bench.validator import measure_verify_rate
from consortium.client.watch import StatusWatcher, collect_statuses
from consortium.config import NetworkConfig
from consortium.devnet import Devnet, local_brokers, make_devnet
from consortium.fuzz.memory import rss_kib
from consortium.node import broker, supervisor

SIGNERS = 200
MAX_GENERATORS = 8  # the broker configures this many load generator logins
DEFAULT_SAMPLE_S = 5.0
CONNECT_TIMEOUT_S = 30.0
READY_BASE_S = 180.0
READY_S_PER_TX = 1e-4  # presigning takes about 40 us a transaction: more than twice that, spare
MB = 1e6


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One sampling instant: every process's RSS and what each node's heartbeat said."""

    at_s: float  # seconds since the measurement started
    rss_bytes: dict[str, int | None]  # nodes, mosquitto, loadgen-N; None once a process is gone
    committed_txs: dict[str, int]
    view_changes: dict[str, int]


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
    refused: int  # refused as overloaded by f+1 nodes, explicitly, and not committed after all
    cpu_percent: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    durable: bool = True
    node_ids: tuple[str, ...] = ()
    sample_s: float = DEFAULT_SAMPLE_S
    samples: list[ProcessSample] = field(default_factory=list, repr=False)
    brokers: str = "shared"  # the topology: one shared broker, or one per organisation
    committed_after_refusal: int = 0  # refused by f+1 nodes, committed anyway (in `accepted`)

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "brokers": self.brokers,
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
            "committed_after_refusal": self.committed_after_refusal,
            "cpu_percent": {k: round(v, 1) for k, v in self.cpu_percent.items()},
            "durable": self.durable,
            **memory_json(self.samples, self.node_ids, self.sample_s),
        }


# -- memory samples --------------------------------------------------------------------------


def rss_series_mb(samples: Sequence[ProcessSample], name: str) -> list[float | None]:
    """The RSS of process `name` at each sample, in MB (1 decimal); None where it was gone."""
    return [None if (rss := s.rss_bytes.get(name)) is None else round(rss / MB, 1) for s in samples]


def rss_growth_per_tx(samples: Sequence[ProcessSample], node_id: str) -> float | None:
    """Least-squares slope of the node's RSS bytes against its committed transactions: what each
    committed transaction leaves behind in memory. None from fewer than 3 samples, or when the
    node committed nothing over them (no slope to fit)."""
    points = [
        (s.committed_txs[node_id], rss)
        for s in samples
        if node_id in s.committed_txs and (rss := s.rss_bytes.get(node_id)) is not None
    ]
    if len(points) < 3 or len({x for x, _ in points}) < 2:
        return None
    slope, _ = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
    return slope


def memory_json(
    samples: Sequence[ProcessSample], node_ids: Sequence[str], sample_s: float
) -> dict[str, Any]:
    """The RSS keys of a report: per node series and growth, the other processes beside."""
    others = sorted({name for s in samples for name in s.rss_bytes} - set(node_ids))
    growth = {n: rss_growth_per_tx(samples, n) for n in node_ids}
    return {
        "rss_mb": {n: rss_series_mb(samples, n) for n in node_ids},
        "rss_mb_other": {name: rss_series_mb(samples, name) for name in others},
        "rss_sample_s": sample_s,
        "rss_at_s": [round(s.at_s, 2) for s in samples],
        "rss_growth_bytes_per_tx": {
            n: None if g is None else round(g, 1) for n, g in growth.items()
        },
    }


class ProcessSampler:
    """Samples RSS and heartbeats every `sample_s` seconds on a thread of its own, so a sample
    never delays the measurement. It listens to the heartbeats from the moment it is entered
    (connecting takes a moment) and samples from `begin()` until `end()`."""

    def __init__(
        self, config: NetworkConfig, pids: Callable[[], dict[str, int]], sample_s: float
    ) -> None:
        if sample_s <= 0:
            raise ValueError("the sampling interval must be positive")
        self.config = config
        self.pids = pids
        self.sample_s = sample_s
        self.samples: list[ProcessSample] = []
        self._connected = threading.Event()
        self._begun = threading.Event()
        self._stop = threading.Event()
        self._started_at = 0.0
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, name="rss-sampler", daemon=True)

    def __enter__(self) -> ProcessSampler:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        self._thread.start()
        while not self._connected.wait(0.1):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                self._raise_failure()
                raise RuntimeError("the memory sampler did not connect to the broker")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def begin(self, started_at: float) -> None:
        """Sample from wall time `started_at` (the measurement's start) on, every `sample_s`."""
        self._started_at = started_at
        self._begun.set()

    def end(self) -> list[ProcessSample]:
        """Take a last sample now, stop sampling, and return every sample."""
        self._stop.set()
        self._thread.join(30)
        self._raise_failure()
        return list(self.samples)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"the memory sampler failed: {self._failure}") from self._failure

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._watch())
        except BaseException as exc:  # reported by end(); the thread must not die silently
            self._failure = exc

    async def _watch(self) -> None:
        async with StatusWatcher(self.config) as watcher:
            self._connected.set()
            while not self._begun.is_set():
                if self._stop.is_set():
                    return
                await asyncio.sleep(0.05)
            count = 0
            while not self._stop.is_set():
                due = self._started_at + count * self.sample_s
                if time.time() >= due:
                    self.samples.append(self._take(watcher.latest))
                    count += 1
                else:
                    await asyncio.sleep(min(0.05, due - time.time()))
            self.samples.append(self._take(watcher.latest))

    def _take(self, statuses: Mapping[str, Mapping[str, Any]]) -> ProcessSample:
        now = time.time()
        rss = {name: _rss_bytes(pid) for name, pid in self.pids().items()}
        return ProcessSample(
            at_s=now - self._started_at,
            rss_bytes=rss,
            committed_txs=_field(statuses, "committed_txs"),
            view_changes=_field(statuses, "view_changes"),
        )


def _rss_bytes(pid: int) -> int | None:
    kib = rss_kib(pid)
    return None if kib is None else kib * 1024


def _field(statuses: Mapping[str, Mapping[str, Any]], key: str) -> dict[str, int]:
    return {n: int(s[key]) for n, s in statuses.items() if s.get(key) is not None}


# -- the network and the load generators ------------------------------------------------------


@contextlib.contextmanager
def live_network(
    nodes: int,
    batch_max_txs: int,
    durable: bool,
    load_signers: int = SIGNERS,
    prepare: Callable[[Devnet], None] | None = None,
    broker_per_node: bool = False,
) -> Iterator[Devnet]:
    """A fresh network in a temporary directory, its nodes reporting; stopped and removed after.
    `prepare(net)`, if given, runs before the nodes start (to give them a history, say). With
    `broker_per_node`, every organisation runs its own broker, bridged over TLS."""
    if not 4 <= nodes <= 16:
        raise ValueError("nodes must be from 4 to 16")
    with tempfile.TemporaryDirectory() as tmp:
        net = make_devnet(
            Path(tmp) / "bench",
            nodes=nodes,
            load_signers=load_signers,
            consensus={"batch_max_txs": batch_max_txs},
            **local_brokers(nodes, broker_per_node),
            durable=durable,
        )
        if prepare is not None:
            prepare(net)
        try:
            supervisor.start_network(net.config)
            _wait_for_nodes(net.config)
            yield net
        finally:
            supervisor.stop_network(net.config)


def load_signer_ids(net: Devnet) -> list[str]:
    return sorted(m for m in net.member_pairs if m.startswith("load-"))


def load_plans(
    config: NetworkConfig,
    signer_ids: Sequence[str],
    generators: int,
    rate: float,
    window: int,
    duration_s: float,
    first_index: int = 0,
) -> list[LoadPlan]:
    """`generators` plans sharing the signers, the rate and the window evenly (each signer in one
    plan only, so no two generators use the same nonces)."""
    return [
        LoadPlan(
            str(config.path),
            first_index + i,
            tuple(signer_ids[i::generators]),
            rate / generators,
            window // generators,
            duration_s,
        )
        for i in range(generators)
    ]


class LoadGenerators:
    """Generator processes: started and presigned by `start()`, publishing from `go()`, reporting
    by `reports()`. Leaving the context ends any that still run."""

    def __init__(self, plans: Sequence[LoadPlan]) -> None:
        if not plans or max(p.client_index for p in plans) >= MAX_GENERATORS:
            raise ValueError(f"from 1 to {MAX_GENERATORS} generators (indexes below it)")
        ctx = multiprocessing.get_context("spawn")
        self.plans = list(plans)
        self._ready = [ctx.Event() for _ in plans]
        self._go = ctx.Event()
        self._results = ctx.Queue()
        self.workers = [
            ctx.Process(target=run_load, args=(plan, self._ready[i], self._go, self._results))
            for i, plan in enumerate(plans)
        ]

    def __enter__(self) -> LoadGenerators:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            if worker.pid is not None and worker.is_alive():
                worker.terminate()
                worker.join(10)

    def start(self) -> None:
        """Start every generator and wait until each has signed its transactions."""
        for worker in self.workers:
            worker.start()
        budget_s = READY_BASE_S + READY_S_PER_TX * max(presign_count(p) for p in self.plans)
        deadline = time.monotonic() + budget_s
        for event in self._ready:
            if not event.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"a load generator did not get ready within {budget_s:.0f} s")

    def go(self) -> float:
        """Start publishing; the wall time it started."""
        self._go.set()
        return time.time()

    def pids(self) -> dict[str, int]:
        return {
            f"loadgen-{plan.client_index}": worker.pid
            for plan, worker in zip(self.plans, self.workers, strict=True)
            if worker.pid is not None
        }

    def reports(self, timeout_s: float = 120.0) -> list[LoadReport]:
        """Every generator's report, once it has run its plan and drained."""
        reports = [self._results.get(timeout=timeout_s) for _ in self.workers]
        for worker in self.workers:
            worker.join(10)
        return reports


def process_pids(config: NetworkConfig, load: LoadGenerators) -> dict[str, int]:
    """The processes whose memory and CPU a benchmark reports: nodes, the broker, generators."""
    return _pids(config, load.pids())


# -- the benchmark ------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
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
    sample_s: float = DEFAULT_SAMPLE_S,
    broker_per_node: bool = False,
) -> ConsensusResult:
    """Start a fresh network, offer load, measure, stop everything. `rate` is the total open-loop
    offered load; with `window` the generators run closed loop instead. `companion(config)`, if
    given, is entered once the nodes are up and left when the load ends: something to run beside
    the network while it is measured (an explorer that refreshes, for instance). Every
    `sample_s` seconds of the window, the processes' RSS and the nodes' counters are sampled.
    `broker_per_node`: the network of brokers bridged per organisation instead of one shared."""
    generators = max(1, min(generators, MAX_GENERATORS))
    verify_rate = measure_verify_rate()
    cores = os.cpu_count() or 1
    network = live_network(nodes, batch_max_txs, durable, broker_per_node=broker_per_node)
    with network as net, ExitStack() as stack:
        config = net.config
        if companion is not None:
            stack.enter_context(companion(config))
        total_s = warmup_s + duration_s + 2
        plans = load_plans(
            config, load_signer_ids(net), generators, rate or 0, window or 0, total_s
        )
        load = stack.enter_context(LoadGenerators(plans))
        load.start()
        sampler = stack.enter_context(
            ProcessSampler(config, lambda: process_pids(config, load), sample_s)
        )
        started = load.go()
        report_progress(progress, 0, total_s)
        time.sleep(warmup_s)
        pids = process_pids(config, load)
        cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        first = asyncio.run(collect_statuses(config, wait_s=0.5))
        window_start = time.time()
        sampler.begin(window_start)
        while time.time() < window_start + duration_s:
            report_progress(progress, time.time() - started, total_s)
            time.sleep(0.5)
        last = asyncio.run(collect_statuses(config, wait_s=0.5))
        window_end = time.time()
        cpu_after = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        samples = sampler.end()
        reports = load.reports()
    elapsed = window_end - window_start
    committed = [
        (last[n]["committed_txs"] - first[n]["committed_txs"]) / elapsed
        for n in config.node_ids
        if n in first and n in last
    ]
    in_window = latencies_between(reports, window_start, window_end)
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
            q: percentile(in_window, v) for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
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
        committed_after_refusal=sum(r.committed_after_refusal for r in reports),
        cpu_percent={n: 100 * (cpu_after[n] - cpu_before[n]) / elapsed for n in pids},
        latencies_ms=in_window,
        durable=durable,
        node_ids=tuple(config.node_ids),
        sample_s=sample_s,
        samples=samples,
        brokers=config.topology,
    )


def latencies_between(reports: Sequence[LoadReport], start: float, end: float) -> list[float]:
    """The latencies of the transactions accepted from wall time `start` to `end` (inclusive)."""
    return [
        latency
        for report in reports
        for latency, at in zip(report.latencies_ms, report.accepted_at, strict=True)
        if start <= at <= end
    ]


def report_progress(progress: Any, done: float, total: float) -> None:
    if progress is not None:
        progress(done, total)


def _pids(config: NetworkConfig, generator_pids: Mapping[str, int]) -> dict[str, int]:
    pids = {n: supervisor.node_pid(config, n) for n in config.node_ids}
    named = {n: p for n, p in pids.items() if p is not None}
    for each in config.brokers:
        broker_pid = broker.running_broker_pid(config, each.id)
        if broker_pid is not None:
            named["mosquitto" if len(config.brokers) == 1 else f"mosquitto-{each.id}"] = broker_pid
    named.update(generator_pids)
    return named


def _wait_for_nodes(config: NetworkConfig, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = asyncio.run(collect_statuses(config, wait_s=0.5))
        if all(n in statuses for n in config.node_ids):
            return
    raise RuntimeError("the nodes did not report within 30 s")
