"""Canonical msgpack: round trips, one encoding per value, and one typed error for bad bytes."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consortium import codec
from consortium.errors import CodecError

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary()
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
def test_round_trip(value):
    data = codec.encode(value)
    assert codec.decode(data) == value
    assert codec.encode(codec.decode(data)) == data


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_codec_error(data):
    try:
        value = codec.decode(data)
    except CodecError:
        return
    assert codec.encode(value) == data


@given(values, st.data())
def test_truncated_encoding_is_rejected(value, data):
    encoded = codec.encode(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(CodecError):
        codec.decode(encoded[:cut])


def test_dict_order_does_not_change_the_encoding():
    assert codec.encode({"b": 1, "a": 2}) == codec.encode({"a": 2, "b": 1})


def test_unsorted_map_is_not_canonical():
    data = msgpack.packb({"b": 1, "a": 2})
    with pytest.raises(CodecError, match="sorted"):
        codec.decode(data)


def test_non_minimal_integer_is_not_canonical():
    data = b"\xce\x00\x00\x00\x05"  # uint32 holding 5, which has a one-byte form
    with pytest.raises(CodecError, match="canonical"):
        codec.decode(data)


def test_trailing_bytes_are_rejected():
    with pytest.raises(CodecError):
        codec.decode(codec.encode(1) + b"\x00")


def test_floats_are_refused_both_ways():
    with pytest.raises(CodecError):
        codec.encode(1.5)
    with pytest.raises(CodecError):
        codec.decode(msgpack.packb(1.5))


def test_size_limit():
    with pytest.raises(CodecError, match="exceeds"):
        codec.decode(codec.encode(b"x" * 100), max_bytes=50)


def test_depth_limit():
    nested: object = 1
    for _ in range(codec.MAX_DEPTH + 2):
        nested = [nested]
    with pytest.raises(CodecError, match="deeper"):
        codec.encode(nested)
    with pytest.raises(CodecError, match="deeper"):
        codec.decode(msgpack.packb(nested))


def test_non_string_keys_and_ext_types_are_rejected():
    with pytest.raises(CodecError):
        codec.encode({1: 2})
    with pytest.raises(CodecError):
        codec.decode(msgpack.packb({1: 2}))
    with pytest.raises(CodecError):
        codec.decode(msgpack.packb(msgpack.ExtType(1, b"x")))
    with pytest.raises(CodecError, match="not a string"):
        codec.decode(msgpack.packb({b"key": 1}, use_bin_type=True))


def test_duplicate_map_keys_are_rejected():
    one_pair = msgpack.packb({"a": 1})
    twice = b"\x82" + one_pair[1:] + one_pair[1:]  # {"a": 1, "a": 1}
    with pytest.raises(CodecError):
        codec.decode(twice)


def test_encoding_a_canonical_value_keeps_it_as_it_is():
    record = {"a": 1, "b": (1, 2), "c": {"x": b"y"}}
    assert codec._canonical(record) is record
    unsorted = {"b": 1, "a": {"d": 1, "c": 2}}
    assert list(codec._canonical(unsorted)) == ["a", "b"]
    assert list(codec._canonical(unsorted)["a"]) == ["c", "d"]


def test_expect_type_refuses_bool_for_int():
    with pytest.raises(CodecError, match="bool"):
        codec.expect_type(True, int, "field")


@given(st.lists(values, max_size=6))
def test_an_array_of_encoded_items_is_the_arrays_encoding(items):
    assert codec.array_of_encoded([codec.encode(v) for v in items]) == codec.encode(items)
