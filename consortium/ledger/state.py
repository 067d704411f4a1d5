"""The replicated state: a key-value map with an incremental state root, and scratch overlays.

State root: an additive multiset hash (in the manner of LtHash). Every entry (key, value) maps to a
2048-bit number by SHAKE-256 of its canonical encoding; the accumulator is their sum modulo 2**2048
and the root is SHA-256 of the accumulator. Writing a key subtracts the old entry's number and adds
the new one, so a block costs one hash per written key, never a rehash of the whole state, and the
root depends only on the state's content (not on history), which is what state transfer needs.

Values are codec-encodable (None, bool, int, str, bytes, tuple/list, dict with str keys). Readers
must treat returned values as immutable: to change a record, `put` a new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from consortium import codec

_ACC_BITS = 2048
_ACC_BYTES = _ACC_BITS // 8
_ACC_MASK = (1 << _ACC_BITS) - 1
_DELETED = object()


def entry_digest(key: str, value_bytes: bytes) -> int:
    """The accumulator term of one entry: SHAKE-256 of (key, value) as a 2048-bit integer."""
    data = codec.encode_flat((key, value_bytes))
    return int.from_bytes(hashlib.shake_256(data).digest(_ACC_BYTES), "little")


def root_of(accumulator: int) -> bytes:
    return hashlib.sha256(accumulator.to_bytes(_ACC_BYTES, "little")).digest()


class State:
    """Committed state: values, their encodings' digests, and the running accumulator."""

    __slots__ = ("_accumulator", "_digests", "_values")

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._digests: dict[str, int] = {}
        self._accumulator = 0

    @property
    def root(self) -> bytes:
        return root_of(self._accumulator)

    def get(self, key: str) -> Any | None:
        return self._values.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def keys_with_prefix(self, prefix: str) -> list[str]:
        return sorted(k for k in self._values if k.startswith(prefix))

    def items(self) -> Iterator[tuple[str, Any]]:
        """All entries in key order (for snapshots and state transfer)."""
        for key in sorted(self._values):
            yield key, self._values[key]

    def root_after(self, writes: dict[str, Any]) -> tuple[bytes, dict[str, tuple[Any, int]]]:
        """The root the state would have after `writes` (value None deletes), and the prepared
        entries that `apply_prepared` installs without hashing again."""
        acc = self._accumulator
        prepared: dict[str, tuple[Any, int]] = {}
        for key, value in writes.items():
            old = self._digests.get(key)
            if old is not None:
                acc -= old
            if value is None:
                prepared[key] = (None, 0)
                continue
            digest = entry_digest(key, codec.encode(value))
            acc += digest
            prepared[key] = (value, digest)
        return root_of(acc & _ACC_MASK), prepared

    def apply_prepared(self, prepared: dict[str, tuple[Any, int]]) -> None:
        acc = self._accumulator
        for key, (value, digest) in prepared.items():
            old = self._digests.pop(key, None)
            if old is not None:
                acc -= old
                del self._values[key]
            if value is not None:
                self._values[key] = value
                self._digests[key] = digest
                acc += digest
        self._accumulator = acc & _ACC_MASK

    def apply(self, writes: dict[str, Any]) -> bytes:
        """Install `writes` and return the new root."""
        _, prepared = self.root_after(writes)
        self.apply_prepared(prepared)
        return self.root

    @staticmethod
    def from_items(items: Iterable[tuple[str, Any]]) -> State:
        state = State()
        state.apply(dict(items))
        return state


class Overlay:
    """A scratch view over a `State` (or another overlay): reads fall through, writes stay here
    until `merge_into` or until the overlay is dropped. A failed transaction's overlay is dropped,
    so it changes nothing."""

    __slots__ = ("_base", "writes")

    def __init__(self, base: State | Overlay) -> None:
        self._base = base
        self.writes: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        value = self.writes.get(key, _DELETED)
        if value is _DELETED:
            return self._base.get(key)
        return value

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, value: Any) -> None:
        """Write a value; `None` deletes the key."""
        self.writes[key] = value

    def delete(self, key: str) -> None:
        self.writes[key] = None

    def keys_with_prefix(self, prefix: str) -> list[str]:
        keys = set(self._base.keys_with_prefix(prefix))
        for key, value in self.writes.items():
            if key.startswith(prefix):
                if value is None:
                    keys.discard(key)
                else:
                    keys.add(key)
        return sorted(keys)

    def merge_into(self, target: Overlay) -> None:
        target.writes.update(self.writes)
