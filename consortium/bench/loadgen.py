"""A load generator process: pre-signed transactions published at a target rate (open loop) or
with a bounded number outstanding (closed loop), and the latency of each until f+1 nodes agree.

Signing happens before the clock starts, so the generator measures the network, not itself.
Notices are counted by the client protocol itself (`ClientCore`): a transaction is accepted on
f+1 matching notices (same block hash and receipt), and refused once f+1 nodes say they are
overloaded; an open loop does not retransmit a refused transaction, it counts it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from consortium.client.client import ClientLogin
from consortium.client.protocol import ClientCore, ClientStep, Outcome
from consortium.client.wallet import Wallet
from consortium.config import load_config
from consortium.keys import load_directory, load_keypair
from consortium.ledger.tx import SignedTransaction
from consortium.transport import credentials, topics
from consortium.transport.mqtt import IncomingMessage, MqttTransport

TICK_S = 0.01
NEVER_MS = 10**12  # the generator measures first tries: it never retransmits


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
    refused: int = 0  # f+1 nodes answered "overloaded"
    failed_receipts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)  # wall time of each acceptance
    sign_s: float = 0.0
    signed: int = 0  # transactions signed before the clock started


def run_load(plan: LoadPlan, ready: Any, go: Any, results: Any) -> None:
    """Entry point of a generator process: sign, say ready, wait for go, run, report."""
    results.put(asyncio.run(_run(plan, ready, go)))


def presign_count(plan: LoadPlan) -> int:
    """How many transactions the generator signs ahead: its whole plan and a 5 % margin (the
    clock may run slightly fast), plus a closed loop's window."""
    return int(plan.rate * plan.duration_s * 1.05) + plan.window + 100


def _presign(plan: LoadPlan) -> list[SignedTransaction]:
    config = load_config(plan.config_path)
    wallets = [
        Wallet(config.chain_id, s, load_keypair(config, s, "member"), first_nonce=1)
        for s in plan.signers
    ]
    txs = []
    for i in range(presign_count(plan)):
        wallet = wallets[i % len(wallets)]
        args = {"debtor": "core", "amount": 1000 + i, "due_day": 10**6}
        txs.append(wallet.sign("receivable.draft", args))
    return txs


async def _run(plan: LoadPlan, ready: Any, go: Any) -> LoadReport:
    report = LoadReport(plan.client_index)
    start_sign = time.perf_counter()
    txs = _presign(plan)
    report.sign_s = time.perf_counter() - start_sign
    report.signed = len(txs)
    config = load_config(plan.config_path)
    client_id = f"load-{plan.client_index}"
    node_keys = load_directory(config).node_keys
    core = ClientCore(config.chain_id, node_keys, len(config.node_ids), client_id)
    sent_at: dict[bytes, float] = {}
    outstanding = 0

    def carry(step: ClientStep) -> None:
        nonlocal outstanding
        now = time.perf_counter()
        for decided in step.decided:
            sent = sent_at.pop(decided.tx_id, None)
            if sent is None or not isinstance(decided, Outcome):
                continue
            report.accepted += 1
            outstanding -= 1
            report.latencies_ms.append((now - sent) * 1000)
            report.accepted_at.append(time.time())
            if not decided.ok:
                report.failed_receipts += 1
        for refused in step.refused:
            if sent_at.pop(refused.tx_id, None) is not None:
                report.refused += 1
                outstanding -= 1
        core.forget([r.tx_id for r in step.refused])

    def on_message(message: IncomingMessage) -> None:
        carry(core.on_message(message.topic, message.payload, int(time.monotonic() * 1000)))

    login = ClientLogin.local(config, client_id).login
    settings = credentials.mqtt_settings(
        login,
        (topics.commit_filter(config.chain_id), topics.answer_filter(config.chain_id, client_id)),
    )
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
                step = core.submit(chunk, int(time.monotonic() * 1000), retransmit_ms=NEVER_MS)
                for item in step.publish:
                    bus.publish(item.topic, item.payload)
                report.sent += len(chunk)
                outstanding += len(chunk)
                cursor += len(chunk)
            await asyncio.sleep(TICK_S)
        # Let the last transactions come back (bounded).
        deadline = time.perf_counter() + 10
        while outstanding > 0 and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    return report
