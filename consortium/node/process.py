"""One node as an OS process: the PBFT replica, the ledger and the bus, wired with asyncio.

Everything that decides is synchronous (replica, chain, contracts); this module only moves bytes
and time: it hands each bus message and timer to the replica with `now`, then carries out the
replica's actions in the order the core demands: persist, then send, then report commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from consortium import codec
from consortium.config import NetworkConfig
from consortium.errors import CodecLimitError, RemoteError
from consortium.keys import KeyDirectory, load_keypair
from consortium.ledger.ledger import Ledger, store_path
from consortium.node.broker import BrokerLogin
from consortium.node.faults import FaultState, apply_control
from consortium.node.ledger_app import LedgerApp
from consortium.notices import CommitNotice, encode_status
from consortium.pbft.actions import Actions, CancelTimer, SetTimer
from consortium.pbft.app import InvalidRequest
from consortium.pbft.replica import Replica
from consortium.transport import topics
from consortium.transport.mqtt import IncomingMessage, MqttSettings, MqttTransport

log = logging.getLogger("consortium.node")

STATUS_INTERVAL_S = 0.25
MAX_REQUESTS_PER_MESSAGE = 10_000
MAX_QUEUED_REQUEST_BYTES = 4 * 1024 * 1024
THROUGHPUT_WINDOW_S = 5.0


@dataclass(slots=True)
class RejectCounts:
    """Bad input seen from the bus, by reason, for `consortium status`."""

    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, count: int = 1) -> None:
        self.by_reason[reason] = self.by_reason.get(reason, 0) + count

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


class Node:
    def __init__(
        self, config: NetworkConfig, keys: KeyDirectory, node_id: str, login: BrokerLogin
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.role = config.member(node_id).role
        self.login = login
        self.key = load_keypair(config, node_id, "node")
        self.ledger = Ledger(config, keys, store_path(config, node_id))
        self.app = LedgerApp(self.ledger)
        self.replica = Replica(
            node_id,
            keys.node_keys,
            self.key,
            config.chain_id,
            config.consensus,
            self.app,
            records=self.ledger.store.consensus_records(),
        )
        self.logged_view = (self.replica.view, self.replica.changing)
        self.rejects = RejectCounts()
        self.faults = FaultState()
        self.dropped_by_fault = 0
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.commit_times: deque[tuple[float, int]] = deque()
        self.transport: MqttTransport | None = None
        self.request_queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.requests_waiting = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()

    # -- time --------------------------------------------------------------------------

    def now_ms(self) -> int:
        assert self.loop is not None
        return int(self.loop.time() * 1000)

    # -- the actions of one replica step ------------------------------------------------

    def carry_out(self, actions: Actions) -> None:
        if actions.persist:
            self.ledger.store.write_consensus_records([(p.key, p.value) for p in actions.persist])
        assert self.transport is not None
        chain = self.config.chain_id
        for send in actions.send:
            if send.to is None:
                topic = topics.pbft_topic(chain, self.node_id)
            elif self.faults.hears(send.to):
                topic = topics.pbft_direct_topic(chain, self.node_id, send.to)
            else:
                continue
            if self.faults.delay_ms:
                assert self.loop is not None
                self.loop.call_later(
                    self.faults.delay_ms / 1000, self.transport.publish, topic, send.data
                )
            else:
                self.transport.publish(topic, send.data)
        for timer in actions.timers:
            self._timer(timer)
        for committed in actions.committed:
            self._announce(committed.height)
        if (self.replica.view, self.replica.changing) != self.logged_view:
            self._log_view()

    def _log_view(self) -> None:
        """A line per view change and per new view, so a stalled or suspected primary shows in
        the node's log with the state it happened in."""
        view, changing = self.logged_view = (self.replica.view, self.replica.changing)
        snapshot = self.replica.snapshot()
        if changing:
            log.warning(
                "view change to view %d at height %d: %d requests pending, %d progress timeouts "
                "so far",
                view,
                self.ledger.head.height,
                snapshot["pending"],
                self.replica.stats.get("view_change_timeouts", 0),
            )
        else:
            log.info(
                "view %d, primary %s, at height %d",
                view,
                snapshot["primary"],
                self.ledger.head.height,
            )

    def _timer(self, timer: SetTimer | CancelTimer) -> None:
        old = self.timers.pop(timer.name, None)
        if old is not None:
            old.cancel()
        if isinstance(timer, SetTimer):
            assert self.loop is not None
            self.timers[timer.name] = self.loop.call_at(timer.at_ms / 1000, self._fire, timer.name)

    def _fire(self, name: str) -> None:
        self.timers.pop(name, None)
        self.carry_out(self.replica.timer(name, self.now_ms()))

    def _announce(self, height: int) -> None:
        """Publish the commit notice of a block: every receipt, signed, for the clients."""
        executed = self.app.recent.get(height)
        if executed is None or self.transport is None:
            return
        notice = CommitNotice(
            self.node_id, height, executed.hash, executed.header.business_day, executed.receipts
        )
        self.transport.publish(
            topics.commit_topic(self.config.chain_id, self.node_id),
            notice.signed(self.config.chain_id, self.key),
        )
        assert self.loop is not None
        self.commit_times.append((self.loop.time(), len(executed.receipts)))

    # -- input from the bus ---------------------------------------------------------------

    def on_message(self, message: IncomingMessage) -> None:
        try:
            parsed = topics.parse_topic(self.config.chain_id, message.topic)
        except RemoteError:
            self.rejects.add("unknown_topic")
            return
        if parsed.kind is topics.TopicKind.PBFT:
            if parsed.publisher == self.node_id:
                return
            if not self.faults.hears(parsed.publisher):
                self.dropped_by_fault += 1
                return
            self.carry_out(self.replica.receive(message.payload, self.now_ms(), parsed.publisher))
        elif parsed.kind is topics.TopicKind.REQUEST:
            self._queue_requests(message.payload)
        elif parsed.kind is topics.TopicKind.CONTROL:
            try:
                self.faults = apply_control(
                    self.faults, self.node_id, self.replica.nodes, message.payload
                )
            except RemoteError as exc:
                self.rejects.add("bad_control")
                log.warning("control message refused: %s", exc)
            else:
                log.info("faults now: %s", self.faults.describe() or "none")

    def _queue_requests(self, payload: bytes) -> None:
        """Client batches wait in a bounded queue so that consensus messages, which arrive on the
        same connection, are never stuck behind the admission of thousands of transactions; when
        the queue is full the batch is shed (clients retransmit), which keeps the network live
        under overload instead of letting every queue grow until the view-change timers fire."""
        if self.queued_bytes + len(payload) > MAX_QUEUED_REQUEST_BYTES:
            self.rejects.add("overloaded")
            return
        self.request_queue.append(payload)
        self.queued_bytes += len(payload)
        self.requests_waiting.set()

    async def _admit_requests(self) -> None:
        while not self.stopping.is_set():
            await self.requests_waiting.wait()
            self.requests_waiting.clear()
            while self.request_queue:
                payload = self.request_queue.popleft()
                self.queued_bytes -= len(payload)
                self._on_requests(payload)
                await asyncio.sleep(0)  # let consensus messages in between batches

    def _on_requests(self, payload: bytes) -> None:
        """A client's batch of signed transactions: admit each, then hand it to the replica."""
        try:
            raws = codec.expect_type(
                codec.decode(payload, max_items=MAX_REQUESTS_PER_MESSAGE), tuple, "request batch"
            )
        except CodecLimitError:
            self.rejects.add("oversized_request_batch")
            return
        except RemoteError:
            self.rejects.add("malformed_request")
            return
        admitted = []
        for raw in raws:
            if not isinstance(raw, bytes):
                self.rejects.add("malformed_request")
                continue
            try:
                self.app.admit(raw)
            except InvalidRequest as refused:
                self.rejects.add(refused.reason)
                continue
            admitted.append(raw)
        if admitted:
            self.carry_out(self.replica.submit_many(admitted, self.now_ms(), forward=False))

    # -- status -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        assert self.loop is not None
        horizon = self.loop.time() - THROUGHPUT_WINDOW_S
        while self.commit_times and self.commit_times[0][0] < horizon:
            self.commit_times.popleft()
        recent = sum(n for _, n in self.commit_times)
        head = self.ledger.head
        snapshot = self.replica.snapshot()
        rejected = dict(self.rejects.by_reason)
        for reason, count in self.replica.counters.items():
            rejected[reason] = rejected.get(reason, 0) + count
        return {
            "id": self.node_id,
            "role": self.role,
            "pid": os.getpid(),
            "view": snapshot["view"],
            "primary": snapshot["primary"],
            "changing_view": snapshot["changing"],
            "height": head.height,
            "head_hash": head.hash.hex(),
            "business_day": head.business_day,
            "committed_txs": self.app.committed_txs,
            "tx_per_s": round(recent / THROUGHPUT_WINDOW_S),
            "mempool": snapshot["pending"],
            "queued_request_bytes": self.queued_bytes,
            "rejected_msgs": sum(rejected.values()),
            "rejected_by_reason": rejected,
            "view_changes": self.replica.stats.get("view_changes", 0),
            "faults": self.faults.describe(),
            "dropped_by_fault": self.dropped_by_fault,
            "bus": dataclasses.asdict(self.transport.counters_snapshot()) if self.transport else {},
        }

    async def _publish_status(self) -> None:
        topic = topics.status_topic(self.config.chain_id, self.node_id)
        while not self.stopping.is_set():
            if self.transport is not None:
                self.transport.publish(topic, encode_status(self.status()), retain=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), STATUS_INTERVAL_S)

    # -- life ---------------------------------------------------------------------------

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.stopping.set)
        settings = MqttSettings(
            self.login.url,
            self.login.username,
            self.login.password,
            topics.node_subscriptions(self.config.chain_id, self.node_id),
            client_id=self.login.username,
            ca_file=self.login.ca_file,
        )
        self.transport = MqttTransport(settings, on_message=self.on_message)
        async with self.transport:
            await self.transport.wait_connected(timeout_s=30)
            log.info(
                "%s connected to %s at height %d",
                self.node_id,
                self.login.url,
                self.ledger.head.height,
            )
            self.carry_out(self.replica.start(self.now_ms()))
            status = asyncio.create_task(self._publish_status())
            admission = asyncio.create_task(self._admit_requests())
            await self.stopping.wait()
            for handle in self.timers.values():
                handle.cancel()
            await status
            admission.cancel()
            self.transport.publish(
                topics.status_topic(self.config.chain_id, self.node_id),
                encode_status({**self.status(), "alive": False}),
                retain=True,
            )
            await self.transport.flush(1.0)
        self.ledger.close()
        log.info("%s stopped at height %d", self.node_id, self.ledger.head.height)
