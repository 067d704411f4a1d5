"""The pricing model of debt collection: the ceiling of the commission a bank offers agencies.

A pure integer function of the outstanding amount and the days overdue, in basis points of the
amount recovered (10000 bp = 100%):

    base by how long the debt is overdue     1-30 days: 1000   31-60: 1500   61-90: 2000   >90: 3000
    size adjustment (fixed costs weigh more  outstanding < 100,000: +500
    on small debts)                          outstanding >= 10,000,000: -300   otherwise: 0
    ceiling = base + adjustment, clamped to [MIN_CEILING_BP, MAX_CEILING_BP]

Older debts are harder to collect, so agencies may ask for more. The same tiers group overdue
loans in the regulator's audit.
"""

from __future__ import annotations

BASIS_POINTS = 10_000
TIER_LIMITS: tuple[tuple[int, str, int], ...] = (
    (30, "1-30", 1000),
    (60, "31-60", 1500),
    (90, "61-90", 2000),
)
LAST_TIER = (">90", 3000)
TIER_NAMES: tuple[str, ...] = (*(name for _, name, _ in TIER_LIMITS), LAST_TIER[0])
SMALL_DEBT = 100_000
SMALL_DEBT_SURCHARGE_BP = 500
LARGE_DEBT = 10_000_000
LARGE_DEBT_DISCOUNT_BP = 300
MIN_CEILING_BP = 100
MAX_CEILING_BP = 5000


def overdue_tier(days_overdue: int) -> str:
    """The tier name of a debt `days_overdue` (>= 1) days past due."""
    for limit, name, _ in TIER_LIMITS:
        if days_overdue <= limit:
            return name
    return LAST_TIER[0]


def commission_ceiling_bp(outstanding: int, days_overdue: int) -> int:
    base = LAST_TIER[1]
    for limit, _, tier_bp in TIER_LIMITS:
        if days_overdue <= limit:
            base = tier_bp
            break
    if outstanding < SMALL_DEBT:
        base += SMALL_DEBT_SURCHARGE_BP
    elif outstanding >= LARGE_DEBT:
        base -= LARGE_DEBT_DISCOUNT_BP
    return max(MIN_CEILING_BP, min(MAX_CEILING_BP, base))


def commission(rate_bp: int, recovered: int) -> int:
    """The agency's commission: rate x recovered, rounded down to the smallest currency unit
    (the fraction of a unit stays with the bank), so it never exceeds the agreed rate."""
    return rate_bp * recovered // BASIS_POINTS
