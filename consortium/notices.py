"""Messages nodes publish for clients and dashboards: commit notices and status heartbeats.

A commit notice carries every receipt of one committed block, signed by the node, so a client
counts f+1 matching notices from distinct nodes instead of receiving one reply per transaction
per node. The signature lets a client trust a notice without trusting the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consortium import codec
from consortium.crypto import KeyPair, verify
from consortium.errors import CodecError
from consortium.ledger.block import Receipt, encode_receipts

NOTICE_DOMAIN = "consortium/notice"


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
        body = self._body(chain_id)
        return codec.encode_flat((body, key.sign(body)))

    @staticmethod
    def decode(data: bytes, chain_id: str, node_keys: dict[str, bytes]) -> CommitNotice:
        """Parse and authenticate a notice; raises CodecError for anything wrong."""
        body, signature = codec.expect_tuple(codec.decode(data), 2, "notice")
        codec.expect_type(body, bytes, "notice.body")
        codec.expect_type(signature, bytes, "notice.signature")
        fields = codec.expect_tuple(codec.decode(body), 7, "notice.body")
        domain, chain, node, height, block_hash, day, receipts = fields
        if domain != NOTICE_DOMAIN or chain != chain_id:
            raise CodecError("notice for another chain or purpose")
        key = node_keys.get(node) if isinstance(node, str) else None
        if key is None or not verify(key, body, signature):
            raise CodecError(f"notice not signed by node {node!r}")
        codec.expect_type(height, int, "notice.height")
        codec.expect_type(block_hash, bytes, "notice.block_hash")
        codec.expect_type(day, int, "notice.business_day")
        codec.expect_type(receipts, tuple, "notice.receipts")
        parsed = tuple(Receipt.from_wire(r) for r in receipts)
        return CommitNotice(node, height, block_hash, day, parsed, signature)


def encode_status(status: dict[str, Any]) -> bytes:
    return codec.encode(status)


def decode_status(data: bytes) -> dict[str, Any]:
    value = codec.decode(data, max_bytes=64 * 1024)
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise CodecError("status heartbeat is not a map with an id")
    return value
