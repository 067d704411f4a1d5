"""The client protocol as a sans-IO state machine: submit, retransmit, count notices, ask.

A client publishes signed transactions on its request topic and accepts a transaction's outcome
once f+1 distinct nodes sign the same (height, block hash, business day, receipt leaf): at least
one of them is honest, so the claim is true. Transactions still unanswered after `retransmit_ms`
are published again; nodes drop duplicates, the nonce makes sure a transaction executes at most
once, and a node answers a retransmission of a transaction it already committed on the client's
own answer topic (`commit/<node>/to/<client>`), which counts like its broadcast notice. Asking
(`ask/<client>`) learns any transaction's outcome, or that it is unknown once n-f nodes say they
hold none: then at most f nodes, too few to be believed, could still claim it is committed.
A node that cannot take a transaction now refuses it at once with an overloaded notice; once f+1
nodes refuse it (so at least one honest node does), the client reports a `Refused` and waits the
time they ask before it retransmits, instead of adding to the load.

`ClientCore` reads no clock and touches no socket: inputs carry `now_ms`, and every input returns
a `ClientStep` saying what to publish, which results were decided and when to call `tick` next.
`ChainClient` is its asyncio and MQTT shell; a simulator drives it with virtual time. Bad input
from the bus (a wrong topic, undecodable or forged notices, another chain's) is counted, never
raised: anyone with a broker login can publish garbage, and it must not stop a client.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consortium import codec
from consortium.errors import RemoteError
from consortium.ledger.tx import SignedTransaction
from consortium.notices import (
    MAX_ASKED_TXS,
    Answer,
    CommitNotice,
    OverloadedNotice,
    UnknownNotice,
    decode_answer,
    encode_outcome_query,
)
from consortium.roles import max_faulty
from consortium.transport import topics

MAX_BATCH = 2000
RETRANSMIT_MS = 5_000
ASK_EVERY_MS = 2_000
MAX_BACKOFF_MS = 10_000  # whatever refusing nodes ask, a client waits no longer than this

_RESEND = 0
_ASK = 1


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
    """No f+1 nodes hold the transaction: the nodes in `heights` answered that they have not
    committed it, each at the committed height given."""

    tx_id: bytes
    heights: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {"tx_id": self.tx_id.hex(), "known": False, "heights": dict(self.heights)}


@dataclass(frozen=True, slots=True)
class Refused:
    """f+1 nodes refused the transaction as overloaded: it is not committed yet and may still
    be; the client retransmits it after `retry_after_ms` unless the shell forgets it."""

    tx_id: bytes
    retry_after_ms: int


@dataclass(frozen=True, slots=True)
class Publish:
    """A message for the bus."""

    topic: str
    payload: bytes


@dataclass(slots=True)
class ClientStep:
    """What one input asks the shell to do: publish these messages in order, hand these results
    to whoever waits for them, and call `tick` at `wake_at_ms` (None: nothing to wait for)."""

    publish: list[Publish] = field(default_factory=list)
    decided: list[Outcome | Unknown] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    wake_at_ms: int | None = None


@dataclass(slots=True)
class _Entry:
    """One tracked transaction: submitted (`raw` set, retransmitted), asked about, or both."""

    raw: bytes | None = None
    retransmit_ms: int = RETRANSMIT_MS
    resend_at: int | None = None
    asking: bool = False
    ask_every_ms: int = ASK_EVERY_MS
    ask_at: int | None = None
    votes: dict[tuple[int, bytes, int, bytes], set[str]] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)
    overloaded: dict[str, int] = field(default_factory=dict)  # node -> the wait it asked for


class ClientCore:
    """One client's protocol state: the transactions it waits for and the answers so far.

    Results are decided once: a transaction leaves the core when its `Outcome` is decided; an
    `Unknown` ends the asking but a submitted transaction stays, since it may still commit.
    The shell calls `forget` when it stops waiting (a timeout, or results handed over)."""

    def __init__(
        self,
        chain_id: str,
        node_keys: Mapping[str, bytes],
        n: int,
        client_id: str,
        *,
        retransmit_ms: int = RETRANSMIT_MS,
        ask_every_ms: int = ASK_EVERY_MS,
        max_batch: int = MAX_BATCH,
        decode: Callable[[bytes, str, dict[str, bytes]], Answer] = decode_answer,
    ) -> None:
        """`decode`: how a payload becomes a checked notice (a simulator shares one memo of
        them among its clients: a broadcast notice checks the same for every client)."""
        if n < 1:
            raise ValueError(f"a network has at least one node, not {n}")
        if retransmit_ms <= 0 or ask_every_ms <= 0 or max_batch <= 0:
            raise ValueError("intervals and the batch size must be positive")
        self.chain_id = chain_id
        self.node_keys = dict(node_keys)
        self.client_id = client_id
        self.n = n
        self.f = max_faulty(n)
        self.accept_after = self.f + 1
        self.unknown_after = n - self.f
        self.retransmit_ms = retransmit_ms
        self.ask_every_ms = ask_every_ms
        self.max_batch = max_batch
        self.decode = decode
        self.request_topic = topics.request_topic(chain_id, client_id)
        self.ask_topic = topics.ask_topic(chain_id, client_id)
        self.heights: dict[str, int] = {}
        self.rejects: dict[str, int] = {}
        self._entries: dict[bytes, _Entry] = {}
        self._deadlines: list[tuple[int, int, int, bytes]] = []
        self._sequence = 0

    # -- inputs ----------------------------------------------------------------------------

    def submit(
        self, txs: Sequence[SignedTransaction], now_ms: int, retransmit_ms: int | None = None
    ) -> ClientStep:
        """Publish `txs` now and again every `retransmit_ms` until each one's outcome is
        decided or it is forgotten."""
        every = self.retransmit_ms if retransmit_ms is None else retransmit_ms
        if every <= 0:
            raise ValueError("the retransmission interval must be positive")
        for stx in txs:
            entry = self._entries.setdefault(stx.tx_id, _Entry())
            entry.raw = stx.raw
            entry.retransmit_ms = every
            entry.resend_at = now_ms + every
            self._push(entry.resend_at, _RESEND, stx.tx_id)
        return self._step(self.requests(txs))

    def ask(
        self, tx_ids: Sequence[bytes], now_ms: int, ask_every_ms: int | None = None
    ) -> ClientStep:
        """Ask every node about `tx_ids` now and again every `ask_every_ms` until each is
        decided: an `Outcome` on f+1 matching answers, an `Unknown` on n-f unknown answers."""
        every = self.ask_every_ms if ask_every_ms is None else ask_every_ms
        if every <= 0:
            raise ValueError("the asking interval must be positive")
        step = ClientStep()
        asked = []
        for tx_id in dict.fromkeys(tx_ids):
            entry = self._entries.setdefault(tx_id, _Entry())
            if len(entry.unknown) >= self.unknown_after:
                self._decide_unknown(step, tx_id, entry)
                continue
            entry.asking = True
            entry.ask_every_ms = every
            entry.ask_at = now_ms + every
            self._push(entry.ask_at, _ASK, tx_id)
            asked.append(tx_id)
        step.publish += self._queries(asked)
        step.wake_at_ms = self.next_wake_ms()
        return step

    def on_message(self, topic: str, payload: bytes, now_ms: int) -> ClientStep:
        """A message from `commit/<node>` (a block's notice) or `commit/<node>/to/<client>` (an
        answer to this client); the notice's own signature says which node speaks."""
        step = ClientStep()
        try:
            parsed = topics.parse_topic(self.chain_id, topic)
        except RemoteError:
            parsed = None
        if (
            parsed is None
            or parsed.kind is not topics.TopicKind.COMMIT
            or parsed.dest not in (None, self.client_id)
        ):
            self._reject("wrong_topic")
            step.wake_at_ms = self.next_wake_ms()
            return step
        try:
            notice = self.decode(payload, self.chain_id, self.node_keys)
        except RemoteError:
            self._reject("bad_notice")
            step.wake_at_ms = self.next_wake_ms()
            return step
        self.heights[notice.node] = max(self.heights.get(notice.node, 0), notice.height)
        if isinstance(notice, UnknownNotice):
            self._count_unknown(step, notice)
        elif isinstance(notice, OverloadedNotice):
            self._count_refusal(step, notice, now_ms)
        else:
            self._count_commit(step, notice)
        step.wake_at_ms = self.next_wake_ms()
        return step

    def tick(self, now_ms: int) -> ClientStep:
        """Retransmit and re-ask whatever is due at `now_ms`."""
        resend: list[bytes] = []
        asks: list[bytes] = []
        while self._deadlines and self._deadlines[0][0] <= now_ms:
            at, _, kind, tx_id = heapq.heappop(self._deadlines)
            entry = self._entries.get(tx_id)
            if entry is None or not self._is_live(entry, kind, at):
                continue
            if kind == _RESEND and entry.raw is not None:
                resend.append(entry.raw)
                entry.resend_at = now_ms + entry.retransmit_ms
                self._push(entry.resend_at, _RESEND, tx_id)
            else:
                asks.append(tx_id)
                entry.ask_at = now_ms + entry.ask_every_ms
                self._push(entry.ask_at, _ASK, tx_id)
        return self._step(self._request_batches(resend) + self._queries(asks))

    def forget(self, tx_ids: Iterable[bytes]) -> None:
        """Stop retransmitting, asking and counting for `tx_ids`."""
        for tx_id in tx_ids:
            self._entries.pop(tx_id, None)

    # -- outputs and state -----------------------------------------------------------------

    def requests(self, txs: Sequence[SignedTransaction]) -> list[Publish]:
        """The request messages for `txs`, without tracking them (fire and forget)."""
        return self._request_batches([stx.raw for stx in txs])

    def next_wake_ms(self) -> int | None:
        """The earliest retransmission or query deadline still pending."""
        while self._deadlines:
            at, _, kind, tx_id = self._deadlines[0]
            entry = self._entries.get(tx_id)
            if entry is not None and self._is_live(entry, kind, at):
                return at
            heapq.heappop(self._deadlines)
        return None

    def unknown_answers(self, tx_id: bytes) -> Unknown:
        """The unknown answers so far, for a shell that stops waiting before n-f came."""
        entry = self._entries.get(tx_id)
        return Unknown(tx_id, dict(entry.unknown) if entry is not None else {})

    def is_tracked(self, tx_id: bytes) -> bool:
        return tx_id in self._entries

    @property
    def tracked(self) -> int:
        return len(self._entries)

    @property
    def rejected_notices(self) -> int:
        return sum(self.rejects.values())

    # -- internals -------------------------------------------------------------------------

    def _count_commit(self, step: ClientStep, notice: CommitNotice) -> None:
        for receipt in notice.receipts:
            entry = self._entries.get(receipt.tx_id)
            if entry is None:
                continue
            claim = (notice.height, notice.block_hash, notice.business_day, receipt.leaf())
            voters = entry.votes.setdefault(claim, set())
            voters.add(notice.node)
            if len(voters) >= self.accept_after:
                del self._entries[receipt.tx_id]
                step.decided.append(
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

    def _count_unknown(self, step: ClientStep, notice: UnknownNotice) -> None:
        for tx_id in notice.tx_ids:
            entry = self._entries.get(tx_id)
            if entry is None:
                continue
            entry.unknown[notice.node] = notice.height
            if entry.asking and len(entry.unknown) >= self.unknown_after:
                self._decide_unknown(step, tx_id, entry)

    def _count_refusal(self, step: ClientStep, notice: OverloadedNotice, now_ms: int) -> None:
        """f+1 refusals of a submitted transaction: report it and hold its retransmission for
        the longest wait they asked (within `MAX_BACKOFF_MS`)."""
        for tx_id in notice.tx_ids:
            entry = self._entries.get(tx_id)
            if entry is None or entry.raw is None:
                continue
            entry.overloaded[notice.node] = notice.retry_after_ms
            if len(entry.overloaded) < self.accept_after:
                continue
            wait = max(1, min(MAX_BACKOFF_MS, max(entry.overloaded.values())))
            entry.overloaded.clear()
            entry.resend_at = now_ms + wait
            self._push(entry.resend_at, _RESEND, tx_id)
            step.refused.append(Refused(tx_id, wait))

    def _decide_unknown(self, step: ClientStep, tx_id: bytes, entry: _Entry) -> None:
        step.decided.append(Unknown(tx_id, dict(entry.unknown)))
        entry.asking = False
        entry.ask_at = None
        if entry.raw is None:
            del self._entries[tx_id]

    def _is_live(self, entry: _Entry, kind: int, at: int) -> bool:
        if kind == _RESEND:
            return entry.raw is not None and entry.resend_at == at
        return entry.asking and entry.ask_at == at

    def _push(self, at: int, kind: int, tx_id: bytes) -> None:
        self._sequence += 1
        heapq.heappush(self._deadlines, (at, self._sequence, kind, tx_id))

    def _request_batches(self, raws: list[bytes]) -> list[Publish]:
        return [
            Publish(self.request_topic, codec.encode_flat(raws[start : start + self.max_batch]))
            for start in range(0, len(raws), self.max_batch)
        ]

    def _queries(self, tx_ids: list[bytes]) -> list[Publish]:
        return [
            Publish(self.ask_topic, encode_outcome_query(tx_ids[start : start + MAX_ASKED_TXS]))
            for start in range(0, len(tx_ids), MAX_ASKED_TXS)
        ]

    def _reject(self, reason: str) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1

    def _step(self, publish: list[Publish]) -> ClientStep:
        return ClientStep(publish=publish, wake_at_ms=self.next_wake_ms())
