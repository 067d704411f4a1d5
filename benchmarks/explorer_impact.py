"""What an open explorer costs the network: `bench consensus` with and without an explorer that
refreshes its pages, alternating, and the nodes' WAL files meanwhile.

Each round runs the network with the explorer (a separate process reading the regulator's store
and the status heartbeats, its Network page, block list, latest block and the network JSON
fetched every `--every` seconds) and without it, back to back, so slow and fast periods of a
shared machine fall on both. Both runs sample every node's WAL file; the explorer's read
transactions must stay short enough for the nodes' checkpoints to keep the WAL within the
store's budget (`journal_size_limit`, 128 MiB). Prints the median and the range of committed
tx/s per mode, the largest WAL seen, and the explorer's page times.

    .venv/bin/python benchmarks/explorer_impact.py [--rounds 5] [--rate 1000] [--duration 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from consortium.bench.consensus import run_consensus_bench
from consortium.config import NetworkConfig
from consortium.devnet import free_port
from consortium.ledger.ledger import store_path

WAL_BUDGET_BYTES = 128 * 1024 * 1024


@dataclass
class Beside:
    """What one run saw besides the network's own figures."""

    wal_max_bytes: int = 0
    page_ms: list[float] = field(default_factory=list)
    page_errors: int = 0


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@contextlib.contextmanager
def _watching(
    config: NetworkConfig, seen: Beside, explorer: bool, every_s: float
) -> Iterator[None]:
    """Sample the WAL files; with `explorer`, run one and refresh its pages."""
    stop = threading.Event()
    process = None
    base = ""
    if explorer:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "consortium", "explorer", "--config", str(config.path)]
        process = subprocess.Popen(
            [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(base + "/api/network")
                break
            except OSError:
                if time.monotonic() > deadline:
                    process.kill()
                    raise RuntimeError("the explorer did not start") from None
                time.sleep(0.2)
    wals = [Path(f"{store_path(config, n)}-wal") for n in config.node_ids]

    def sample() -> None:
        while not stop.is_set():
            for wal in wals:
                with contextlib.suppress(OSError):
                    seen.wal_max_bytes = max(seen.wal_max_bytes, wal.stat().st_size)
            if explorer:
                started = time.perf_counter()
                try:
                    network = json.loads(_get(base + "/api/network"))
                    _get(base + "/")
                    _get(base + "/blocks")
                    heights = [n.get("height") or 0 for n in network.get("nodes", [])]
                    _get(f"{base}/blocks/{max(1, min(heights or [1]))}")
                    seen.page_ms.append((time.perf_counter() - started) * 1000 / 4)
                except (OSError, ValueError):
                    seen.page_errors += 1
            stop.wait(every_s)

    worker = threading.Thread(target=sample, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(15)
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between refreshes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"explorer": [], "none": []}
    for round_index in range(args.rounds):
        order = (True, False) if round_index % 2 == 0 else (False, True)
        for explorer in order:
            seen = Beside()
            result = run_consensus_bench(
                rate=args.rate,
                duration_s=args.duration,
                companion=lambda c, s=seen, e=explorer: _watching(c, s, e, args.every),
            )
            row = result.as_json() | {
                "wal_max_mib": round(seen.wal_max_bytes / 2**20, 1),
                "page_ms_median": round(statistics.median(seen.page_ms), 1)
                if seen.page_ms
                else None,
                "page_errors": seen.page_errors,
            }
            key = "explorer" if explorer else "none"
            runs[key].append(row)
            print(
                f"round {round_index + 1} {key}: {row['committed_tx_per_s']:.0f} tx/s, "
                f"WAL max {row['wal_max_mib']} MiB, pages {row['page_ms_median']} ms, "
                f"view changes {row['view_changes']}",
                file=sys.stderr,
            )
    summary = {}
    for key, rows in runs.items():
        committed = [r["committed_tx_per_s"] for r in rows]
        summary[key] = {
            "committed_tx_per_s": {
                "median": statistics.median(committed),
                "min": min(committed),
                "max": max(committed),
            },
            "wal_max_mib": max(r["wal_max_mib"] for r in rows),
            "wal_within_budget": all(r["wal_max_mib"] * 2**20 <= WAL_BUDGET_BYTES for r in rows),
            "page_ms_median": [r["page_ms_median"] for r in rows],
            "page_errors": sum(r["page_errors"] for r in rows),
            "view_changes": [r["view_changes"] for r in rows],
        }
    with_explorer = summary["explorer"]["committed_tx_per_s"]["median"]
    without = summary["none"]["committed_tx_per_s"]["median"]
    summary["ratio"] = round(with_explorer / without, 3) if without else None
    if args.json:
        print(json.dumps({"rounds": args.rounds, "rate": args.rate, **summary}, sort_keys=True))
        return
    for key in ("explorer", "none"):
        s = summary[key]
        c = s["committed_tx_per_s"]
        print(
            f"{key:>9}: committed {c['median']:.0f} tx/s ({c['min']:.0f}-{c['max']:.0f}), "
            f"WAL max {s['wal_max_mib']} MiB (within budget: {s['wal_within_budget']}), "
            f"pages {s['page_ms_median']} ms, view changes {s['view_changes']}"
        )
    print(f"with / without: {summary['ratio']}")


if __name__ == "__main__":
    main()
