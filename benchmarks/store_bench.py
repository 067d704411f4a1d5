"""The node's SQLite store alone: CPU per committed block and per transaction, as the store grows.

Each block is what a live node writes at about 2,000 tx/s: `--txs` transactions of about 150
random bytes with 32-byte random ids (and their receipts), `--state-writes` state writes of
about 150-byte msgpack values (a third new `rcv/rcv-<16 hex>` keys, half updates of keys written
earlier, the rest hot balance and nonce keys, plus a few deletes), and the PBFT replica's
consensus records in the calls it makes them: the signed pre-prepare (the whole block) when it
is accepted, the prepared proof (the pre-prepare again plus the votes) when it is prepared, and at
every checkpoint (`--checkpoint` blocks) the stable certificate and the deletion of the
pre-prepares and proofs it makes obsolete (a pre-prepare of a 2,000-transaction block is about
300 KB; `--record-bytes` sets another size). Blocks are generated outside the timed regions.

CPU is `time.thread_time()` of the writing thread (user + system, so the kernel's share of
writing the WAL and of checkpoints counts) spent in `Store.append` and in
`Store.write_consensus_records`, averaged over the first and over the last `--window` blocks of
the run. With `--checkpoints inline` (SQLite's automatic checkpoint, what tools opening a store
get) a WAL checkpoint is charged to whichever call's COMMIT crosses the checkpoint mark, so the
sum of the two is the figure to compare. With `--checkpoints background` (what a node does,
`consortium.ledger.wal`) a worker thread copies the WAL and the writer only finishes each
checkpoint between blocks: its CPU is in the writer's figures, the worker's in `process_cpu_s`.

    .venv/bin/python benchmarks/store_bench.py [--blocks 300] [--txs 2000] [--state-writes 3000]
        [--window 30] [--record-bytes N] [--cache-mb 128] [--checkpoints inline|background]
        [--dir PATH] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from consortium.certificate import CommitCertificate
from consortium.ledger.block import BlockHeader, Receipt
from consortium.ledger.state import Layer, State
from consortium.ledger.store import Store
from consortium.ledger.wal import WalCheckpointer

NODES = ("bank-a", "bank-b", "core", "regulator", "agency")
MEMBERS = [f"supplier-{i:02d}" for i in range(40)] + list(NODES)


class Workload:
    """Deterministic block contents: the same seed gives the same bytes every run."""

    def __init__(self, seed: int, txs: int, state_writes: int, record_bytes: int | None) -> None:
        self.rng = random.Random(seed)
        self.txs = txs
        self.state_writes = state_writes
        self.record_bytes = record_bytes
        self.written: list[str] = []  # rcv keys written so far (candidates for updates/deletes)
        self.parent = bytes(32)

    def _bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def _receivable(self) -> dict[str, Any]:
        r = self.rng
        return {
            "amount": r.randrange(10**6, 10**10),
            "creditor": r.choice(MEMBERS),
            "debtor": r.choice(MEMBERS),
            "due_day": r.randrange(1, 400),
            "id": f"rcv-{r.randbytes(8).hex()}",
            "status": r.choice(("draft", "confirmed", "pledged", "financed")),
            "confirmation": r.randbytes(64),
        }

    def state_layer(self) -> Layer:
        r = self.rng
        writes: dict[str, Any] = {}
        new = self.state_writes // 3
        updates = self.state_writes // 2
        hot = self.state_writes - new - updates
        for _ in range(new):
            key = f"rcv/rcv-{r.randbytes(8).hex()}"
            writes[key] = self._receivable()
            self.written.append(key)
        pool = self.written[:-new] or self.written
        for _ in range(updates):
            writes[r.choice(pool)] = self._receivable()
        for i in range(hot):
            member = MEMBERS[i % len(MEMBERS)]
            kind = ("bal", "nonce", "loan")[i // len(MEMBERS) % 3]
            writes[f"{kind}/{member}/{i // (3 * len(MEMBERS))}"] = {
                "value": r.randrange(10**12),
                "memo": r.randbytes(40).hex(),
            }
        if len(pool) > 1000:
            for _ in range(self.state_writes // 100):
                writes[r.choice(pool)] = None
        return Layer(State(), writes)

    def block(self, height: int) -> tuple[Any, ...]:
        r = self.rng
        raws = tuple(self._bytes(r.randrange(100, 201)) for _ in range(self.txs))
        tx_ids = [self._bytes(32) for _ in range(self.txs)]
        receipts = tuple(
            Receipt(tx_id, True, "", None)
            if r.random() < 0.7
            else Receipt(tx_id, True, "", {"id": f"rcv-{r.randbytes(8).hex()}"})
            if r.random() < 0.9
            else Receipt(tx_id, False, "receivable.not_found", None)
            for tx_id in tx_ids
        )
        header = BlockHeader(
            "bench", height, self.parent, self._bytes(32), self._bytes(32), self._bytes(32),
            1 + height // 100, NODES[height % len(NODES)], 0,
        )  # fmt: skip
        self.parent = header.hash
        sigs = tuple(sorted((n, self._bytes(64)) for n in NODES[:4]))
        certificate = CommitCertificate(0, height, header.hash, sigs)
        return header, raws, tx_ids, receipts, certificate, self.state_layer()

    def consensus_calls(self, height: int, raws: tuple[bytes, ...], checkpoint: int) -> list:
        """The replica's write_consensus_records calls around committing block `height`."""
        size = self.record_bytes or (sum(len(x) + 2 for x in raws) + 400)
        pp = self._bytes(size)
        proof = pp + self._bytes(4 * 160)
        calls: list[list[tuple[str, bytes | None]]] = [
            [(f"pp/{height:012d}", pp)],
            [(f"proof/{height:012d}", proof)],
        ]
        if height % checkpoint == 0 and height > checkpoint:
            gc: list[tuple[str, bytes | None]] = [("stable", self._bytes(80 + 5 * 130))]
            for old in range(height - 2 * checkpoint + 1, height - checkpoint + 1):
                gc += [(f"pp/{old:012d}", None), (f"proof/{old:012d}", None)]
            calls.append(gc)
        return calls


