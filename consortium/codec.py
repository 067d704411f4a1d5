"""Canonical msgpack: one value has exactly one byte string, and every byte string decodes to at
most one value (or a `CodecError`).

Canonical means: maps have str keys sorted by their UTF-8 bytes with no duplicates, integers and
lengths use the shortest form (msgpack's own packer does that), no floats, no extension types.
`decode` enforces it by re-encoding and comparing, which also rejects trailing bytes.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

from consortium.errors import CodecError, CodecLimitError

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 32
MAX_ITEMS = 20_000


def _refuse_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"extension type {code} is not allowed")


_SCALARS = frozenset({str, bytes, int, bool, type(None)})
_UNSORTED = object()
_KEY_ORDERS: dict[tuple[str, ...], tuple[str, ...] | None] = {}
_KEY_ORDERS_LIMIT = 4096


def _sorted_keys(value: dict) -> tuple[str, ...] | None:
    """The keys of `value` in canonical order, or None when they are in that order already.

    Records built by the same code share one key order, so the answer is remembered per order
    (a bounded memo of a pure function): canonical encoding costs one lookup, not a sort."""
    keys = tuple(value)
    order = _KEY_ORDERS.get(keys, _UNSORTED)
    if order is _UNSORTED:
        if any(type(k) is not str for k in keys):
            bad = next(k for k in keys if type(k) is not str)
            raise CodecError(f"map key {bad!r} is not a string")
        # Python orders str by code point, which is also the order of their UTF-8 bytes.
        ordered = tuple(sorted(keys))
        order = None if ordered == keys else ordered
        if len(_KEY_ORDERS) < _KEY_ORDERS_LIMIT:
            _KEY_ORDERS[keys] = order
    return order  # type: ignore[return-value]


def _canonical(value: Any, depth: int = 0) -> Any:
    """Return `value` with maps key-sorted (the very same object when it is canonical already);
    reject what msgpack would not round-trip exactly."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth >= MAX_DEPTH:
        raise CodecError(f"value nested deeper than {MAX_DEPTH}")
    if kind is tuple or kind is list:
        changed = None
        for index, item in enumerate(value):
            if type(item) not in _SCALARS:
                fixed = _canonical(item, depth + 1)
                if fixed is not item:
                    if changed is None:
                        changed = list(value)
                    changed[index] = fixed
        return value if changed is None else changed
    if kind is dict:
        order = _sorted_keys(value)
        if order is None:
            if _SCALARS.issuperset(map(type, value.values())):
                return value
            fixes = None
            for key, item in value.items():
                if type(item) not in _SCALARS:
                    fixed = _canonical(item, depth + 1)
                    if fixed is not item:
                        if fixes is None:
                            fixes = {}
                        fixes[key] = fixed
            return value if fixes is None else {**value, **fixes}
        out = {}
        for key in order:
            item = value[key]
            out[key] = item if type(item) in _SCALARS else _canonical(item, depth + 1)
        return out
    # Subclasses (enums of str or int, named tuples) encode as their base type.
    for base in (str, bytes, bool, int):
        if isinstance(value, base):
            return base(value)
    if isinstance(value, list | tuple):
        return _canonical(list(value), depth)
    if isinstance(value, dict):
        return _canonical(dict(value), depth)
    raise CodecError(f"type {kind.__name__} cannot be encoded")


class _Packers(threading.local):
    """One reusable packer per thread: `msgpack.packb` allocates a fresh 1 MiB buffer per call,
    which costs more than packing a small record."""

    def __init__(self) -> None:
        packer = msgpack.Packer(use_bin_type=True)
        self.pack = packer.pack
        self.pack_array_header = packer.pack_array_header


_PACKERS = _Packers()


def encode(value: Any) -> bytes:
    """Encode `value` canonically. Raises `CodecError` for floats, non-str keys, and too deep values."""
    return _PACKERS.pack(_canonical(value))


def encode_flat(value: list | tuple) -> bytes:
    """Encode an array of scalars and byte strings (no maps) without the canonicalising walk.

    For hot paths whose value is built by our own code from already-checked fields.
    """
    return _PACKERS.pack(value)


def array_of_encoded(items: list[bytes] | tuple[bytes, ...]) -> bytes:
    """The canonical encoding of an array whose items are given already encoded (canonically):
    msgpack writes an array as its length header followed by its items, so a value encoded once
    can go into several larger messages without being encoded again."""
    return _PACKERS.pack_array_header(len(items)) + b"".join(items)


def _check_decoded(value: Any, max_depth: int) -> None:
    """What msgpack's reader leaves to us: no floats, maps keyed by str in strictly increasing
    order (so no duplicates), and no container nested `max_depth` deep (as `encode` refuses)."""
    kind = type(value)
    if kind is float:
        raise CodecError("floats are not allowed")
    if kind is not tuple and kind is not dict:
        return
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth >= max_depth:
            raise CodecError(f"value nested deeper than {max_depth}")
        if type(item) is dict:
            previous = None
            for key in item:
                if type(key) is not str:
                    raise CodecError("map key is not a string")
                # Python orders str by code point, which is also the order of their UTF-8 bytes.
                if previous is not None and previous >= key:
                    raise CodecError("map keys are not sorted and unique")
                previous = key
            children = item.values()
        else:
            children = item
        for child in children:
            kind = type(child)
            if kind is tuple or kind is dict:
                stack.append((child, depth + 1))
            elif kind is float:
                raise CodecError("floats are not allowed")


def decode(
    data: bytes,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
) -> Any:
    """Decode one canonical value. Arrays come back as tuples, maps as dicts with str keys.

    `max_items` caps every array and map, checked by msgpack as it reads each header: a message
    of millions of tiny items is refused before it costs any time. Canonical form is checked by
    encoding the value again and comparing: that catches non-minimal integers and lengths,
    duplicate map keys and trailing bytes in one step."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecLimitError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    if len(data) == 0:
        raise CodecError("empty message")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            max_array_len=max_items,
            max_map_len=max_items,
        )
    except CodecError:
        raise
    except ValueError as exc:
        if "exceeds max_" in str(exc):
            raise CodecLimitError(f"more than {max_items} items: {exc}") from None
        raise CodecError(f"not msgpack: ValueError: {exc}") from None
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise CodecError(f"not msgpack: {type(exc).__name__}: {exc}") from None
    _check_decoded(value, max_depth)
    try:
        again = _PACKERS.pack(value)
    except Exception as exc:
        raise CodecError(f"cannot re-encode: {exc}") from None
    if again != data:
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
