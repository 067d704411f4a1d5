"""How fast the explorer answers on a long chain: the block list and block pages on a store of
100,000 blocks (most of 10 transactions, one in 1,000 of 2,000), every certificate really signed.

    .venv/bin/python benchmarks/explorer_bench.py [--blocks 100000] [--dir /tmp/explorer-bench]

The store is built directly through `Store.append` (headers, receipts and certificates as a node
writes them, without executing the transactions: page times do not depend on what they did), then
each page is requested in process through Starlette's test client and timed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from starlette.testclient import TestClient

from consortium.certificate import CommitCertificate, commit_statement
from consortium.client.wallet import Wallet
from consortium.config import load_config
from consortium.devnet import make_devnet
from consortium.explorer.app import create_app
from consortium.explorer.network import NetworkHistory
from consortium.keys import load_directory
from consortium.ledger.block import BlockHeader, Receipt
from consortium.ledger.ledger import Ledger, store_path
from consortium.ledger.state import Layer
from consortium.roles import quorum_size

BIG_EVERY = 1_000
SMALL_TXS = 10
BIG_TXS = 2_000
REQUESTS = 20


def build(directory: Path, blocks: int) -> None:
    net = make_devnet(directory, nodes=5, load_signers=1)
    ledger = Ledger(net.config, net.keys, store_path(net.config, "regulator"))
    wallet = Wallet(net.config.chain_id, "load-0000", net.member_pairs["load-0000"], first_nonce=1)
    raws = [
        wallet.sign("receivable.draft", {"debtor": "core", "amount": 1000 + i, "due_day": 90})
        for i in range(BIG_TXS)
    ]
    signers = sorted(net.node_pairs)[: quorum_size(len(net.node_pairs))]
    store = ledger.store
    parent = ledger.head.hash
    no_writes = Layer(ledger.chain.state, {})
    started = time.perf_counter()
    for height in range(1, blocks + 1):
        count = BIG_TXS if height % BIG_EVERY == 0 else SMALL_TXS
        txs = raws[:count]
        receipts = tuple(
            Receipt(t.tx_id, i % 7 != 3, "" if i % 7 != 3 else "no receivable rcv-x", None)
            for i, t in enumerate(txs)
        )
        header = BlockHeader(
            net.config.chain_id, height, parent, bytes(32), bytes(32), bytes(32), 0, "bank-a", 0
        )
        statement = commit_statement(net.config.chain_id, 0, height, header.hash)
        cert = CommitCertificate(
            0, height, header.hash, tuple((n, net.node_pairs[n].sign(statement)) for n in signers)
        )
        tx_ids = [t.tx_id for t in txs] if count == SMALL_TXS else []
        store.append(header, tuple(t.raw for t in txs), tx_ids, receipts, cert, no_writes)
        parent = header.hash
        if height % 10_000 == 0:
            print(f"  {height:,} blocks in {time.perf_counter() - started:.0f} s", flush=True)
    ledger.close()


def timed(client: TestClient, path: str) -> tuple[float, float]:
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/explorer-bench"))
    args = parser.parse_args()
    if not (args.dir / "net" / "data" / "regulator" / "ledger.sqlite").exists():
        print(f"building {args.blocks:,} blocks under {args.dir}")
        build(args.dir / "net", args.blocks)
    config = load_config(args.dir / "net" / "nodes.yaml")
    keys = load_directory(config)
    history = NetworkHistory({n.id: n.role for n in config.nodes})
    app = create_app(config, keys, "regulator", history, follow_bus=False)
    top = args.blocks
    with TestClient(app) as client:
        for name, path in (
            ("block list, newest page", "/blocks"),
            ("block list, middle page", f"/blocks?before={top // 2}"),
            ("block list, first page", "/blocks?before=25"),
            (f"block page, {SMALL_TXS} txs", f"/blocks/{top // 2 + 1}"),
            (f"block page, {BIG_TXS} txs", f"/blocks/{BIG_EVERY * (top // BIG_EVERY // 2)}"),
            ("block page, genesis", "/blocks/0"),
        ):
            p50, worst = timed(client, path)
            print(f"{name:32s} p50 {p50:6.1f} ms   max {worst:6.1f} ms   ({path})")


if __name__ == "__main__":
    main()
