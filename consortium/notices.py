"""Messages nodes publish for clients and dashboards: commit notices and status heartbeats.

A commit notice carries every receipt of one committed block, signed by the node, so a client
counts f+1 matching notices from distinct nodes instead of receiving one reply per transaction
per node. The signature lets a client trust a notice without trusting the broker.

A client that missed the broadcast asks (or retransmits) and each node answers it alone: with a
commit notice that lists only the asked receipts of a block (the signature covers exactly the
receipts a notice lists), or with an `UnknownNotice` for transactions it has not committed.
A node that cannot take a client's transactions now says so at once with an `OverloadedNotice`
(and how long to wait), so that the client backs off instead of guessing from silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from consortium import codec
from consortium.crypto import KeyPair, verify
from consortium.errors import CodecError
from consortium.ledger.block import Receipt, encode_receipts

NOTICE_DOMAIN = "consortium/notice"
UNKNOWN_DOMAIN = "consortium/unknown"
OVERLOADED_DOMAIN = "consortium/overloaded"
MAX_ASKED_TXS = 256


@dataclass(frozen=True, slots=True)
class CommitNotice:
    node: str
    height: int
    block_hash: bytes
    business_day: int
    receipts: tuple[Receipt, ...]
    signature: bytes = b""

    def _body(self, chain_id: str) -> bytes:
        """The canonical encoding of `[domain, chain, node, height, hash, day, receipts]`, built
        from the receipts' own encodings (a notice repeats every receipt of its block)."""
        head = (NOTICE_DOMAIN, chain_id, self.node, self.height, self.block_hash)
        fields = [codec.encode_flat(value) for value in (*head, self.business_day)]
        return codec.array_of_encoded([*fields, encode_receipts(self.receipts)])

    def signed(self, chain_id: str, key: KeyPair) -> bytes:
        return _signed(self._body(chain_id), key)

    @staticmethod
    def decode(data: bytes, chain_id: str, node_keys: dict[str, bytes]) -> CommitNotice:
        """Parse and authenticate a notice; raises CodecError for anything wrong."""
        body, signature = _signed_body(data, chain_id, node_keys, NOTICE_DOMAIN, 7)
        _, _, node, height, block_hash, day, receipts = body
        codec.expect_type(height, int, "notice.height")
        codec.expect_type(block_hash, bytes, "notice.block_hash")
        codec.expect_type(day, int, "notice.business_day")
        codec.expect_type(receipts, tuple, "notice.receipts")
        parsed = tuple(Receipt.from_wire(r) for r in receipts)
        return CommitNotice(node, height, block_hash, day, parsed, signature)


@dataclass(frozen=True, slots=True)
class UnknownNotice:
    """A node's signed statement that, at its committed `height`, it holds none of `tx_ids`."""

    node: str
    height: int
    tx_ids: tuple[bytes, ...]
    signature: bytes = b""

    def _body(self, chain_id: str) -> bytes:
        return codec.encode((UNKNOWN_DOMAIN, chain_id, self.node, self.height, self.tx_ids))

    def signed(self, chain_id: str, key: KeyPair) -> bytes:
        return _signed(self._body(chain_id), key)

    @staticmethod
    def decode(data: bytes, chain_id: str, node_keys: dict[str, bytes]) -> UnknownNotice:
        body, signature = _signed_body(data, chain_id, node_keys, UNKNOWN_DOMAIN, 5)
        _, _, node, height, tx_ids = body
        codec.expect_type(height, int, "unknown.height")
        return UnknownNotice(node, height, _tx_ids(tx_ids, "unknown"), signature)


@dataclass(frozen=True, slots=True)
class OverloadedNotice:
    """A node's signed refusal of `tx_ids`: its queues hold more than it can commit before its
    peers would suspect the primary. Not an outcome: the transactions may still commit through
    other nodes, and retrying after `retry_after_ms` is welcome."""

    node: str
    height: int
    tx_ids: tuple[bytes, ...]
    retry_after_ms: int
    signature: bytes = b""

    def _body(self, chain_id: str) -> bytes:
        fields = (self.node, self.height, self.tx_ids, self.retry_after_ms)
        return codec.encode((OVERLOADED_DOMAIN, chain_id, *fields))

    def signed(self, chain_id: str, key: KeyPair) -> bytes:
        return _signed(self._body(chain_id), key)

    @staticmethod
    def decode(data: bytes, chain_id: str, node_keys: dict[str, bytes]) -> OverloadedNotice:
        body, signature = _signed_body(data, chain_id, node_keys, OVERLOADED_DOMAIN, 6)
        _, _, node, height, tx_ids, retry_after_ms = body
        codec.expect_type(height, int, "overloaded.height")
        codec.expect_type(retry_after_ms, int, "overloaded.retry_after_ms")
        ids = _tx_ids(tx_ids, "overloaded")
        return OverloadedNotice(node, height, ids, retry_after_ms, signature)


