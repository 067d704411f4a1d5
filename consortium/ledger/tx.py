"""Signed business transactions.

Wire form: `[body, signature]`, where `body` is the canonical encoding of
`[chain_id, sender, nonce, op, args]`. The transaction id is SHA-256 of `body`, and the signature is
the sender's ed25519 signature over `b"consortium/tx" + id`, so the id cannot be malleated: a
different encoding of the same body is not canonical and does not decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consortium import codec
from consortium.crypto import SIGNATURE_BYTES, KeyPair, sha256, verify
from consortium.errors import CodecError

TX_DOMAIN = b"consortium/tx"
MAX_TX_BYTES = 64 * 1024
MAX_OP_LENGTH = 64
MAX_SENDER_LENGTH = 32
MAX_NONCE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Transaction:
    """What a member asks the chain to do. `nonce` must exceed the sender's last committed nonce."""

    chain_id: str
    sender: str
    nonce: int
    op: str
    args: dict[str, Any]

    def body(self) -> bytes:
        return codec.encode([self.chain_id, self.sender, self.nonce, self.op, self.args])

    def sign(self, key: KeyPair) -> SignedTransaction:
        body = self.body()
        tx_id = sha256(body)
        signature = key.sign(TX_DOMAIN + tx_id)
        raw = codec.encode_flat((body, signature))
        return SignedTransaction(self, tx_id, signature, raw)


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    tx: Transaction
    tx_id: bytes
    signature: bytes
    raw: bytes

    def signature_valid(self, public_key: bytes) -> bool:
        return verify(public_key, TX_DOMAIN + self.tx_id, self.signature)


def decode_transaction(raw: bytes) -> SignedTransaction:
    """Parse and type-check a signed transaction; the signature itself is not checked here."""
    if len(raw) > MAX_TX_BYTES:
        raise CodecError(f"transaction of {len(raw)} bytes exceeds {MAX_TX_BYTES}")
    outer = codec.expect_tuple(codec.decode(raw, max_bytes=MAX_TX_BYTES), 2, "transaction")
    body = codec.expect_type(outer[0], bytes, "transaction.body")
    signature = codec.expect_type(outer[1], bytes, "transaction.signature")
    if len(signature) != SIGNATURE_BYTES:
        raise CodecError("transaction.signature: not 64 bytes")
    fields = codec.expect_tuple(codec.decode(body, max_bytes=MAX_TX_BYTES), 5, "transaction.body")
    chain_id = codec.expect_type(fields[0], str, "transaction.chain_id")
    sender = codec.expect_type(fields[1], str, "transaction.sender")
    nonce = codec.expect_type(fields[2], int, "transaction.nonce")
    op = codec.expect_type(fields[3], str, "transaction.op")
    args = codec.expect_type(fields[4], dict, "transaction.args")
    if not 0 < len(sender) <= MAX_SENDER_LENGTH:
        raise CodecError("transaction.sender: empty or too long")
    if not 0 < len(op) <= MAX_OP_LENGTH:
        raise CodecError("transaction.op: empty or too long")
    if not 0 < nonce <= MAX_NONCE:
        raise CodecError("transaction.nonce: out of range")
    tx = Transaction(chain_id, sender, nonce, op, args)
    return SignedTransaction(tx, sha256(body), signature, bytes(raw))
