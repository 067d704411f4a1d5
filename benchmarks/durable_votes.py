"""What durable votes cost: `bench consensus` with and without the sync before sends, alternating.

Each round runs the durable network and the `durable: false` one back to back, at each offered
rate, so slow and fast periods of a shared machine fall on both. Prints the median and the range
of committed tx/s and of p50 latency per mode and rate.

    .venv/bin/python benchmarks/durable_votes.py [--rounds 5] [--rates 1000,2500] [--duration 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from consortium.bench.consensus import run_consensus_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rates", default="1000,2500")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    runs: dict[str, list[dict]] = {}
    for round_index in range(args.rounds):
        for rate in rates:
            for durable in (True, False) if round_index % 2 == 0 else (False, True):
                result = run_consensus_bench(rate=rate, duration_s=args.duration, durable=durable)
                row = result.as_json()
                key = f"{'durable' if durable else 'no_sync'}@{rate:g}"
                runs.setdefault(key, []).append(row)
                print(
                    f"round {round_index + 1} {key}: {row['committed_tx_per_s']:.0f} tx/s, "
                    f"p50 {row['latency_ms']['p50']:.0f} ms, view changes {row['view_changes']}",
                    file=sys.stderr,
                )
    summary = {}
    for key, rows in sorted(runs.items()):
        committed = [r["committed_tx_per_s"] for r in rows]
        p50 = [r["latency_ms"]["p50"] for r in rows]
        summary[key] = {
            "committed_tx_per_s": {
                "median": statistics.median(committed),
                "min": min(committed),
                "max": max(committed),
            },
            "p50_ms": {"median": statistics.median(p50), "min": min(p50), "max": max(p50)},
            "view_changes": [r["view_changes"] for r in rows],
        }
    if args.json:
        print(json.dumps({"rounds": args.rounds, "summary": summary}, sort_keys=True))
        return
    for key, s in summary.items():
        c, p = s["committed_tx_per_s"], s["p50_ms"]
        print(
            f"{key:>16}: committed {c['median']:.0f} tx/s ({c['min']:.0f}-{c['max']:.0f}), "
            f"p50 {p['median']:.0f} ms ({p['min']:.0f}-{p['max']:.0f}), "
            f"view changes {s['view_changes']}"
        )


if __name__ == "__main__":
    main()
