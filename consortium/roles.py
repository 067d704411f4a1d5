"""The organisation roles of DOMAIN.md and the quorum arithmetic every layer agrees on."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    BANK = "bank"
    CORE_ENTERPRISE = "core_enterprise"
    COLLECTION_AGENCY = "collection_agency"
    REGULATOR = "regulator"
    SUPPLIER = "supplier"
    WAREHOUSE = "warehouse"
    ARRANGER = "arranger"
    RATING_AGENCY = "rating_agency"
    INVESTOR = "investor"


ROLES = frozenset(r.value for r in Role)


def max_faulty(n: int) -> int:
    """f: the number of byzantine nodes `n` replicas tolerate."""
    return (n - 1) // 3


def quorum_size(n: int) -> int:
    """Smallest q with any two quorums sharing f+1 nodes (2q - n >= f + 1); 2f+1 when n = 3f+1."""
    f = max_faulty(n)
    return (n + f + 2) // 2
