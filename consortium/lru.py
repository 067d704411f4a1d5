"""A least-recently-used map bounded by the sizes its entries declare, for the node's hot caches.

`cachetools.LRUCache` does this too, but a hit there goes through four Python calls; here it is
one method call doing a lookup and a `move_to_end` of an `OrderedDict` (both in C). Measured per
hit on 50,000 keys: 0.43 µs here, 1.05 µs with cachetools, 0.14 µs for a plain dict; the caches
are read several times per transaction (see `consortium.budget`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SizedLRU(Generic[K, V]):
    """At most `max_bytes` of entries by their declared sizes; the least recently used go first.
    An entry larger than the whole budget is not kept."""

    __slots__ = ("_entries", "_move_to_end", "_sizes", "current_bytes", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self.current_bytes = 0
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._sizes: dict[K, int] = {}
        self._move_to_end = self._entries.move_to_end

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._move_to_end(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: K, value: V, size: int) -> None:
        """Remember `value` (never None) as the most recently used."""
        if size > self.max_bytes:
            self.discard(key)
            return
        old = self._sizes.get(key)
        if old is not None:
            self.current_bytes -= old
        self._entries[key] = value
        self._move_to_end(key)
        self._sizes[key] = size
        self.current_bytes += size
        entries, sizes = self._entries, self._sizes
        while self.current_bytes > self.max_bytes:
            oldest, _ = entries.popitem(last=False)
            self.current_bytes -= sizes.pop(oldest)

    def discard(self, key: K) -> None:
        if self._entries.pop(key, None) is not None:
            self.current_bytes -= self._sizes.pop(key)

    def keys(self) -> list[K]:
        """Oldest first."""
        return list(self._entries)
