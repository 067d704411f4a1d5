"""Credit lines: how much a core enterprise may have confirmed and not yet paid.

The line caps the face value of the core's open confirmed receivables (`used`); splitting keeps
`used` as it is (the children sum to the parent), settlement gives the room back.
"""

from __future__ import annotations

from consortium.contracts import records
from consortium.contracts.args import MAX_AMOUNT, Args
from consortium.contracts.context import RuleViolation, StateView, TxContext
from consortium.contracts.records import CreditLine
from consortium.contracts.registry import Caller, member_of_role, require_role
from consortium.roles import Role


def credit_line(view: StateView, core: str) -> CreditLine:
    return view.get(records.CREDIT + core) or {"limit": 0, "used": 0}


def take(view: StateView, core: str, amount: int) -> None:
    line = credit_line(view, core)
    used = line["used"] + amount
    if used > line["limit"]:
        raise RuleViolation(
            f"credit line of {core} exceeded: {line['used']} of {line['limit']} used, "
            f"confirming {amount} more"
        )
    view.put(records.CREDIT + core, {"limit": line["limit"], "used": used})


def give_back(view: StateView, core: str, amount: int) -> None:
    line = credit_line(view, core)
    view.put(records.CREDIT + core, {"limit": line["limit"], "used": line["used"] - amount})


def set_line(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    """The regulator sets a core enterprise's limit; lowering it below `used` only blocks new
    confirmations, it never undoes old ones."""
    require_role(who, Role.REGULATOR)
    core = args.member("member")
    limit = args.integer("limit", 0, MAX_AMOUNT)
    member_of_role(view, core, Role.CORE_ENTERPRISE, "credit line holder")
    line = credit_line(view, core)
    view.put(records.CREDIT + core, {"limit": limit, "used": line["used"]})
