"""The client API: publish signed transactions, wait for f+1 matching receipts, retransmit.

A client connects with its own broker login, publishes batches of signed transactions on its
request topic, and listens to every node's commit notices and to the answers addressed to it.
The protocol itself (what to publish, when to retransmit or ask again, when an outcome is
accepted) is `ClientCore` in `protocol.py`, shared with the simulator; `ChainClient` only carries
its steps out over asyncio and MQTT and turns its decided results into awaited values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from consortium.client.protocol import MAX_BATCH, ClientCore, ClientStep, Outcome, Unknown
from consortium.config import NetworkConfig
from consortium.keys import KeyDirectory
from consortium.ledger.tx import SignedTransaction
from consortium.transport import credentials, topics
from consortium.transport.credentials import BrokerLogin
from consortium.transport.mqtt import IncomingMessage, MqttTransport

__all__ = ["MAX_BATCH", "ChainClient", "ClientLogin", "Outcome", "Unknown"]


@dataclass(frozen=True, slots=True)
class ClientLogin:
    """A client's topic name (`req/<client_id>`) and its broker login."""

    client_id: str
    login: BrokerLogin

    @staticmethod
    def local(config: NetworkConfig, client_id: str) -> ClientLogin:
        index = credentials.load_client_index(client_id)  # load generators spread over brokers
        home = client_id if index is None else index
        login = credentials.broker_login(config, credentials.client_username(client_id), home=home)
        return ClientLogin(client_id, login)


