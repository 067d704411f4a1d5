"""The client API: publish signed transactions, wait for f+1 matching receipts, retransmit.

A client connects with its own broker login, publishes batches of signed transactions on its
request topic, and listens to every node's commit notices. A transaction's outcome is accepted
once f+1 distinct nodes report the same (height, block hash, receipt): at least one of them is
honest. Unanswered transactions are published again after `retransmit_s`; nodes drop duplicates
and the nonce makes sure a transaction executes at most once. A node answers a retransmitted
transaction it already committed on the client's own answer topic (`commit/<node>/to/<client>`),
so a client that missed the broadcast notices still learns the outcome; `outcomes` asks the
network about any transaction id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from consortium import codec
from consortium.config import NetworkConfig
from consortium.errors import RemoteError
from consortium.keys import KeyDirectory
from consortium.ledger.tx import SignedTransaction
from consortium.node import broker
from consortium.node.broker import BrokerLogin
from consortium.notices import (
    MAX_ASKED_TXS,
    CommitNotice,
    UnknownNotice,
    decode_answer,
    encode_outcome_query,
)
from consortium.roles import max_faulty
from consortium.transport import topics
from consortium.transport.mqtt import IncomingMessage, MqttSettings, MqttTransport

MAX_BATCH = 2000


@dataclass(frozen=True, slots=True)
class Outcome:
    """A transaction's accepted result: where it was committed and what its receipt says."""

    tx_id: bytes
    height: int
    block_hash: bytes
    business_day: int
    ok: bool
    reason: str
    result: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id.hex(),
            "height": self.height,
            "block_hash": self.block_hash.hex(),
            "business_day": self.business_day,
            "ok": self.ok,
            "reason": self.reason,
            "result": _jsonable(self.result),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Unknown:
    """No f+1 nodes hold the transaction: `nodes` answered that they have not committed it, at
    the committed heights given."""

    tx_id: bytes
    heights: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {"tx_id": self.tx_id.hex(), "known": False, "heights": dict(self.heights)}


@dataclass(slots=True)
class _Waiting:
    future: asyncio.Future[Outcome]
    stx: SignedTransaction | None = None
    votes: dict[tuple, set[str]] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClientLogin:
    """A client's topic name (`req/<client_id>`) and its broker login."""

    client_id: str
    login: BrokerLogin

    @staticmethod
    def local(config: NetworkConfig, client_id: str) -> ClientLogin:
        return ClientLogin(
            client_id, broker.broker_login(config, broker.client_username(client_id))
        )


