"""Signature checking for transactions: each (transaction, signature) verified once per node.

`VerifiedCache` remembers the raw bytes of transactions whose signature already verified (at
mempool admission, or in an earlier block) together with the key that verified them, so a block
of known transactions costs no signature checks. `BatchVerifier` is how the unknown ones are
checked: serially here, or spread over all cores by `consortium.parallel.PoolVerifier`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from consortium.crypto import verify
from consortium.ledger.tx import TX_DOMAIN, SignedTransaction

VerifyJob = tuple[bytes, bytes, bytes]  # (public key, tx id, signature)


class BatchVerifier(Protocol):
    def start(self, jobs: Sequence[VerifyJob]) -> Callable[[], list[bool]]:
        """Begin verifying; the returned call blocks until every verdict is in."""
        ...

    def verify_many(self, jobs: Sequence[VerifyJob]) -> list[bool]: ...


class SerialVerifier:
    """Verify on the calling thread: the deterministic simulator and small batches use this."""

    def start(self, jobs: Sequence[VerifyJob]) -> Callable[[], list[bool]]:
        return lambda: verify_jobs(jobs)

    def verify_many(self, jobs: Sequence[VerifyJob]) -> list[bool]:
        return verify_jobs(jobs)


def verify_jobs(jobs: Sequence[VerifyJob]) -> list[bool]:
    return [verify(pk, TX_DOMAIN + tx_id, sig) for pk, tx_id, sig in jobs]


class VerifiedCache:
    """Raw transaction bytes -> (decoded transaction, the public key its signature verified under)."""

    __slots__ = ("_entries", "capacity")

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, tuple[SignedTransaction, bytes]] = OrderedDict()

    def get(self, raw: bytes) -> tuple[SignedTransaction, bytes] | None:
        return self._entries.get(raw)

    def add(self, stx: SignedTransaction, public_key: bytes) -> None:
        self._entries[stx.raw] = (stx, public_key)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
