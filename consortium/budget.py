"""How much memory a node's caches may hold: one setting (`cache_mb` in nodes.yaml), shared out.

Everything a node keeps that grows with the chain lives on disk (blocks, receipts, the
transaction index, the state); what it keeps in memory are caches in front of the disk and memos
that save work, and each has a share of this budget. A node's resident memory is then the
interpreter and its libraries (about 60 MB), the blocks in flight, and at most this budget.

Sizes are estimates of the Python objects an entry holds (see `entry_cost`), measured for typical
records with `tracemalloc`; the total is what `bench consensus` checks as `rss_mb`.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CACHE_MB = 128
MIN_CACHE_MB = 16
MAX_CACHE_MB = 65_536

# Python's objects for a decoded msgpack value take about this many times its encoded size
# (dicts of short strings and small ints: a 150-byte receivable decodes to about 900 bytes).
DECODED_BYTES_PER_ENCODED = 6
# A cache entry's own overhead: the slots of the cache's dicts and its order list, and the tuple.
ENTRY_OVERHEAD_BYTES = 300
# A state entry's 2048-bit accumulator term as a Python int.
DIGEST_BYTES = 300


def entry_cost(key_bytes: int, encoded_bytes: int) -> int:
    """The approximate memory of a cached entry: its key, the encoded value, and the value decoded."""
    return ENTRY_OVERHEAD_BYTES + key_bytes + encoded_bytes * (1 + DECODED_BYTES_PER_ENCODED)


@dataclass(frozen=True, slots=True)
class CacheBudget:
    """The shares of one node's cache budget, in bytes."""

    total_bytes: int

    @classmethod
    def of_mb(cls, megabytes: int) -> CacheBudget:
        return cls(megabytes * 1024 * 1024)

    @property
    def store_pages(self) -> int:
        """SQLite's page cache: the B-tree pages a block's inserts touch stay in memory."""
        return self.total_bytes * 35 // 100

    @property
    def state(self) -> int:
        """Committed state entries recently read or written (`StoredState`)."""
        return self.total_bytes * 30 // 100

    @property
    def verified_txs(self) -> int:
        """Transactions whose signature verified, decoded (`VerifiedCache`): a block of
        transactions admitted to the mempool costs no signature check and no decoding."""
        return self.total_bytes * 20 // 100

    @property
    def wire(self) -> int:
        """Consensus messages decoded and verified (`WireCache`): duplicates and votes quoted
        again in view changes cost nothing."""
        return self.total_bytes * 10 // 100

    @property
    def admitted(self) -> int:
        """The nonces of transactions admitted lately, which answer "is it committed?" for
        a transaction still waiting without a read of the transaction index."""
        return self.total_bytes * 5 // 100
