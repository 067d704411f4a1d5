"""Many seeds at once: a process pool over seeds and one aggregate report.

Each seed is independent and deterministic, so the pool changes only the wall time, never a result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from consortium.sim.runner import RunResult, SimSettings, run_seed


@dataclass
class SweepReport:
    nodes: int
    runs: int = 0
    safety_violations: int = 0
    liveness_failures: int = 0
    failing_seeds: list[int] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    byzantine: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    bytes: int = 0
    blocks: int = 0
    requests: int = 0
    latencies_ms: list[int] = field(default_factory=list)
    view_changes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    failures: list[RunResult] = field(default_factory=list)
    trace_hashes: dict[int, str] = field(default_factory=dict)
    app: str = "model"
    committed_txs: int = 0
    business_invariant_violations: int = 0
    disk_faults: int = 0
    operations: dict[str, int] = field(default_factory=dict)
    messages_by_kind: dict[str, int] = field(default_factory=dict)
    committed_per_seed: list[int] = field(default_factory=list)

    def add(self, result: RunResult) -> None:
        self.runs += 1
        self.trace_hashes[result.seed] = result.trace_hash
        if result.safety_violations:
            self.safety_violations += 1
        if result.liveness_failure is not None:
            self.liveness_failures += 1
        if not result.ok:
            self.failing_seeds.append(result.seed)
            self.failures.append(result)
        for kind, count in result.faults.items():
            self.faults[kind] = self.faults.get(kind, 0) + count
        for kind, count in result.byzantine.items():
            self.byzantine[kind] = self.byzantine.get(kind, 0) + count
        for kind, count in result.drops.items():
            self.dropped[kind] = self.dropped.get(kind, 0) + count
        self.messages += result.messages
        self.bytes += result.bytes
        self.blocks += result.blocks
        self.requests += result.requests
        self.latencies_ms.extend(result.latencies_ms)
        self.view_changes += result.view_changes
        self.app = result.app
        self.committed_txs += result.committed_txs
        self.committed_per_seed.append(result.committed_txs)
        self.business_invariant_violations += bool(result.business_invariant_violations)
        self.disk_faults += result.disk_faults
        for op, count in result.operations.items():
            self.operations[op] = self.operations.get(op, 0) + count
        for kind, count in result.messages_by_kind.items():
            self.messages_by_kind[kind] = self.messages_by_kind.get(kind, 0) + count

    def summary(self) -> dict[str, object]:
        latencies = sorted(self.latencies_ms)

        def percentile(p: float) -> int:
            if not latencies:
                return 0
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

        blocks = max(self.blocks, 1)
        return {
            "nodes": self.nodes,
            "runs": self.runs,
            "safety_violations": self.safety_violations,
            "liveness_failures": self.liveness_failures,
            "failing_seeds": sorted(self.failing_seeds),
            "faults": dict(sorted(self.faults.items())),
            "byzantine": dict(sorted(self.byzantine.items())),
            "committed_blocks": self.blocks,
            "requests": self.requests,
            "messages_per_block": round(self.messages / blocks, 1),
            "messages_per_block_by_kind": {
                kind: round(count / blocks, 2)
                for kind, count in sorted(self.messages_by_kind.items())
            },
            "bytes_per_block": round(self.bytes / blocks, 1),
            "latency_virtual_ms": {
                "p50": percentile(0.5),
                "p99": percentile(0.99),
                "max": latencies[-1] if latencies else 0,
            },
            "view_changes": self.view_changes,
            "dropped_messages": dict(sorted(self.dropped.items())),
            "app": self.app,
            "committed_txs": self.committed_txs,
            "committed_txs_per_seed": {
                "min": min(self.committed_per_seed, default=0),
                "median": sorted(self.committed_per_seed)[len(self.committed_per_seed) // 2]
                if self.committed_per_seed
                else 0,
            },
            "business_invariant_violations": self.business_invariant_violations,
            "disk_faults": self.disk_faults,
            "operations": dict(sorted(self.operations.items())),
        }


def sweep(
    seeds: Iterable[int],
    settings: SimSettings,
    workers: int | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> SweepReport:
    """Run every seed (in parallel when there are several cores) and aggregate the results."""
    report = SweepReport(nodes=settings.nodes, app=settings.app)
    seeds = list(seeds)
    workers = workers if workers is not None else min(os.cpu_count() or 1, len(seeds))
    if workers <= 1:
        results: Iterable[RunResult] = (run_seed(seed, settings) for seed in seeds)
        for result in results:
            report.add(result)
            if on_result:
                on_result(result)
        return report
    with ProcessPoolExecutor(max_workers=workers) as pool:
        chunk = max(1, len(seeds) // (workers * 8))
        for result in pool.map(run_seed, seeds, [settings] * len(seeds), chunksize=chunk):
            report.add(result)
            if on_result:
                on_result(result)
    return report
