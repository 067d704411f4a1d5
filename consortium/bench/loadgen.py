"""A load generator process: pre-signed transactions published at a target rate (open loop) or
with a bounded number outstanding (closed loop), and the latency of each until f+1 nodes agree.

Signing happens before the clock starts, so the generator measures the network, not itself.
Notices are counted by the client protocol itself (`ClientCore`): a transaction is accepted on
f+1 matching notices (same block hash and receipt). Once f+1 nodes say they are overloaded it is
refused, but not necessarily for good: another node (the primary, say) may have taken it, and then
it commits all the same. So a refused transaction is still watched for `REFUSAL_GRACE_S`: if it
commits, it counts as accepted (its latency from its first send) and as
`committed_after_refusal`; only one that does not commit by then, or by the end, counts as
refused. An open loop never retransmits.
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
REFUSAL_GRACE_S = 30.0  # a refused transaction that another node took commits within this


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
    refused: int = 0  # f+1 nodes answered "overloaded", and it did not commit after all
    committed_after_refusal: int = 0  # refused by f+1 nodes, then committed (counted accepted)
    failed_receipts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)  # wall time of each acceptance
    sign_s: float = 0.0
    signed: int = 0  # transactions signed before the clock started


class LoadAccounting:
    """What a generator sent and what came of it: accepted with its latency, or refused."""

    def __init__(self, report: LoadReport, core: ClientCore) -> None:
        self.report = report
        self.core = core
        self.sent_at: dict[bytes, float] = {}  # perf_counter time of the first send
        self.refused_at: dict[bytes, float] = {}  # in refusal order
        self.outstanding = 0  # sent, neither decided nor refused

    def sent(self, tx_ids: list[bytes], now: float) -> None:
        for tx_id in tx_ids:
            self.sent_at[tx_id] = now
        self.report.sent += len(tx_ids)
        self.outstanding += len(tx_ids)

    def carry(self, step: ClientStep, now: float, wall: float) -> None:
        for decided in step.decided:
            sent = self.sent_at.pop(decided.tx_id, None)
            if sent is None or not isinstance(decided, Outcome):
                continue
            if self.refused_at.pop(decided.tx_id, None) is not None:
                self.report.committed_after_refusal += 1
            else:
                self.outstanding -= 1
            self.report.accepted += 1
            self.report.latencies_ms.append((now - sent) * 1000)
            self.report.accepted_at.append(wall)
            if not decided.ok:
                self.report.failed_receipts += 1
        for refused in step.refused:
            if refused.tx_id in self.sent_at and refused.tx_id not in self.refused_at:
                self.refused_at[refused.tx_id] = now
                self.outstanding -= 1

    def expire(self, now: float, grace_s: float = REFUSAL_GRACE_S) -> None:
        """Refusals older than `grace_s` are final: counted, and forgotten by the client."""
        expired = []
        for tx_id, at in self.refused_at.items():
            if now - at < grace_s:
                break
            expired.append(tx_id)
        self._settle(expired)

    def finish(self) -> None:
        """The run is over: what is still refused stays refused."""
        self._settle(list(self.refused_at))

    def _settle(self, tx_ids: list[bytes]) -> None:
        for tx_id in tx_ids:
            del self.refused_at[tx_id]
            self.sent_at.pop(tx_id, None)
        self.report.refused += len(tx_ids)
        self.core.forget(tx_ids)


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
    books = LoadAccounting(report, core)

    def on_message(message: IncomingMessage) -> None:
        step = core.on_message(message.topic, message.payload, int(time.monotonic() * 1000))
        books.carry(step, time.perf_counter(), time.time())

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
                due = cursor + max(0, plan.window - books.outstanding)
            else:
                due = int(plan.rate * elapsed) + 1
            due = min(due, len(txs), cursor + plan.batch * 10)
            while cursor < due:
                chunk = txs[cursor : min(due, cursor + plan.batch)]
                books.sent([stx.tx_id for stx in chunk], time.perf_counter())
                step = core.submit(chunk, int(time.monotonic() * 1000), retransmit_ms=NEVER_MS)
                for item in step.publish:
                    bus.publish(item.topic, item.payload)
                cursor += len(chunk)
            books.expire(time.perf_counter())
            await asyncio.sleep(TICK_S)
        # Let the last transactions come back, the refused ones too (bounded).
        deadline = time.perf_counter() + 10
        while (books.outstanding > 0 or books.refused_at) and time.perf_counter() < deadline:
            books.expire(time.perf_counter())
            await asyncio.sleep(0.05)
        books.finish()
    return report
