"""A load generator process: pre-signed transactions published at a target rate (open loop) or
with a bounded number outstanding (closed loop), and the latency of each until f+1 nodes agree.

Signing happens before the clock starts, so the generator measures the network, not itself.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from consortium import codec
from consortium.client.client import ClientLogin
from consortium.client.wallet import Wallet
from consortium.config import load_config
from consortium.errors import RemoteError
from consortium.keys import load_directory, load_keypair
from consortium.notices import CommitNotice
from consortium.roles import max_faulty
from consortium.transport import topics
from consortium.transport.mqtt import IncomingMessage, MqttSettings, MqttTransport

TICK_S = 0.01


@dataclass(frozen=True, slots=True)
class LoadPlan:
    config_path: str
    client_index: int
    signers: tuple[str, ...]
    rate: float  # transactions per second offered by this generator (open loop)
    window: int  # outstanding transactions (closed loop) when > 0
    duration_s: float
    batch: int = 200


@dataclass(slots=True)
class LoadReport:
    client_index: int
    sent: int = 0
    accepted: int = 0
    failed_receipts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)  # wall time of each acceptance
    sign_s: float = 0.0


def run_load(plan: LoadPlan, ready: Any, go: Any, results: Any) -> None:
    """Entry point of a generator process: sign, say ready, wait for go, run, report."""
    results.put(asyncio.run(_run(plan, ready, go)))


def _presign(plan: LoadPlan) -> list:
    config = load_config(plan.config_path)
    wallets = [
        Wallet(config.chain_id, s, load_keypair(config, s, "member"), first_nonce=1)
        for s in plan.signers
    ]
    count = int(plan.rate * plan.duration_s * 1.05) + plan.window + 100
    txs = []
    for i in range(count):
        wallet = wallets[i % len(wallets)]
        args = {"debtor": "core", "amount": 1000 + i, "due_day": 10**6}
        txs.append(wallet.sign("receivable.draft", args))
    return txs


async def _run(plan: LoadPlan, ready: Any, go: Any) -> LoadReport:
    report = LoadReport(plan.client_index)
    start_sign = time.perf_counter()
    txs = _presign(plan)
    report.sign_s = time.perf_counter() - start_sign
    config = load_config(plan.config_path)
    node_keys = load_directory(config).node_keys
    accept_after = max_faulty(len(config.node_ids)) + 1
    sent_at: dict[bytes, float] = {}
    votes: dict[bytes, int] = {}
    outstanding = 0

    def on_message(message: IncomingMessage) -> None:
        nonlocal outstanding
        try:
            notice = CommitNotice.decode(message.payload, config.chain_id, node_keys)
        except RemoteError:
            return
        now = time.perf_counter()
        for receipt in notice.receipts:
            sent = sent_at.get(receipt.tx_id)
            if sent is None:
                continue
            count = votes.get(receipt.tx_id, 0) + 1
            votes[receipt.tx_id] = count
            if count == accept_after:
                report.accepted += 1
                outstanding -= 1
                report.latencies_ms.append((now - sent) * 1000)
                report.accepted_at.append(time.time())
                if not receipt.ok:
                    report.failed_receipts += 1

    login = ClientLogin.local(config, f"load-{plan.client_index}").login
    settings = MqttSettings(
        login.url,
        login.username,
        login.password,
        (topics.commit_filter(config.chain_id),),
        ca_file=login.ca_file,
    )
    topic = topics.request_topic(config.chain_id, f"load-{plan.client_index}")
    async with MqttTransport(settings, on_message=on_message) as bus:
        await bus.wait_connected(timeout_s=15)
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.01)
        begin = time.perf_counter()
        cursor = 0
        while cursor < len(txs):
            elapsed = time.perf_counter() - begin
            if elapsed > plan.duration_s:
                break
            if plan.window > 0:
                due = cursor + max(0, plan.window - outstanding)
            else:
                due = int(plan.rate * elapsed) + 1
            due = min(due, len(txs), cursor + plan.batch * 10)
            while cursor < due:
                chunk = txs[cursor : min(due, cursor + plan.batch)]
                now = time.perf_counter()
                for stx in chunk:
                    sent_at[stx.tx_id] = now
                bus.publish(topic, codec.encode_flat([t.raw for t in chunk]))
                report.sent += len(chunk)
                outstanding += len(chunk)
                cursor += len(chunk)
            await asyncio.sleep(TICK_S)
        # Let the last transactions come back (bounded).
        deadline = time.perf_counter() + 10
        while report.accepted < report.sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    return report
