"""Canonical msgpack: one value has exactly one byte string, and every byte string decodes to at
most one value (or a `CodecError`).

Canonical means: maps have str keys sorted by their UTF-8 bytes with no duplicates, integers and
lengths use the shortest form (msgpack's own packer does that), no floats, no extension types.
`decode` enforces it by re-encoding and comparing, which also rejects trailing bytes.
"""

from __future__ import annotations

from typing import Any

import msgpack

from consortium.errors import CodecError

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 32

_ALLOWED_SCALARS = (str, bytes, int, bool, type(None))


def _sorted_map(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if any(not isinstance(k, str) for k in keys):
        raise CodecError("map key is not a string")
    if keys != sorted(keys, key=_key_bytes) or len(set(keys)) != len(keys):
        raise CodecError("map keys are not sorted and unique")
    return dict(pairs)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"extension type {code} is not allowed")


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8")


def _canonical(value: Any, depth: int = 0) -> Any:
    """Return `value` with maps key-sorted and tuples kept; reject what msgpack would not round-trip."""
    if depth > MAX_DEPTH:
        raise CodecError(f"value nested deeper than {MAX_DEPTH}")
    if isinstance(value, _ALLOWED_SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [_canonical(v, depth + 1) for v in value]
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise CodecError(f"map key {k!r} is not a string")
            items.append((k, _canonical(v, depth + 1)))
        items.sort(key=lambda kv: _key_bytes(kv[0]))
        return dict(items)
    raise CodecError(f"type {type(value).__name__} cannot be encoded")


def encode(value: Any) -> bytes:
    """Encode `value` canonically. Raises `CodecError` for floats, non-str keys, and too deep values."""
    return msgpack.packb(_canonical(value), use_bin_type=True)


def encode_flat(value: list | tuple) -> bytes:
    """Encode an array of scalars and byte strings (no maps) without the canonicalising walk.

    For hot paths whose value is built by our own code from already-checked fields.
    """
    return msgpack.packb(value, use_bin_type=True)


def _check_depth(value: Any, limit: int) -> None:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise CodecError(f"value nested deeper than {limit}")
        if isinstance(item, tuple):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, float):
            raise CodecError("floats are not allowed")


def decode(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one canonical value. Arrays come back as tuples, maps as dicts with str keys."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    if len(data) == 0:
        raise CodecError("empty message")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            object_pairs_hook=_sorted_map,
            ext_hook=_refuse_ext,
        )
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise CodecError(f"not msgpack: {type(exc).__name__}: {exc}") from None
    _check_depth(value, max_depth)
    try:
        again = msgpack.packb(value, use_bin_type=True)
    except Exception as exc:
        raise CodecError(f"cannot re-encode: {exc}") from None
    if again != bytes(data):
        raise CodecError("not the canonical encoding of its value")
    return value


def expect_tuple(value: Any, length: int, what: str) -> tuple:
    """Check that a decoded value is an array of exactly `length` items."""
    if not isinstance(value, tuple) or len(value) != length:
        raise CodecError(f"{what}: expected an array of {length} items")
    return value


def expect_type(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """Check one decoded field's type; bool is not accepted where int is asked."""
    if isinstance(value, bool) and kind is int:
        raise CodecError(f"{what}: expected int, got bool")
    if not isinstance(value, kind):
        raise CodecError(
            f"{what}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}"
        )
    return value
