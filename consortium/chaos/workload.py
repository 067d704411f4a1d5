"""A workload of acknowledged transactions: what the checker later demands on every ledger.

Each signer has at most one transaction in flight, so nonces always commit in order whatever the
faults do (a later nonce committed first would make the earlier one stale). A transaction counts
as acknowledged only when `ChainClient` returned its outcome (f+1 matching signed notices); one
still unanswered when the run gives up is indeterminate: it may or may not commit, and the
checker only demands that it is never committed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from consortium.client.client import ChainClient, ClientLogin, Outcome
from consortium.client.wallet import Wallet
from consortium.config import NetworkConfig
from consortium.crypto import KeyPair
from consortium.keys import KeyDirectory
from consortium.ledger.tx import SignedTransaction

DRAFT_AMOUNT = 1_000
DRAFT_DUE_DAY = 10**6
RECENT_RAWS = 1_000


@dataclass(slots=True)
class WorkloadResult:
    acknowledged: dict[bytes, Outcome] = field(default_factory=dict)
    indeterminate: set[bytes] = field(default_factory=set)
    submitted: int = 0
    failed_receipts: int = 0
    max_stall_s: float = 0.0
    acknowledged_at: list[float] = field(default_factory=list)  # monotonic time of each ack


class AckWorkload:
    """Receivable drafts from many signers over several client connections.

    `stop_submitting` ends new submissions; transactions in flight are still awaited until
    `give_up` (or until `run`'s deadline), so a heal can turn them into acknowledgements."""

    def __init__(
        self,
        config: NetworkConfig,
        keys: KeyDirectory,
        signers: dict[str, KeyPair],
        client_ids: Sequence[str],
    ) -> None:
        if not signers:
            raise ValueError("the workload needs at least one signer")
        if not client_ids:
            raise ValueError("the workload needs at least one client login")
        self.config = config
        self.keys = keys
        self.wallets = [Wallet(config.chain_id, m, signers[m]) for m in sorted(signers)]
        self.client_ids = list(client_ids)
        self.result = WorkloadResult()
        self.in_flight = 0
        self.last_progress = time.monotonic()
        # The raw bytes of the latest acknowledged transactions, for anyone who wants to replay them.
        self.recent_raws: deque[bytes] = deque(maxlen=RECENT_RAWS)
        self.submitting = asyncio.Event()
        self.finished = asyncio.Event()
        self.submitting.set()

    def stop_submitting(self) -> None:
        self.submitting.clear()

    def give_up(self) -> None:
        self.finished.set()

    def _sign(self, wallet: Wallet) -> SignedTransaction:
        args = {"debtor": "core", "amount": DRAFT_AMOUNT, "due_day": DRAFT_DUE_DAY}
        return wallet.sign("receivable.draft", args)

    def _note_progress(self, now: float) -> None:
        if self.in_flight > 0:
            self.result.max_stall_s = max(self.result.max_stall_s, now - self.last_progress)
        self.last_progress = now

    async def _await_outcome(self, client: ChainClient, stx: SignedTransaction) -> None:
        now = time.monotonic()
        if self.in_flight == 0:
            self.last_progress = now
        self.in_flight += 1
        self.result.submitted += 1
        waiting = asyncio.ensure_future(client.submit_one(stx, timeout_s=24 * 3600))
        giving_up = asyncio.ensure_future(self.finished.wait())
        try:
            await asyncio.wait({waiting, giving_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            giving_up.cancel()
        self._note_progress(time.monotonic())
        self.in_flight -= 1
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await waiting
            self.result.indeterminate.add(stx.tx_id)
            return
        outcome = waiting.result()
        now = time.monotonic()
        self.result.acknowledged[stx.tx_id] = outcome
        self.recent_raws.append(stx.raw)
        self.result.acknowledged_at.append(now)
        if not outcome.ok:
            self.result.failed_receipts += 1

    async def _signer(self, client: ChainClient, wallet: Wallet) -> None:
        while self.submitting.is_set() and not self.finished.is_set():
            await self._await_outcome(client, self._sign(wallet))

    async def run(self) -> WorkloadResult:
        """Submit until stopped; returns once every signer's last transaction is settled."""
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    ChainClient(self.config, self.keys, ClientLogin.local(self.config, cid))
                )
                for cid in self.client_ids
            ]
            await asyncio.gather(
                *(
                    self._signer(clients[i % len(clients)], wallet)
                    for i, wallet in enumerate(self.wallets)
                )
            )
        return self.result

    def committed_since(self, since: float) -> int:
        return sum(1 for t in self.result.acknowledged_at if t >= since)
