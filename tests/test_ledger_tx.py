"""Transactions and receipts on the wire: the direct reader of the `[body, signature]` envelope
accepts exactly what the generic canonical decoder accepts, anything else is a `CodecError`; lists
of receipts built from each receipt's own encoding are the canonical encoding."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consortium import codec
from consortium.crypto import KeyPair
from consortium.errors import CodecError
from consortium.ledger.block import Receipt, encode_receipts
from consortium.ledger.tx import Transaction, decode_transaction
from consortium.notices import CommitNotice

KEY = KeyPair.generate()


def _signed(note: str):
    return Transaction("chain", "supplier-a", 7, "receivable.draft", {"note": note}).sign(KEY)


def _generic(raw: bytes) -> tuple[bytes, bytes]:
    """The envelope read by the generic decoder, as the reference for the direct reader."""
    outer = codec.decode(raw)
    if not isinstance(outer, tuple) or len(outer) != 2:
        raise CodecError("not a pair")
    body, signature = outer
    if type(body) is not bytes or type(signature) is not bytes or len(signature) != 64:
        raise CodecError("not bytes")
    return body, signature


@given(st.text(max_size=400))
def test_round_trip_for_short_and_long_bodies(note):
    stx = _signed(note)
    decoded = decode_transaction(stx.raw)
    assert decoded == stx


@given(st.text(max_size=300), st.data())
def test_mutated_envelopes_decode_exactly_when_the_generic_decoder_accepts(note, data):
    raw = bytearray(_signed(note).raw)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    mutated = bytes(raw[:cut] if data.draw(st.booleans()) else raw)
    try:
        expected = _generic(mutated)
    except CodecError:
        expected = None
    try:
        stx = decode_transaction(mutated)
    except CodecError as exc:
        # An envelope the generic decoder accepts may still carry no transaction body, but the
        # direct reader must not refuse the envelope itself.
        envelope_errors = ("transaction: expected", "transaction.body: not", "transaction.sig")
        assert expected is None or not str(exc).startswith(envelope_errors)
        return
    assert expected == (stx.tx.body(), stx.signature)


def test_non_minimal_length_headers_are_refused():
    stx = _signed("x")
    body = stx.tx.body()
    as_bin16 = b"\x92\xc5" + len(body).to_bytes(2, "big") + body + b"\xc4\x40" + stx.signature
    with pytest.raises(CodecError):
        decode_transaction(as_bin16)
    with pytest.raises(CodecError):
        _generic(as_bin16)
    assert decode_transaction(msgpack.packb((body, stx.signature), use_bin_type=True)) == stx


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x92", b"\x93\xc4\x00\xc4\x40" + bytes(64), b"\x92\xc4\x05abc", b"\x92\xc4\x00"],
)
def test_short_or_wrong_envelopes_are_codec_errors(raw):
    with pytest.raises(CodecError):
        decode_transaction(raw)


def test_receipts_and_notices_built_from_encoded_receipts_are_canonical():
    receipts = (
        Receipt(b"\x01" * 32, True, "", {"receivable": "rcv-1", "parts": ("a", "b")}),
        Receipt(b"\x02" * 32, False, "no such receivable", None),
    )
    assert encode_receipts(receipts) == codec.encode([r.to_wire() for r in receipts])
    notice = CommitNotice("bank-a", 7, b"\x03" * 32, 12, receipts)
    signed = notice.signed("chain", KEY)
    decoded = CommitNotice.decode(signed, "chain", {"bank-a": KEY.public_key})
    assert decoded.receipts == receipts and decoded.height == 7
