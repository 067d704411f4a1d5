"""Blocks, headers and receipts, and their canonical wire forms.

A block as proposed is `[header, [tx bytes...]]`; receipts are not sent, every node derives them by
executing the block and the header commits to them through `receipts_root`. The block hash is
SHA-256 of the encoded header, and the header commits to everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consortium import codec
from consortium.crypto import HASH_BYTES, sha256
from consortium.errors import CodecError
from consortium.ledger.merkle import merkle_root
from consortium.ledger.tx import SignedTransaction, decode_transaction

MAX_BLOCK_BYTES = 32 * 1024 * 1024
MAX_BLOCK_TXS = 20_000
GENESIS_PARENT = bytes(HASH_BYTES)


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain_id: str
    height: int
    parent_hash: bytes
    tx_root: bytes
    receipts_root: bytes
    state_root: bytes
    business_day: int
    proposer: str
    view: int

    def to_wire(self) -> tuple:
        return (
            self.chain_id,
            self.height,
            self.parent_hash,
            self.tx_root,
            self.receipts_root,
            self.state_root,
            self.business_day,
            self.proposer,
            self.view,
        )

    def encode(self) -> bytes:
        return codec.encode_flat(self.to_wire())

    @property
    def hash(self) -> bytes:
        return sha256(self.encode())

    @staticmethod
    def from_wire(value: Any) -> BlockHeader:
        fields = codec.expect_tuple(value, 9, "header")
        kinds = (str, int, bytes, bytes, bytes, bytes, int, str, int)
        names = ("chain_id", "height", "parent_hash", "tx_root", "receipts_root", "state_root")
        names += ("business_day", "proposer", "view")
        for field_value, kind, name in zip(fields, kinds, names, strict=True):
            codec.expect_type(field_value, kind, f"header.{name}")
            if kind is bytes and len(field_value) != HASH_BYTES:
                raise CodecError(f"header.{name}: not {HASH_BYTES} bytes")
            if kind is int and field_value < 0:
                raise CodecError(f"header.{name}: negative")
        return BlockHeader(*fields)


@dataclass(slots=True)
class Receipt:
    """The outcome of one transaction: committed, or failed with the rule it broke.
    Never changed once made (not `frozen` only because one is built per transaction on the hot
    path, where a frozen dataclass costs twice as much to construct)."""

    tx_id: bytes
    ok: bool
    reason: str
    result: dict[str, Any] | None
    _encoded: bytes | None = field(default=None, compare=False, repr=False)

    def to_wire(self) -> tuple:
        return (self.tx_id, self.ok, self.reason, self.result)

    @staticmethod
    def from_wire(value: Any) -> Receipt:
        tx_id, ok, reason, result = codec.expect_tuple(value, 4, "receipt")
        codec.expect_type(tx_id, bytes, "receipt.tx_id")
        codec.expect_type(ok, bool, "receipt.ok")
        codec.expect_type(reason, str, "receipt.reason")
        if result is not None:
            codec.expect_type(result, dict, "receipt.result")
        return Receipt(tx_id, ok, reason, result)

    def encoded(self) -> bytes:
        """The canonical encoding, made once: the receipts root, the store and the commit notice
        all carry it (see `encode_receipts`)."""
        if self._encoded is None:
            wire = self.to_wire()
            self._encoded = codec.encode_flat(wire) if self.result is None else codec.encode(wire)
        return self._encoded

    def leaf(self) -> bytes:
        return sha256(self.encoded())


def encode_receipts(receipts: list[Receipt] | tuple[Receipt, ...]) -> bytes:
    """The canonical encoding of a list of receipts, from each receipt's own encoding."""
    return codec.array_of_encoded([r.encoded() for r in receipts])


def receipts_root(receipts: list[Receipt] | tuple[Receipt, ...]) -> bytes:
    return merkle_root([r.leaf() for r in receipts])


def tx_root(txs: list[SignedTransaction] | tuple[SignedTransaction, ...]) -> bytes:
    return merkle_root([t.tx_id for t in txs])


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[SignedTransaction, ...]

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def encode(self) -> bytes:
        return codec.encode_flat((self.header.to_wire(), [t.raw for t in self.txs]))


def split_block(data: bytes) -> tuple[BlockHeader, tuple[bytes, ...]]:
    """Decode the envelope of a block: its header and the raw bytes of each transaction."""
    outer = codec.expect_tuple(codec.decode(data, max_bytes=MAX_BLOCK_BYTES), 2, "block")
    header = BlockHeader.from_wire(outer[0])
    raws = codec.expect_type(outer[1], tuple, "block.txs")
    if len(raws) > MAX_BLOCK_TXS:
        raise CodecError(f"block has {len(raws)} transactions, the limit is {MAX_BLOCK_TXS}")
    for raw in raws:
        codec.expect_type(raw, bytes, "block.tx")
    return header, raws


def decode_block(data: bytes) -> Block:
    header, raws = split_block(data)
    return Block(header, tuple(decode_transaction(raw) for raw in raws))