class ChainClient:
    def __init__(self, config: NetworkConfig, keys: KeyDirectory, login: ClientLogin) -> None:
        self.config = config
        self.node_keys = keys.node_keys
        self.login = login
        self.accept_after = max_faulty(len(config.node_ids)) + 1
        self.unknown_after = len(config.node_ids) - max_faulty(len(config.node_ids))
        self.waiting: dict[bytes, _Waiting] = {}
        self.rejected_notices = 0
        self.heights: dict[str, int] = {}
        settings = MqttSettings(
            login.login.url,
            login.login.username,
            login.login.password,
            (
                topics.commit_filter(config.chain_id),
                topics.answer_filter(config.chain_id, login.client_id),
            ),
            ca_file=login.login.ca_file,
        )
        self.transport = MqttTransport(settings, on_message=self._on_message)

    async def __aenter__(self) -> ChainClient:
        await self.transport.start()
        await self.transport.wait_connected(timeout_s=15)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()

    def _on_message(self, message: IncomingMessage) -> None:
        try:
            notice = decode_answer(message.payload, self.config.chain_id, self.node_keys)
        except RemoteError:
            self.rejected_notices += 1
            return
        self.heights[notice.node] = max(self.heights.get(notice.node, 0), notice.height)
        if not self.waiting:
            return
        if isinstance(notice, UnknownNotice):
            for tx_id in notice.tx_ids:
                waiting = self.waiting.get(tx_id)
                if waiting is not None and not waiting.future.done():
                    waiting.unknown[notice.node] = notice.height
            return
        self._count(notice)

    def _count(self, notice: CommitNotice) -> None:
        for receipt in notice.receipts:
            waiting = self.waiting.get(receipt.tx_id)
            if waiting is None or waiting.future.done():
                continue
            claim = (notice.height, notice.block_hash, notice.business_day, receipt.leaf())
            voters = waiting.votes.setdefault(claim, set())
            voters.add(notice.node)
            if len(voters) >= self.accept_after:
                waiting.future.set_result(
                    Outcome(
                        receipt.tx_id,
                        notice.height,
                        notice.block_hash,
                        notice.business_day,
                        receipt.ok,
                        receipt.reason,
                        receipt.result,
                    )
                )

    def publish(self, txs: Sequence[SignedTransaction]) -> None:
        """Send transactions without waiting (batches of at most MAX_BATCH per message)."""
        topic = topics.request_topic(self.config.chain_id, self.login.client_id)
        for start in range(0, len(txs), MAX_BATCH):
            batch = [t.raw for t in txs[start : start + MAX_BATCH]]
            self.transport.publish(topic, codec.encode_flat(batch))

    async def submit(
        self, txs: Sequence[SignedTransaction], timeout_s: float = 60.0, retransmit_s: float = 5.0
    ) -> list[Outcome]:
        """Publish `txs` and return their outcomes in order; raises TimeoutError after
        `timeout_s` without f+1 matching receipts for every one."""
        loop = asyncio.get_running_loop()
        entries = []
        for stx in txs:
            entry = self.waiting.get(stx.tx_id)
            if entry is None:
                entry = _Waiting(loop.create_future(), stx)
                self.waiting[stx.tx_id] = entry
            entries.append(entry)
        try:
            async with asyncio.timeout(timeout_s):
                self.publish(txs)
                while True:
                    pending = [e.future for e in entries if not e.future.done()]
                    if not pending:
                        break
                    _, still = await asyncio.wait(pending, timeout=retransmit_s)
                    if still:
                        self.publish([e.stx for e in entries if e.stx and not e.future.done()])
        finally:
            for stx in txs:
                self.waiting.pop(stx.tx_id, None)
        return [e.future.result() for e in entries]

    async def submit_one(self, stx: SignedTransaction, timeout_s: float = 60.0) -> Outcome:
        return (await self.submit([stx], timeout_s=timeout_s))[0]

    async def outcomes(
        self, tx_ids: Sequence[bytes], timeout_s: float = 10.0, ask_every_s: float = 2.0
    ) -> list[Outcome | Unknown]:
        """Ask every node about these transactions: an `Outcome` once f+1 nodes agree on it, an
        `Unknown` once n-f nodes answered that they hold none (or at the timeout)."""
        loop = asyncio.get_running_loop()
        entries = []
        for tx_id in tx_ids:
            entry = self.waiting.get(tx_id)
            if entry is None:
                entry = self.waiting[tx_id] = _Waiting(loop.create_future())
            entries.append(entry)
        topic = topics.ask_topic(self.config.chain_id, self.login.client_id)
        ids = list(dict.fromkeys(tx_ids))
        try:
            deadline = loop.time() + timeout_s
            next_ask = loop.time()
            while True:
                undecided = [
                    tx_id
                    for tx_id, e in zip(tx_ids, entries, strict=True)
                    if not e.future.done() and len(e.unknown) < self.unknown_after
                ]
                if not undecided or loop.time() >= deadline:
                    break
                if loop.time() >= next_ask:
                    for start in range(0, len(ids), MAX_ASKED_TXS):
                        chunk = [t for t in ids[start : start + MAX_ASKED_TXS] if t in undecided]
                        if chunk:
                            self.transport.publish(topic, encode_outcome_query(chunk))
                    next_ask = loop.time() + ask_every_s
                await asyncio.sleep(0.02)
        finally:
            for tx_id in tx_ids:
                self.waiting.pop(tx_id, None)
        return [
            e.future.result() if e.future.done() else Unknown(tx_id, dict(e.unknown))
            for tx_id, e in zip(tx_ids, entries, strict=True)
        ]
