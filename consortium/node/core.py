"""The node as one sans-IO state machine: what arrives from the bus, timer expiries and `now` go
in; what to persist (and whether to sync it), what to publish and which timers to set come out.

It owns the replica, the ledger application, request admission and its bounded queue, commit
notices and the answers to clients, and the fault switches. It reads no clock and touches no
socket: the node process (`node/process.py`) is one shell around it, and `effects.carry_out` is the
one piece of code that carries out a step for every shell. The only I/O below it is the ledger's
own store, which commits blocks as the replica commits them; everything a step sends waits until
its consensus records are written and synced.

A peer's bad input is a typed rejection, counted by reason, that changes nothing. Any other
exception escapes the step: the shell stops the node (fail-stop) and it restarts from its disk.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from consortium import codec
from consortium.config import NetworkConfig
from consortium.crypto import KeyPair
from consortium.errors import CodecLimitError, RemoteError
from consortium.keys import KeyDirectory
from consortium.ledger.block import Receipt
from consortium.ledger.ledger import Ledger
from consortium.node.faults import FaultState, apply_control
from consortium.node.ledger_app import LedgerApp
from consortium.node.timeline import ConsensusTimeline
from consortium.notices import (
    CommitNotice,
    OverloadedNotice,
    UnknownNotice,
    decode_outcome_query,
    encode_status,
)
from consortium.pbft.actions import Actions, CancelTimer, Persist, SetTimer
from consortium.pbft.app import InvalidRequest
from consortium.pbft.replica import Replica
from consortium.pbft.wire import WireCache
from consortium.transport import topics

MAX_REQUESTS_PER_MESSAGE = 10_000
MAX_QUEUED_REQUEST_BYTES = 4 * 1024 * 1024
THROUGHPUT_WINDOW_MS = 5_000
RETRY_AFTER_MIN_MS = 100
RETRY_AFTER_MAX_MS = 5_000


@dataclass(frozen=True, slots=True)
class Publish:
    """A message for the bus; `delay_ms` is a fault-injected hold-back."""

    topic: str
    payload: bytes
    retain: bool = False
    delay_ms: int = 0


@dataclass(slots=True)
class NodeStep:
    """What one or more inputs ask the shell to do, in order: write `records`, sync if `sync`,
    then publish, then set timers, then report (`committed` heights and `log` lines)."""

    records: list[Persist] = field(default_factory=list)
    sync: bool = False
    publish: list[Publish] = field(default_factory=list)
    timers: list[SetTimer | CancelTimer] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)
    log: list[tuple[int, str]] = field(default_factory=list)

    def extend(self, other: NodeStep) -> None:
        self.records += other.records
        self.sync |= other.sync
        self.publish += other.publish
        self.timers += other.timers
        self.committed += other.committed
        self.log += other.log

    def __bool__(self) -> bool:
        return bool(
            self.records or self.sync or self.publish or self.timers or self.committed or self.log
        )


@dataclass(slots=True)
class RejectCounts:
    """Bad input seen from the bus, by reason, for `consortium status`."""

    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, count: int = 1) -> None:
        self.by_reason[reason] = self.by_reason.get(reason, 0) + count

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


def _batch_length(payload: bytes) -> int:
    """How many transactions a request batch says it holds, from its array header alone (0 for
    anything else: admission refuses it later and counts why)."""
    try:
        unpacker = msgpack.Unpacker()
        unpacker.feed(payload)
        return max(0, unpacker.read_array_header())
    except (msgpack.UnpackException, ValueError):
        return 0


class NodeCore:
    def __init__(
        self,
        config: NetworkConfig,
        keys: KeyDirectory,
        node_id: str,
        key: KeyPair,
        ledger: Ledger,
        *,
        durable: bool = True,
        wire_cache: WireCache | None = None,
    ) -> None:
        """`wire_cache`: decoded and verified consensus messages; the simulator shares one among
        its nodes, since a signature checks the same wherever it is checked."""
        self.config = config
        self.chain_id = config.chain_id
        self.node_id = node_id
        self.role = config.member(node_id).role
        self.key = key
        self.ledger = ledger
        self.durable = durable
        self.app = LedgerApp(ledger)
        self.replica = Replica(
            node_id,
            keys.node_keys,
            key,
            config.chain_id,
            config.consensus,
            self.app,
            records=ledger.store.consensus_records(),
            cache=wire_cache or WireCache(ledger.budget.wire),
        )
        self.logged_view = (self.replica.view, self.replica.changing)
        self.rejects = RejectCounts()
        self.faults = FaultState()
        self.dropped_by_fault = 0
        self.answers_sent = 0
        self.refusals_sent = 0
        self.request_queue: deque[tuple[str, bytes, int]] = deque()
        self.queued_bytes = 0
        self.queued_txs = 0  # as the batches' array headers count them
        self.commit_times: deque[tuple[int, int]] = deque()
        self.committed_in_window = 0  # the sum of `commit_times`' counts, kept as they change
        self.timeline = ConsensusTimeline()

    # -- inputs ----------------------------------------------------------------------------

    def start(self, now: int) -> NodeStep:
        return self._from_replica(self.replica.start(now), now)

    def on_message(self, topic: str, payload: bytes, now: int) -> NodeStep:
        """One message from the bus; its topic names the publisher (the broker's ACL makes it
        true)."""
        try:
            parsed = topics.parse_topic(self.chain_id, topic)
        except RemoteError:
            self.rejects.add("unknown_topic")
            return NodeStep()
        if parsed.kind is topics.TopicKind.PBFT:
            if parsed.publisher == self.node_id:
                return NodeStep()
            if not self.faults.hears(parsed.publisher):
                self.dropped_by_fault += 1
                return NodeStep()
            return self._from_replica(self.replica.receive(payload, now, parsed.publisher), now)
        if parsed.kind is topics.TopicKind.REQUEST:
            return self._queue_requests(parsed.publisher, payload, now)
        if parsed.kind is topics.TopicKind.ASK:
            return self._on_query(parsed.publisher, payload)
        if parsed.kind is topics.TopicKind.CONTROL and parsed.publisher == self.node_id:
            return self._on_control(payload)
        return NodeStep()

    def on_timer(self, name: str, now: int) -> NodeStep:
        return self._from_replica(self.replica.timer(name, now), now)

    @property
    def has_queued_requests(self) -> bool:
        return bool(self.request_queue)

    def admit_next(self, now: int) -> NodeStep:
        """Admit the oldest queued client batch: the shell calls this between bus messages, so
        consensus messages are never stuck behind the admission of thousands of transactions."""
        if not self.request_queue:
            return NodeStep()
        client, payload, count = self.request_queue.popleft()
        self.queued_bytes -= len(payload)
        self.queued_txs -= count
        return self._on_requests(client, payload, now)

    def heartbeat(self, now: int, extra: dict[str, Any]) -> NodeStep:
        """The retained status message dashboards and `consortium status` read."""
        status = {**self.status(now), **extra}
        topic = topics.status_topic(self.chain_id, self.node_id)
        return NodeStep(publish=[Publish(topic, encode_status(status), retain=True)])

    # -- consensus -------------------------------------------------------------------------

    def _from_replica(self, actions: Actions, now: int) -> NodeStep:
        self.timeline.observe(actions, now, self.replica.commit_votes, self.replica.q)
        step = NodeStep(records=actions.persist, timers=actions.timers)
        for send in actions.send:
            if send.to is None:
                topic = topics.pbft_topic(self.chain_id, self.node_id)
            elif self.faults.hears(send.to):
                topic = topics.pbft_direct_topic(self.chain_id, self.node_id, send.to)
            else:
                continue
            step.publish.append(Publish(topic, send.data, delay_ms=self.faults.delay_ms))
        for committed in actions.committed:
            self._announce(step, committed.height, now)
        step.sync = self.durable and bool(step.records or step.committed)
        if (self.replica.view, self.replica.changing) != self.logged_view:
            step.log.append(self._view_line())
        return step

    def _view_line(self) -> tuple[int, str]:
        """A line per view change and per new view, so a stalled or suspected primary shows in
        the node's log with the state it happened in."""
        view, changing = self.logged_view = (self.replica.view, self.replica.changing)
        height = self.ledger.head.height
        if changing:
            return (
                logging.WARNING,
                f"view change to view {view} at height {height}: "
                f"{len(self.replica.pending)} requests pending, "
                f"{self.replica.stats.get('view_change_timeouts', 0)} progress timeouts so far",
            )
        return logging.INFO, f"view {view}, primary {self.replica.primary}, at height {height}"

    def _announce(self, step: NodeStep, height: int, now: int) -> None:
        """The commit notice of a block: every receipt, signed, for the clients."""
        executed = self.app.recent.get(height)
        if executed is None:
            return
        notice = CommitNotice(
            self.node_id, height, executed.hash, executed.business_day, executed.receipts
        )
        topic = topics.commit_topic(self.chain_id, self.node_id)
        step.publish.append(Publish(topic, notice.signed(self.chain_id, self.key)))
        step.committed.append(height)
        self.commit_times.append((now, len(executed.receipts)))
        self.committed_in_window += len(executed.receipts)

    # -- clients ---------------------------------------------------------------------------

    def _queue_requests(self, client: str, payload: bytes, now: int) -> NodeStep:
        """Client batches wait in a bounded queue; when it is full the batch is refused at once
        with an overloaded notice, and so is a batch that finds the backlog's room taken by what
        waits in the queue already (admission refuses what does not fit of a batch it takes):
        the queue then holds about what the node commits in half a view-change timeout, so a request admitted at a backup long before the primary gets
        to it cannot make the backup suspect the primary."""
        count = _batch_length(payload)
        room, rate = self._backlog_room(now)
        full = self.queued_bytes + len(payload) > MAX_QUEUED_REQUEST_BYTES
        if full or self.queued_txs >= room:
            try:
                raws = self._decode_batch(payload)
            except RemoteError:
                return NodeStep()
            return self._refuse(client, raws, rate)
        self.request_queue.append((client, payload, count))
        self.queued_bytes += len(payload)
        self.queued_txs += count
        return NodeStep()

    def _decode_batch(self, payload: bytes) -> tuple[Any, ...]:
        """A request batch's transactions; a bad batch is counted and raises `RemoteError`."""
        try:
            raws: tuple[Any, ...] = codec.expect_type(
                codec.decode(payload, max_items=MAX_REQUESTS_PER_MESSAGE), tuple, "request batch"
            )
        except CodecLimitError:
            self.rejects.add("oversized_request_batch")
            raise
        except RemoteError:
            self.rejects.add("malformed_request")
            raise
        return raws

    def _backlog_room(self, now: int) -> tuple[int, float]:
        """How many more transactions this node may take now, and its commit rate (per ms).

        A node holds no more uncommitted transactions than it committed over half a
        view-change timeout lately: work it can finish before a backup would suspect the
        primary of stalling. Past that, more work only makes every request wait longer until
        the timers fire and the network spends itself on view changes. Never less than the
        blocks in flight can carry, so an idle or starting network takes work."""
        consensus = self.config.consensus
        rate = self._throughput_per_ms(now)
        floor = consensus.batch_max_txs * consensus.max_inflight_blocks
        limit = max(floor, int(rate * consensus.view_change_timeout_ms / 2))
        return max(0, limit - len(self.replica.pending)), rate

    def _refuse(self, client: str, raws: Sequence[Any], rate: float) -> NodeStep:
        """An overloaded notice to `client` for `raws`: how long the backlog takes to drain at
        the recent commit rate tells the client when to try again."""
        tx_ids = []
        for raw in raws:
            if isinstance(raw, bytes):
                try:
                    tx_ids.append(self.app.request_id(raw))
                except RemoteError:
                    self.rejects.add("malformed_request")
        self.rejects.add("overloaded", len(raws))
        if not tx_ids:
            return NodeStep()
        backlog = len(self.replica.pending)
        drain_ms = backlog / rate if rate > 0 else RETRY_AFTER_MAX_MS
        retry = int(min(RETRY_AFTER_MAX_MS, max(RETRY_AFTER_MIN_MS, drain_ms)))
        notice = OverloadedNotice(self.node_id, self.ledger.head.height, tuple(tx_ids), retry)
        topic = topics.commit_direct_topic(self.chain_id, self.node_id, client)
        self.refusals_sent += 1
        return NodeStep(publish=[Publish(topic, notice.signed(self.chain_id, self.key))])

    def _on_requests(self, client: str, payload: bytes, now: int) -> NodeStep:
        """A client's batch of signed transactions: admit each, then hand them to the replica.
        A transaction refused as already used may be one whose commit notices the client
        missed: it gets this node's answer. What the backlog has no room for is refused before
        any signature is checked."""
        try:
            raws = self._decode_batch(payload)
        except RemoteError:
            return NodeStep()
        room, rate = self._backlog_room(now)
        step = NodeStep()
        if len(raws) > room:
            step.extend(self._refuse(client, raws[room:], rate))
            raws = raws[:room]
        admitted = []
        used: list[bytes] = []
        for raw in raws:
            if not isinstance(raw, bytes):
                self.rejects.add("malformed_request")
                continue
            try:
                stx = self.app.admit(raw)
            except InvalidRequest as refused:
                self.rejects.add(refused.reason)
                if refused.reason == "stale_nonce":
                    used.append(self.app.request_id(raw))
                continue
            if self.app.lookup_request(stx.tx_id) is not None:  # admitted before, committed since
                used.append(stx.tx_id)
                continue
            admitted.append(raw)
        if used:
            step.extend(self._answer(client, used, tell_unknown=False))
        if admitted:
            actions = self.replica.submit_many(admitted, now, forward=False)
            step.extend(self._from_replica(actions, now))
        return step

    def _on_query(self, client: str, payload: bytes) -> NodeStep:
        try:
            tx_ids = decode_outcome_query(payload)
        except RemoteError:
            self.rejects.add("malformed_query")
            return NodeStep()
        return self._answer(client, list(tx_ids), tell_unknown=True)

    def _answer(self, client: str, tx_ids: list[bytes], tell_unknown: bool) -> NodeStep:
        """One commit notice per block listing the asked receipts it holds, and an unknown
        notice for the rest; both signed, addressed to `client` alone."""
        found: dict[int, list[int]] = {}
        unknown: list[bytes] = []
        for tx_id in dict.fromkeys(tx_ids):
            locations = self.ledger.store.tx_locations(tx_id)
            if locations:
                height, position = locations[0]
                found.setdefault(height, []).append(position)
            else:
                unknown.append(tx_id)
        topic = topics.commit_direct_topic(self.chain_id, self.node_id, client)
        step = NodeStep()
        for height, positions in sorted(found.items()):
            block_hash, day, receipts = self._committed_receipts(height)
            asked = tuple(receipts[p] for p in sorted(positions))
            notice = CommitNotice(self.node_id, height, block_hash, day, asked)
            step.publish.append(Publish(topic, notice.signed(self.chain_id, self.key)))
        if unknown and tell_unknown:
            height = self.ledger.head.height
            statement = UnknownNotice(self.node_id, height, tuple(unknown))
            step.publish.append(Publish(topic, statement.signed(self.chain_id, self.key)))
        self.answers_sent += len(step.publish)
        return step

    def _committed_receipts(self, height: int) -> tuple[bytes, int, tuple[Receipt, ...]]:
        executed = self.app.recent.get(height)
        if executed is not None:
            return executed.hash, executed.business_day, executed.receipts
        stored = self.ledger.store.block(height)
        if stored is None:
            raise LookupError(f"the transaction index names block {height}, which is not stored")
        header = stored.decoded_header()
        return stored.hash, header.business_day, stored.decoded_receipts()

    # -- faults ----------------------------------------------------------------------------

    def _on_control(self, payload: bytes) -> NodeStep:
        try:
            self.faults = apply_control(self.faults, self.node_id, self.replica.nodes, payload)
        except RemoteError as exc:
            self.rejects.add("bad_control")
            return NodeStep(log=[(logging.WARNING, f"control message refused: {exc}")])
        return NodeStep(log=[(logging.INFO, f"faults now: {self.faults.describe() or 'none'}")])

    # -- status ----------------------------------------------------------------------------

    def _throughput_per_ms(self, now: int) -> float:
        """Transactions committed per millisecond over the last window."""
        horizon = now - THROUGHPUT_WINDOW_MS
        while self.commit_times and self.commit_times[0][0] < horizon:
            self.committed_in_window -= self.commit_times.popleft()[1]
        return self.committed_in_window / THROUGHPUT_WINDOW_MS

    def status(self, now: int) -> dict[str, Any]:
        tx_per_ms = self._throughput_per_ms(now)
        head = self.ledger.head
        snapshot = self.replica.snapshot()
        rejected = dict(self.rejects.by_reason)
        for reason, count in self.replica.counters.items():
            rejected[reason] = rejected.get(reason, 0) + count
        return {
            "id": self.node_id,
            "role": self.role,
            "view": snapshot["view"],
            "primary": snapshot["primary"],
            "changing_view": snapshot["changing"],
            "height": head.height,
            "head_hash": head.hash.hex(),
            "business_day": head.business_day,
            "committed_txs": self.app.committed_txs,
            "tx_per_s": round(tx_per_ms * 1000),
            "mempool": snapshot["pending"],
            "queued_request_bytes": self.queued_bytes,
            "rejected_msgs": sum(rejected.values()),
            "rejected_by_reason": rejected,
            "view_changes": self.replica.stats.get("view_changes", 0),
            "relayed_requests": self.replica.stats.get("relayed_requests", 0),
            "shed_requests": self.replica.stats.get("shed_requests", 0),
            "proposals_fetched": self.replica.stats.get("proposals_fetched", 0),
            "answers_sent": self.answers_sent,
            "refusals_sent": self.refusals_sent,
            "durable": self.durable,
            "faults": self.faults.describe(),
            "dropped_by_fault": self.dropped_by_fault,
            "timeline": [timing.to_wire() for timing in self.timeline.recent()],
        }
