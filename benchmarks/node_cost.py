"""What one node spends per committed transaction, by kind of input, without a broker or a shared
machine's noise: five `NodeCore`s in one process over real on-disk stores, real signatures and
`effects.carry_out` into each node's `Outbox`, wired by an in-memory bus.

Every request batch goes to every node, as the load generator's broadcast does; the blocks are the
load generator's receivable drafts. Each node's CPU time (`thread_time`) is charged to what it was
handling: a request batch (decoding, signature checks, admission), a consensus message (a
PRE-PREPARE's validation and execution, votes, commits and the store's writes), or a timer. The
bus costs nothing here, so the figures are the node's own work: `bound_tx_per_s` of
`bench consensus` assumes it is only the signature check.

    .venv/bin/python benchmarks/node_cost.py [--blocks 20] [--batch 1000] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from consortium import codec
from consortium.client.wallet import Wallet
from consortium.crypto import KeyPair
from consortium.devnet import load_signer_id, make_devnet
from consortium.ledger.ledger import Ledger, store_path
from consortium.node.core import NodeCore, NodeStep, Publish
from consortium.node.effects import carry_out
from consortium.node.outbox import Outbox
from consortium.transport import topics

CLIENT = "load-0000"
SIGNERS = 16


class BenchNode:
    """One node: its core, its outbox (syncing at once) and its CPU time by kind of input."""

    def __init__(self, net: BenchNet, node_id: str, core: NodeCore) -> None:
        self.net = net
        self.node_id = node_id
        self.core = core
        self.outbox = Outbox(core.ledger.store, self._sync, self._send)
        self.timers: dict[str, int] = {}
        self.cpu_s: dict[str, float] = defaultdict(float)
        self.profile: cProfile.Profile | None = None

    def _sync(self, number: int) -> None:
        self.core.ledger.store.sync()
        self.outbox.synced(number)

    def _send(self, item: Publish) -> None:
        self.net.queue.append((self.node_id, item))

    def set_timer(self, name: str, at_ms: int) -> None:
        self.timers[name] = at_ms

    def cancel_timer(self, name: str) -> None:
        self.timers.pop(name, None)

    def run(self, kind: str, step_of: object, *args: object) -> None:
        if self.profile is not None:
            self.profile.enable()
        started = time.thread_time()
        step: NodeStep = step_of(*args)  # type: ignore[operator]
        carry_out(step, self.outbox, self.outbox, self)
        self.cpu_s[kind] += time.thread_time() - started
        if self.profile is not None:
            self.profile.disable()


class BenchNet:
    def __init__(self, directory: Path, batch: int, profile: bool) -> None:
        self.devnet = make_devnet(
            directory,
            nodes=5,
            load_signers=SIGNERS,
            consensus={"batch_max_txs": batch, "batch_delay_ms": 20},
        )
        config = self.devnet.config
        self.chain = config.chain_id
        self.now = 0
        self.queue: list[tuple[str, Publish]] = []
        self.nodes: dict[str, BenchNode] = {}
        for node_id in config.node_ids:
            ledger = Ledger(config, self.devnet.keys, store_path(config, node_id))
            pair: KeyPair = self.devnet.node_pairs[node_id]
            core = NodeCore(config, self.devnet.keys, node_id, pair, ledger, durable=True)
            self.nodes[node_id] = BenchNode(self, node_id, core)
            if profile:
                self.nodes[node_id].profile = cProfile.Profile()
        for node in self.nodes.values():
            node.run("timer", node.core.start, self.now)

    def broadcast(self, raws: list[bytes]) -> None:
        """A client's batch on `req/<client>`, as every node receives and admits it."""
        topic = topics.request_topic(self.chain, CLIENT)
        payload = codec.encode_flat(raws)
        for node in self.nodes.values():
            node.run("requests", node.core.on_message, topic, payload, self.now)
            while node.core.has_queued_requests:
                node.run("requests", node.core.admit_next, self.now)

    def deliver(self) -> None:
        while self.queue:
            sender, item = self.queue.pop(0)
            parsed = topics.parse_topic(self.chain, item.topic)
            if parsed.kind is not topics.TopicKind.PBFT:
                continue  # notices to clients, heartbeats
            for node_id, node in self.nodes.items():
                if node_id != sender and parsed.dest in (None, node_id):
                    node.run("consensus", node.core.on_message, item.topic, item.payload, self.now)

    def advance(self, ms: int) -> None:
        end = self.now + ms
        while True:
            due = sorted(
                (at, node_id, name)
                for node_id, node in self.nodes.items()
                for name, at in node.timers.items()
                if at <= end
            )
            if not due:
                break
            at, node_id, name = due[0]
            self.now = max(self.now, at)
            node = self.nodes[node_id]
            del node.timers[name]
            node.run("timer", node.core.on_timer, name, self.now)
            self.deliver()
        self.now = end


def presign(net: BenchNet, count: int) -> list[bytes]:
    pairs = net.devnet.member_pairs
    wallets = [
        Wallet(net.chain, load_signer_id(i), pairs[load_signer_id(i)], first_nonce=1)
        for i in range(SIGNERS)
    ]
    args = {"debtor": "core", "due_day": 10**6}
    return [
        wallets[i % SIGNERS].sign("receivable.draft", {**args, "amount": 1000 + i}).raw
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1000, help="transactions per block")
    parser.add_argument("--warmup-blocks", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        net = BenchNet(Path(tmp) / "net", args.batch, args.profile)
        primary = net.nodes[next(iter(net.nodes))].core.replica.primary
        raws = presign(net, (args.blocks + args.warmup_blocks) * args.batch)
        for index in range(args.blocks + args.warmup_blocks):
            if index == args.warmup_blocks:
                for node in net.nodes.values():
                    node.cpu_s.clear()
                    if node.profile is not None:
                        node.profile = cProfile.Profile()
                committed_before = net.nodes[primary].core.app.committed_txs
            net.broadcast(raws[index * args.batch : (index + 1) * args.batch])
            net.deliver()
            net.advance(50)
        committed = net.nodes[primary].core.app.committed_txs - committed_before
        heights = {n.core.ledger.head.height for n in net.nodes.values()}
        report = {
            "blocks": args.blocks,
            "batch": args.batch,
            "committed_txs": committed,
            "heights": sorted(heights),
            "primary": primary,
            "us_per_tx": {
                node_id: {k: round(v * 1e6 / committed, 1) for k, v in sorted(node.cpu_s.items())}
                | {"total": round(sum(node.cpu_s.values()) * 1e6 / committed, 1)}
                for node_id, node in net.nodes.items()
            },
        }
        if args.json:
            print(json.dumps(report, sort_keys=True))
        else:
            print(f"{committed} transactions committed in {args.blocks} blocks; primary {primary}")
            for node_id, costs in report["us_per_tx"].items():
                role = "primary" if node_id == primary else "backup"
                parts = ", ".join(f"{k} {v}" for k, v in costs.items())
                print(f"  {node_id:10} ({role}): us per transaction: {parts}")
        if args.profile:
            for node_id in (primary, next(n for n in net.nodes if n != primary)):
                profile = net.nodes[node_id].profile
                assert profile is not None
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
                print(f"== {node_id} ==", file=sys.stderr)
                print(out.getvalue(), file=sys.stderr)
        for node in net.nodes.values():
            node.core.ledger.close()


if __name__ == "__main__":
    main()