def genesis(store: Store) -> None:
    state = State()
    state.apply({f"bal/{m}": 10**13 for m in MEMBERS})
    header = BlockHeader("bench", 0, bytes(32), bytes(32), bytes(32), state.root, 0, "", 0)
    store.initialise("bench", header, state)


def time_lookups(store: Store, known: list[bytes], work: Workload) -> dict[str, float]:
    """CPU per `tx_locations` call (us): 2,000 ids that are in the index, 2,000 that are not."""
    hits = work.rng.sample(known, min(2000, len(known)))
    misses = [work.rng.randbytes(32) for _ in range(2000)]
    result = {}
    for name, ids in (("hit_us", hits), ("miss_us", misses)):
        start = time.process_time()
        for tx_id in ids:
            store.tx_locations(tx_id)
        result[name] = 1e6 * (time.process_time() - start) / len(ids)
    return result


class Checkpoints:
    """The node's way of checkpointing (`--checkpoints background`): copying on a worker thread,
    finished by the writer between blocks."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.checkpointer = WalCheckpointer(store.path)
        self.worker = concurrent.futures.ThreadPoolExecutor(1)
        self.running: concurrent.futures.Future | None = None
        self.finished = 0

    def between_blocks(self) -> None:
        if self.running is not None and self.running.done():
            self.running.result()
            self.checkpointer.finish(self.store)
            self.running = None
            self.finished += 1
        if self.running is None and self.checkpointer.due(self.store):
            self.checkpointer.start(self.store)
            self.running = self.worker.submit(self.checkpointer.copy_until_quiet)

    def close(self) -> None:
        if self.running is not None:
            self.running.result()
        self.worker.shutdown()
        self.checkpointer.close()


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    background = args.checkpoints == "background"
    store = Store(
        directory / "ledger.sqlite",
        cache_bytes=args.cache_mb * 2**20,
        background_checkpoints=background,
    )
    genesis(store)
    checkpoints = Checkpoints(store) if background else None
    work = Workload(args.seed, args.txs, args.state_writes, args.record_bytes)
    append_cpu: list[float] = []
    records_cpu: list[float] = []
    append_wall: list[float] = []
    lookups: dict[str, dict[str, float]] = {}
    sample: list[bytes] = []
    record_calls = 0
    clock = time.thread_time
    wall = time.perf_counter()
    process_cpu = time.process_time()
    for height in range(1, args.blocks + 1):
        block = work.block(height)
        calls = work.consensus_calls(height, block[1], args.checkpoint)
        record_calls += len(calls)
        spent = 0.0
        for writes in calls:
            start = clock()
            store.write_consensus_records(writes)
            spent += clock() - start
        records_cpu.append(spent)
        start, start_wall = clock(), time.perf_counter()
        store.append(*block)
        append_cpu.append(clock() - start)
        append_wall.append(time.perf_counter() - start_wall)
        if checkpoints is not None:
            checkpoints.between_blocks()
        sample += block[2][:: max(1, args.txs // 20)]
        if height in (min(args.window, args.blocks), args.blocks):
            lookups["start" if height < args.blocks else "end"] = time_lookups(store, sample, work)
    if checkpoints is not None:
        checkpoints.close()
    wall = time.perf_counter() - wall
    process_cpu = time.process_time() - process_cpu
    tx_count = store.tx_count()
    files = {p.name: p.stat().st_size for p in directory.iterdir()}
    store.close()
    w = min(args.window, args.blocks)

    def phase(values: list[float]) -> dict[str, float]:
        return {
            "ms_per_block": 1000 * sum(values) / len(values),
            "us_per_tx": 1e6 * sum(values) / len(values) / args.txs,
        }

    return {
        "blocks": args.blocks,
        "txs_per_block": args.txs,
        "state_writes_per_block": args.state_writes,
        "tx_index_rows": tx_count,
        "record_calls_per_block": record_calls / args.blocks,
        "append": {"start": phase(append_cpu[:w]), "end": phase(append_cpu[-w:])},
        "records": {"start": phase(records_cpu[:w]), "end": phase(records_cpu[-w:])},
        "total": {
            "start": phase([a + b for a, b in zip(append_cpu[:w], records_cpu[:w], strict=True)]),
            "end": phase([a + b for a, b in zip(append_cpu[-w:], records_cpu[-w:], strict=True)]),
        },
        "tx_locations": lookups,
        "append_wall_ms": {
            "mean": 1000 * sum(append_wall) / len(append_wall),
            "max": 1000 * max(append_wall),
        },
        "run_wall_s": wall,
        "process_cpu_s": process_cpu,
        "checkpoints": args.checkpoints,
        "background_checkpoints": checkpoints.finished if checkpoints else None,
        "file_bytes": files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=300)
    parser.add_argument("--txs", type=int, default=2000)
    parser.add_argument("--state-writes", type=int, default=3000)
    parser.add_argument("--window", type=int, default=30, help="blocks averaged at start and end")
    parser.add_argument("--checkpoint", type=int, default=8, help="PBFT checkpoint interval")
    parser.add_argument(
        "--record-bytes", type=int, default=None, help="pre-prepare size (default: the block's)"
    )
    parser.add_argument("--cache-mb", type=int, default=128, help="SQLite page cache")
    parser.add_argument("--checkpoints", choices=("inline", "background"), default="inline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary store goes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = args.dir or Path(os.environ.get("TMPDIR", tempfile.gettempdir()))
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base, prefix="store-bench-") as tmp:
        result = run(args, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['blocks']} blocks of {args.txs} txs and {args.state_writes} state writes; "
        f"tx index {result['tx_index_rows']:,} rows; "
        f"{result['record_calls_per_block']:.2f} write_consensus_records calls per block"
    )
    print(f"{'CPU':<26}{'start ms/block':>15}{'us/tx':>8}{'end ms/block':>15}{'us/tx':>8}")
    for name, label in (
        ("append", "append"),
        ("records", "write_consensus_records"),
        ("total", "both"),
    ):
        s, e = result[name]["start"], result[name]["end"]
        print(
            f"{label:<26}{s['ms_per_block']:>15.2f}{s['us_per_tx']:>8.2f}"
            f"{e['ms_per_block']:>15.2f}{e['us_per_tx']:>8.2f}"
        )
    sizes = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sorted(result["file_bytes"].items()))
    lk = result["tx_locations"]
    print(
        f"tx_locations CPU: start {lk['start']['hit_us']:.1f} us (hit) / "
        f"{lk['start']['miss_us']:.1f} us (miss), end {lk['end']['hit_us']:.1f} / "
        f"{lk['end']['miss_us']:.1f} us"
    )
    aw = result["append_wall_ms"]
    print(f"append wall time: mean {aw['mean']:.1f} ms, max {aw['max']:.1f} ms (checkpoints)")
    print(
        f"run {result['run_wall_s']:.1f} s, process CPU {result['process_cpu_s']:.1f} s "
        f"({args.checkpoints} checkpoints); files before close: {sizes}"
    )


if __name__ == "__main__":
    main()
