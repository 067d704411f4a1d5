"""The committed state of a running node: on disk, read through a cache with a byte budget.

A node's state grows with its history (a receivable per financing, a loan per loan), so holding
it in memory would make the node's memory grow with the chain. Here the store's state table is
the committed state; reads go through an LRU cache of recently read or written entries, and a
miss (including "absent", cached too) reads the table. The store writes a block's state changes in
the same SQLite transaction as the block and before the block counts as committed (`Ledger`), so
`fold` only has to refresh the cache.

The state root needs each overwritten entry's accumulator term: a cached entry written by a
block keeps the term the block computed, and any other is hashed again from its encoded value
(kept in the cache next to the decoded one, or read from the table), rather than held in memory
for every entry. The accumulator itself is stored with every block, so
opening a store costs no pass over the state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from consortium import codec
from consortium.budget import DIGEST_BYTES, entry_cost
from consortium.errors import CodecError
from consortium.ledger.state import ACCUMULATOR_MASK, Layer, entry_digest, root_of
from consortium.lru import SizedLRU

# (decoded value, encoded value, accumulator term if known); all None for a key known absent.
_Entry = tuple[Any, bytes | None, int | None]
_ABSENT: _Entry = (None, None, None)


class StateTable(Protocol):
    """What the state needs of the store (`consortium.ledger.store.Store`)."""

    def state_value(self, key: str) -> bytes | None: ...

    def state_values(self, keys: Sequence[str]) -> dict[str, bytes]: ...

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
    digest = 0 if entry[2] is None else DIGEST_BYTES
    return entry_cost(len(key), 0 if encoded is None else len(encoded)) + digest


class StoredState:
    """The committed state as `State` offers it (`get`, `digest_of`, `keys_with_prefix`, `fold`,
    `accumulator`, `root`), backed by the store's table."""

    __slots__ = ("_cache", "_cached", "_table", "accumulator")

    def __init__(self, table: StateTable, accumulator: int, cache_bytes: int) -> None:
        self._table = table
        self.accumulator = accumulator
        self._cache: SizedLRU[str, _Entry] = SizedLRU(cache_bytes)
        self._cached = self._cache.get  # bound once: reads run several times per transaction

    @property
    def root(self) -> bytes:
        return root_of(self.accumulator)

    @property
    def cached_bytes(self) -> int:
        return self._cache.current_bytes

    def _load(self, key: str) -> _Entry:
        return self._remember(key, self._table.state_value(key))

    def _remember(self, key: str, encoded: bytes | None) -> _Entry:
        if encoded is None:
            entry = _ABSENT
        else:
            try:
                entry = (codec.decode(encoded), encoded, None)
            except CodecError as exc:
                raise DamagedStateEntry(f"state entry {key!r} is damaged: {exc}") from None
        self._cache.put(key, entry, _cost(key, entry))
        return entry

    def prefetch(self, keys: Iterable[str]) -> None:
        """Cache the entries of `keys` not cached yet (absent ones as absent), read from the
        table in one pass: a block about to check that the ids it creates are free then finds
        each answer in the cache instead of paying a table lookup per key."""
        cache = self._cache
        missing = sorted({key for key in keys if key not in cache})
        if not missing:
            return
        found = self._table.state_values(missing)
        for key in missing:
            self._remember(key, found.get(key))

    def get(self, key: str) -> Any | None:
        entry = self._cached(key)
        return (entry if entry is not None else self._load(key))[0]

    def digest_of(self, key: str) -> int | None:
        entry = self._cached(key)
        _, encoded, digest = entry if entry is not None else self._load(key)
        if digest is None and encoded is not None:
            digest = entry_digest(key, encoded)
        return digest

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
        encoded, digests, put = layer.encoded, layer.digests, self._cache.put
        for key, value in layer.values.items():
            entry = _ABSENT if value is None else (value, encoded[key], digests[key])
            put(key, entry, _cost(key, entry))
        self.accumulator = layer.accumulator
