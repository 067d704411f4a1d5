"""Signature checking for transactions: each signature verified once per node.

`VerifiedCache` remembers the raw bytes of transactions whose signature already verified (at
mempool admission, or in an earlier block) together with the key that verified them, and the
signatures carried inside transactions (a debtor's confirmation, an owner's consent) that
verified, so a block of known transactions costs no signature checks. `BatchVerifier` is how the
unknown ones are checked: serially here, or spread over all cores by
`consortium.parallel.PoolVerifier`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from consortium.budget import DEFAULT_CACHE_MB, CacheBudget, entry_cost
from consortium.crypto import verify
from consortium.ledger.tx import TX_DOMAIN, SignedTransaction
from consortium.lru import SizedLRU

VerifyJob = tuple[bytes, bytes, bytes]  # (public key, message, signature)


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
    return [verify(pk, message, sig) for pk, message, sig in jobs]


def transaction_job(stx: SignedTransaction, public_key: bytes) -> VerifyJob:
    return (public_key, TX_DOMAIN + stx.tx_id, stx.signature)


def _claim_size(claim: VerifyJob) -> int:
    return entry_cost(sum(map(len, claim)), 0)


class VerifiedCache:
    """Raw transaction bytes -> (decoded transaction, the public key its signature verified under),
    and the (key, message, signature) claims carried inside transactions that verified; each
    kept while recently used, within `budget_bytes` (most of it for transactions)."""

    __slots__ = ("_claims", "_entries", "_forged")

    def __init__(
        self, budget_bytes: int = CacheBudget.of_mb(DEFAULT_CACHE_MB).verified_txs
    ) -> None:
        self._entries: SizedLRU[bytes, tuple[SignedTransaction, bytes]] = SizedLRU(
            budget_bytes * 80 // 100
        )
        self._claims: SizedLRU[VerifyJob, bool] = SizedLRU(budget_bytes * 15 // 100)
        # Claims that did not verify: remembered too, so that a forged confirmation resubmitted
        # again and again costs one verification, not one per block it appears in.
        self._forged: SizedLRU[VerifyJob, bool] = SizedLRU(budget_bytes * 5 // 100)

    def remember_claim(self, claim: VerifyJob, verified: bool = True) -> None:
        """Record a claim's verdict (a pure function of the claim, so it never goes stale)."""
        (self._claims if verified else self._forged).put(claim, True, _claim_size(claim))

    def knows_claim(self, claim: VerifyJob) -> bool:
        """True if the claim verified before."""
        return claim in self._claims

    def knows_forged(self, claim: VerifyJob) -> bool:
        """True if the claim failed verification before."""
        return claim in self._forged

    def check_signature(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """ed25519 verification that looks up the verdicts found before (same verdict)."""
        claim = (public_key, message, signature)
        if claim in self._claims:
            return True
        if claim in self._forged:
            return False
        verified = verify(public_key, message, signature)
        self.remember_claim(claim, verified)
        return verified

    def get(self, raw: bytes) -> tuple[SignedTransaction, bytes] | None:
        return self._entries.get(raw)

    def add(self, stx: SignedTransaction, public_key: bytes) -> None:
        # The raw bytes are the key and the transaction's own: counted once.
        self._entries.put(stx.raw, (stx, public_key), entry_cost(0, len(stx.raw)))

    def __len__(self) -> int:
        return len(self._entries)
