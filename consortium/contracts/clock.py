"""The business clock: the day number every node agrees on, moved only by the regulator.

Maturities and overdue periods are counted in these days, never in a node's wall clock, so a
90-day maturity can pass in a one-minute demo and every replica sees the same day.
"""

from __future__ import annotations

from consortium.contracts import records
from consortium.contracts.args import MAX_DAY, Args
from consortium.contracts.context import RuleViolation, StateView, TxContext
from consortium.contracts.registry import Caller, require_role
from consortium.roles import Role

MAX_ADVANCE_DAYS = 3650


def business_day(view: StateView) -> int:
    return view.get(records.CLOCK) or 0


def advance(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, int]:
    require_role(who, Role.REGULATOR)
    days = args.integer("days", 1, MAX_ADVANCE_DAYS)
    today = business_day(view) + days
    if today > MAX_DAY:
        raise RuleViolation(f"the clock cannot pass day {MAX_DAY}")
    view.put(records.CLOCK, today)
    return {"day": today}