Answer = CommitNotice | UnknownNotice | OverloadedNotice
_ANSWERS: dict[str, Any] = {
    NOTICE_DOMAIN: CommitNotice,
    UNKNOWN_DOMAIN: UnknownNotice,
    OVERLOADED_DOMAIN: OverloadedNotice,
}


def _signed(body: bytes, key: KeyPair) -> bytes:
    """`[body, signature]`: every notice for clients is signed over its body bytes directly."""
    return codec.encode_flat((body, key.sign(body)))


def _tx_ids(value: Any, what: str) -> tuple[bytes, ...]:
    codec.expect_type(value, tuple, f"{what}.tx_ids")
    for tx_id in value:
        codec.expect_type(tx_id, bytes, f"{what}.tx_id")
    return value


def _signed_body(
    data: bytes, chain_id: str, node_keys: dict[str, bytes], domain: str, fields: int
) -> tuple[tuple, bytes]:
    """`[body, signature]` whose body is `[domain, chain, node, ...]` signed by that node."""
    body, signature = codec.expect_tuple(codec.decode(data), 2, "notice")
    codec.expect_type(body, bytes, "notice.body")
    codec.expect_type(signature, bytes, "notice.signature")
    decoded = codec.expect_tuple(codec.decode(body), fields, "notice.body")
    if decoded[0] != domain or decoded[1] != chain_id:
        raise CodecError("notice for another chain or purpose")
    node = decoded[2]
    key = node_keys.get(node) if isinstance(node, str) else None
    if key is None or not verify(key, body, signature):
        raise CodecError(f"notice not signed by node {node!r}")
    return decoded, signature


def _domain_of(data: bytes) -> str | None:
    """The first field of a signed notice's body, read without decoding the rest (a commit
    notice's body holds every receipt of its block)."""
    try:
        outer = msgpack.Unpacker(raw=False)
        outer.feed(data)
        if outer.read_array_header() != 2:
            return None
        body = outer.unpack()
        if not isinstance(body, bytes):
            return None
        inner = msgpack.Unpacker(raw=False)
        inner.feed(body)
        if inner.read_array_header() < 1:
            return None
        domain = inner.unpack()
    except (msgpack.UnpackException, ValueError):
        return None
    return domain if isinstance(domain, str) else None


def decode_answer(data: bytes, chain_id: str, node_keys: dict[str, bytes]) -> Answer:
    """A node's message to clients: a commit notice, an unknown notice or a refusal, told
    apart by the domain its signed body starts with; raises CodecError for anything else."""
    kind = _ANSWERS.get(_domain_of(data))
    if kind is None:
        raise CodecError("not a notice for clients")
    answer: Answer = kind.decode(data, chain_id, node_keys)
    return answer


def encode_outcome_query(tx_ids: list[bytes]) -> bytes:
    if not 0 < len(tx_ids) <= MAX_ASKED_TXS:
        raise CodecError(f"an outcome query asks for 1 to {MAX_ASKED_TXS} transactions")
    return codec.encode_flat(list(tx_ids))


def decode_outcome_query(data: bytes) -> tuple[bytes, ...]:
    """The transaction ids a client asks about; raises CodecError for anything else."""
    tx_ids = codec.expect_type(
        codec.decode(data, max_items=MAX_ASKED_TXS, max_bytes=64 * 1024), tuple, "query"
    )
    if not tx_ids:
        raise CodecError("an outcome query asks for at least one transaction")
    for tx_id in tx_ids:
        if not isinstance(tx_id, bytes) or len(tx_id) != 32:
            raise CodecError("an outcome query lists 32-byte transaction ids")
    return tx_ids


def encode_status(status: dict[str, Any]) -> bytes:
    return codec.encode(status)


def decode_status(data: bytes) -> dict[str, Any]:
    value = codec.decode(data, max_bytes=64 * 1024)
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise CodecError("status heartbeat is not a map with an id")
    return value
