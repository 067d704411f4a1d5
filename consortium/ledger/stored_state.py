"""The committed state of a running node: on disk, read through a cache with a byte budget.

A node's state grows with its history (a receivable per financing, a loan per loan), so holding
it in memory would make the node's memory grow with the chain. Here the store's state table is
the committed state; reads go through an LRU cache of recently read or written entries, and a
miss (including "absent", cached too) reads the table. The store writes a block's state changes in
the same SQLite transaction as the block and before the block counts as committed (`Ledger`), so
`fold` only has to refresh the cache.

The state root needs each overwritten entry's accumulator term: it is hashed again from the
entry's encoded value (kept in the cache next to the decoded one, or read from the table) rather
than held in memory for every entry. The accumulator itself is stored with every block, so
opening a store costs no pass over the state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from cachetools import LRUCache

from consortium import codec
from consortium.budget import entry_cost
from consortium.errors import CodecError
from consortium.ledger.state import ACCUMULATOR_MASK, Layer, entry_digest, root_of

# (decoded value, encoded value); both None for a key known to be absent.
_Entry = tuple[Any, bytes | None]
_ABSENT: _Entry = (None, None)
# What the cache holds: the entry and its estimated size in memory.
_Cached = tuple[Any, bytes | None, int]


class StateTable(Protocol):
    """What the state needs of the store (`consortium.ledger.store.Store`)."""

    def state_value(self, key: str) -> bytes | None: ...

    def state_keys_with_prefix(self, prefix: str) -> list[str]: ...

    def state_rows(self) -> Iterator[tuple[str, bytes]]: ...


class DamagedStateEntry(CodecError):
    """A stored state entry that does not decode: the store file is damaged."""


def accumulate(rows: Iterator[tuple[str, bytes]]) -> int:
    """The accumulator of a whole state from its encoded entries, one pass, nothing kept."""
    total = 0
    for key, encoded in rows:
        total += entry_digest(key, encoded)
    return total & ACCUMULATOR_MASK


def _cost(key: str, entry: _Entry) -> int:
    encoded = entry[1]
    return entry_cost(len(key), 0 if encoded is None else len(encoded))


def _cached_size(cached: _Cached) -> int:
    return cached[2]


class StoredState:
    """The committed state as `State` offers it (`get`, `digest_of`, `keys_with_prefix`, `fold`,
    `accumulator`, `root`), backed by the store's table."""

    __slots__ = ("_cache", "_table", "accumulator")

    def __init__(self, table: StateTable, accumulator: int, cache_bytes: int) -> None:
        self._table = table
        self.accumulator = accumulator
        self._cache: LRUCache[str, _Cached] = LRUCache(
            maxsize=max(1, cache_bytes), getsizeof=_cached_size
        )

    @property
    def root(self) -> bytes:
        return root_of(self.accumulator)

    @property
    def cached_bytes(self) -> int:
        return int(self._cache.currsize)

    def _entry(self, key: str) -> _Entry:
        cached = self._cache.get(key)
        if cached is not None:
            return cached[0], cached[1]
        encoded = self._table.state_value(key)
        if encoded is None:
            entry = _ABSENT
        else:
            try:
                entry = (codec.decode(encoded), encoded)
            except CodecError as exc:
                raise DamagedStateEntry(f"state entry {key!r} is damaged: {exc}") from None
        self._remember(key, entry)
        return entry

    def _remember(self, key: str, entry: _Entry) -> None:
        cost = _cost(key, entry)
        if cost <= self._cache.maxsize:
            self._cache[key] = (entry[0], entry[1], cost)

    def get(self, key: str) -> Any | None:
        return self._entry(key)[0]

    def digest_of(self, key: str) -> int | None:
        encoded = self._entry(key)[1]
        return None if encoded is None else entry_digest(key, encoded)

    def keys_with_prefix(self, prefix: str) -> list[str]:
        return self._table.state_keys_with_prefix(prefix)

    def items(self) -> Iterator[tuple[str, Any]]:
        """All entries in key order, decoded as they are read (not cached)."""
        for key, encoded in self._table.state_rows():
            try:
                yield key, codec.decode(encoded)
            except CodecError as exc:
                raise DamagedStateEntry(f"state entry {key!r} is damaged: {exc}") from None

    def fold(self, layer: Layer) -> None:
        """`layer` (built on this state) is committed: the store holds its writes already."""
        if layer.base is not self:
            raise ValueError("a layer folds only into the state it was built on")
        encoded = layer.encoded
        for key, value in layer.values.items():
            self._remember(key, _ABSENT if value is None else (value, encoded[key]))
        self.accumulator = layer.accumulator
