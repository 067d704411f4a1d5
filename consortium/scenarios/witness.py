"""A chain client that also remembers what each node reported, to show one node's own notice.

`ChainClient` accepts an outcome on f+1 matching commit notices, which need not include the node
a step names in `via`; the narration shows that node's notice, so the runner waits for it too and
requires it to agree with the accepted outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from consortium.client.client import ChainClient, ClientLogin, Outcome
from consortium.config import NetworkConfig
from consortium.errors import RemoteError
from consortium.keys import KeyDirectory
from consortium.notices import CommitNotice
from consortium.transport.mqtt import IncomingMessage


@dataclass(frozen=True, slots=True)
class NodeReport:
    """One node's signed statement of where a transaction landed and how it ended."""

    node: str
    height: int
    block_hash: bytes
    ok: bool
    reason: str


class WitnessingClient(ChainClient):
    def __init__(self, config: NetworkConfig, keys: KeyDirectory, login: ClientLogin) -> None:
        self.watched: dict[bytes, dict[str, NodeReport]] = {}
        self._arrived = asyncio.Event()
        super().__init__(config, keys, login)

    def _on_message(self, message: IncomingMessage) -> None:
        super()._on_message(message)
        if not self.watched:
            return
        try:
            notice = CommitNotice.decode(message.payload, self.config.chain_id, self.node_keys)
        except RemoteError:
            return
        for receipt in notice.receipts:
            reports = self.watched.get(receipt.tx_id)
            if reports is not None and notice.node not in reports:
                reports[notice.node] = NodeReport(
                    notice.node, notice.height, notice.block_hash, receipt.ok, receipt.reason
                )
                self._arrived.set()

    def watch(self, tx_ids: list[bytes]) -> None:
        """Start remembering node reports of `tx_ids` (before they are published)."""
        for tx_id in tx_ids:
            self.watched.setdefault(tx_id, {})

    def forget(self, tx_ids: list[bytes]) -> None:
        for tx_id in tx_ids:
            self.watched.pop(tx_id, None)

    async def report_of(self, tx_id: bytes, node: str, timeout_s: float) -> NodeReport | None:
        """`node`'s report of `tx_id`, waiting up to `timeout_s`; None if it never came."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._arrived.clear()
            report = self.watched.get(tx_id, {}).get(node)
            if report is not None:
                return report
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=min(left, 0.5))


def agrees(report: NodeReport, outcome: Outcome) -> bool:
    return (
        report.height == outcome.height
        and report.block_hash == outcome.block_hash
        and report.ok == outcome.ok
        and report.reason == outcome.reason
    )
