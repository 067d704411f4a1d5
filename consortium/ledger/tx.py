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


def _split_envelope(raw: bytes) -> tuple[bytes, bytes]:
    """Read `[body, signature]` straight from its bytes. Only the canonical form is accepted
    (the body's length in its shortest header, a 64-byte signature, nothing after it): exactly
    what `codec.decode` accepts for this shape, at a fraction of its cost on the hot path."""
    if len(raw) < 4 or raw[0] != 0x92:
        raise CodecError("transaction: expected an array of 2 items")
    if raw[1] == 0xC4:  # bin 8
        body_start = 3
        body_end = body_start + raw[2]
    elif raw[1] == 0xC5 and raw[2] != 0:  # bin 16, for bodies of 256 bytes and more
        body_start = 4
        body_end = body_start + int.from_bytes(raw[2:4], "big")
    else:
        raise CodecError("transaction.body: not a canonical byte string")
    if raw[body_end : body_end + 2] != b"\xc4\x40" or len(raw) != body_end + 2 + SIGNATURE_BYTES:
        raise CodecError("transaction.signature: not 64 bytes closing the transaction")
    return bytes(raw[body_start:body_end]), bytes(raw[body_end + 2 :])


def decode_transaction(raw: bytes) -> SignedTransaction:
    """Parse and type-check a signed transaction; the signature itself is not checked here."""
    if len(raw) > MAX_TX_BYTES:
        raise CodecError(f"transaction of {len(raw)} bytes exceeds {MAX_TX_BYTES}")
    body, signature = _split_envelope(raw)
    fields = codec.expect_tuple(codec.decode(body, max_bytes=MAX_TX_BYTES), 5, "transaction.body")
    chain_id, sender, nonce, op, args = fields
    if type(chain_id) is not str or type(sender) is not str or type(op) is not str:
        raise CodecError("transaction: chain_id, sender and op must be strings")
    if type(nonce) is not int:
        raise CodecError("transaction.nonce: expected int")
    if type(args) is not dict:
        raise CodecError("transaction.args: expected a map")
    if not 0 < len(sender) <= MAX_SENDER_LENGTH:
        raise CodecError("transaction.sender: empty or too long")
    if not 0 < len(op) <= MAX_OP_LENGTH:
        raise CodecError("transaction.op: empty or too long")
    if not 0 < nonce <= MAX_NONCE:
        raise CodecError("transaction.nonce: out of range")
    tx = Transaction(chain_id, sender, nonce, op, args)
    return SignedTransaction(tx, sha256(body), signature, bytes(raw))
