"""Credit assessment: a member's score as a pure integer function of its on-chain history.

The contracts keep the history as counters in one `cfac/<member>` record, bumped by the operation
where the event happens (confirm, the repayment that closes a loan, mark_overdue, write_off,
collection.publish, warehouse.liquidate), so a score costs no scan of the ledger and everyone
entitled sees every factor behind it. The formula (all integer arithmetic):

    score = 500                                   a member without history
          + min(100, 5 * confirmed)               receivables its debtors confirmed
          + min(200, confirmed_amount // 50_000)  ... and their volume
          + min(300, 40 * on_time)                loans repaid in full by their due day
          - 80 * late                             loans paid off after their due day
          - min(300, 2 * days_late)               days past due at those closings
          - 50 * overdue                          loans marked overdue
          - 120 * collection                      collection cases opened against it
          - 200 * written_off                     loans written off
          - 150 * liquidated                      warehouse receipts liquidated on default
    clamped to [0, 1000]

Good behaviour earns points up to a cap, so volume alone cannot buy a high score; bad behaviour
costs without a cap (except days late, which `late` already counts once per loan).
"""

from __future__ import annotations

from typing import Any

from consortium.contracts import records
from consortium.contracts.context import StateView
from consortium.contracts.records import CreditFactors

BASE_SCORE = 500
MIN_SCORE = 0
MAX_SCORE = 1000
FACTORS: tuple[str, ...] = tuple(CreditFactors.__annotations__)
# Keys in canonical (sorted) order: the state encodes the record without re-sorting it.
NO_HISTORY: CreditFactors = {
    "collection": 0,
    "confirmed": 0,
    "confirmed_amount": 0,
    "days_late": 0,
    "late": 0,
    "liquidated": 0,
    "on_time": 0,
    "overdue": 0,
    "written_off": 0,
}


def credit_score(f: CreditFactors) -> int:
    """The score of the module docstring; depends on nothing but `f`."""
    score = (
        BASE_SCORE
        + min(100, 5 * f["confirmed"])
        + min(200, f["confirmed_amount"] // 50_000)
        + min(300, 40 * f["on_time"])
        - 80 * f["late"]
        - min(300, 2 * f["days_late"])
        - 50 * f["overdue"]
        - 120 * f["collection"]
        - 200 * f["written_off"]
        - 150 * f["liquidated"]
    )
    return max(MIN_SCORE, min(MAX_SCORE, score))


def factors(view: StateView, member_id: str) -> CreditFactors:
    found: CreditFactors | None = view.get(records.CREDIT_FACTORS + member_id)
    return NO_HISTORY.copy() if found is None else found


def record(view: StateView, member_id: str, **increments: int) -> CreditFactors:
    """Add `increments` to the member's factors: one read and one write."""
    key = records.CREDIT_FACTORS + member_id
    current: CreditFactors = view.get(key) or NO_HISTORY
    updated: Any = {**current}
    for name, amount in increments.items():
        updated[name] += amount
    view.put(key, updated)
    return updated


def score_of(view: StateView, member_id: str) -> int:
    return credit_score(factors(view, member_id))


def credit_report(view: StateView, member_id: str) -> dict[str, Any]:
    """Every factor of the member's score and the score itself."""
    found = factors(view, member_id)
    return {"member": member_id, "factors": dict(found), "score": credit_score(found)}