class ChainClient:
    """`ClientCore` over MQTT: its clock is the event loop's, its ticks one loop timer.

    Calls waiting on the same transaction share one future; the core forgets a transaction when
    the last of them returns."""

    def __init__(self, config: NetworkConfig, keys: KeyDirectory, login: ClientLogin) -> None:
        self.config = config
        self.node_keys = keys.node_keys
        self.login = login
        self.core = ClientCore(
            config.chain_id, keys.node_keys, len(config.node_ids), login.client_id
        )
        self._outcomes: dict[bytes, asyncio.Future[Outcome]] = {}
        self._answers: dict[bytes, asyncio.Future[Outcome | Unknown]] = {}
        self._users: dict[bytes, int] = {}
        self.refusals: dict[bytes, int] = {}  # tx id -> times f+1 nodes refused it, overloaded
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        settings = credentials.mqtt_settings(
            login.login,
            (
                topics.commit_filter(config.chain_id),
                topics.answer_filter(config.chain_id, login.client_id),
            ),
        )
        self.transport = MqttTransport(settings, on_message=self._on_message)

    @property
    def accept_after(self) -> int:
        return self.core.accept_after

    @property
    def unknown_after(self) -> int:
        return self.core.unknown_after

    @property
    def rejected_notices(self) -> int:
        return self.core.rejected_notices

    @property
    def heights(self) -> dict[str, int]:
        """The highest committed height each node has reported."""
        return self.core.heights

    async def __aenter__(self) -> ChainClient:
        await self.transport.start()
        await self.transport.wait_connected(timeout_s=15)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._set_timer(None)
        await self.transport.close()

    # -- carrying out the core's steps -----------------------------------------------------

    @staticmethod
    def _now_ms() -> int:
        return int(asyncio.get_running_loop().time() * 1000)

    def _on_message(self, message: IncomingMessage) -> None:
        self._carry(self.core.on_message(message.topic, message.payload, self._now_ms()))

    def _on_tick(self, at_ms: int) -> None:
        # The loop may fire a hair before `at_ms` as milliseconds round; the deadline is due.
        self._timer = self._timer_at = None
        self._carry(self.core.tick(max(self._now_ms(), at_ms)))

    def _carry(self, step: ClientStep) -> None:
        for item in step.publish:
            self.transport.publish(item.topic, item.payload)
        for result in step.decided:
            if isinstance(result, Outcome):
                _resolve(self._outcomes.get(result.tx_id), result)
            _resolve(self._answers.get(result.tx_id), result)
        for refused in step.refused:
            self.refusals[refused.tx_id] = self.refusals.get(refused.tx_id, 0) + 1
        self._set_timer(step.wake_at_ms)

    def _set_timer(self, at_ms: int | None) -> None:
        if at_ms == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, at_ms
        if at_ms is not None:
            self._timer = asyncio.get_running_loop().call_at(at_ms / 1000, self._on_tick, at_ms)

    def _join(self, tx_ids: Sequence[bytes]) -> None:
        for tx_id in tx_ids:
            self._users[tx_id] = self._users.get(tx_id, 0) + 1

    def _leave(self, tx_ids: Sequence[bytes]) -> None:
        """The calls waiting on `tx_ids` are done: when none is left, the core forgets them."""
        done = []
        for tx_id in tx_ids:
            left = self._users[tx_id] - 1
            if left:
                self._users[tx_id] = left
                continue
            del self._users[tx_id]
            self._outcomes.pop(tx_id, None)
            self._answers.pop(tx_id, None)
            self.refusals.pop(tx_id, None)
            done.append(tx_id)
        self.core.forget(done)
        self._set_timer(self.core.next_wake_ms())

    # -- the API ---------------------------------------------------------------------------

    def publish(self, txs: Sequence[SignedTransaction]) -> None:
        """Send transactions without waiting (batches of at most MAX_BATCH per message)."""
        for item in self.core.requests(txs):
            self.transport.publish(item.topic, item.payload)

    async def submit(
        self, txs: Sequence[SignedTransaction], timeout_s: float = 60.0, retransmit_s: float = 5.0
    ) -> list[Outcome]:
        """Publish `txs` and return their outcomes in order; raises TimeoutError after
        `timeout_s` without f+1 matching receipts for every one (saying so when the network
        refused them as overloaded; they were retransmitted after the wait it asked)."""
        loop = asyncio.get_running_loop()
        tx_ids = [stx.tx_id for stx in txs]
        futures = [self._outcomes.setdefault(t, loop.create_future()) for t in tx_ids]
        self._join(tx_ids)
        try:
            async with asyncio.timeout(timeout_s):
                retransmit_ms = max(1, round(retransmit_s * 1000))
                self._carry(self.core.submit(txs, self._now_ms(), retransmit_ms))
                pending = {f for f in futures if not f.done()}
                if pending:
                    await asyncio.wait(pending)
        except TimeoutError:
            refused = sum(self.refusals.get(t, 0) for t in tx_ids)
            if refused:
                raise TimeoutError(
                    f"no outcome within {timeout_s:g} s: the network refused these transactions "
                    f"as overloaded {refused} times"
                ) from None
            raise
        finally:
            self._leave(tx_ids)
        return [f.result() for f in futures]

    async def submit_one(self, stx: SignedTransaction, timeout_s: float = 60.0) -> Outcome:
        return (await self.submit([stx], timeout_s=timeout_s))[0]

    async def outcomes(
        self, tx_ids: Sequence[bytes], timeout_s: float = 10.0, ask_every_s: float = 2.0
    ) -> list[Outcome | Unknown]:
        """Ask every node about these transactions: an `Outcome` once f+1 nodes agree on it, an
        `Unknown` once n-f nodes answered that they hold none (or at the timeout)."""
        loop = asyncio.get_running_loop()
        futures = []
        for tx_id in tx_ids:
            future = self._answers.get(tx_id)
            if future is None:
                future = self._answers[tx_id] = loop.create_future()
                known = self._outcomes.get(tx_id)
                if known is not None and known.done():
                    future.set_result(known.result())
            futures.append(future)
        self._join(tx_ids)
        try:
            undecided = [t for t, f in zip(tx_ids, futures, strict=True) if not f.done()]
            if undecided and timeout_s > 0:
                ask_every_ms = max(1, round(ask_every_s * 1000))
                self._carry(self.core.ask(undecided, self._now_ms(), ask_every_ms))
                pending = {f for f in futures if not f.done()}
                if pending:
                    await asyncio.wait(pending, timeout=timeout_s)
            return [
                f.result() if f.done() else self.core.unknown_answers(tx_id)
                for tx_id, f in zip(tx_ids, futures, strict=True)
            ]
        finally:
            self._leave(tx_ids)


def _resolve(future: asyncio.Future | None, result: Outcome | Unknown) -> None:
    if future is not None and not future.done():
        future.set_result(result)
