"""Servicing an issued pool: a distribution per period on the business clock, and its report.

The bank, as servicer, runs a distribution once `period_days` have passed since the last one
(or the issue). The contract finds the loans that defaulted since (written off, or open more
than `default_days` past their due day), writes their outstanding principal off the tranches
most junior first, runs the waterfall over what the collection account holds, pays each holder,
and writes a servicing report record. The servicer may state the payments it expects per
tranche: an instruction that differs from the waterfall (a junior paid before the senior, any
tranche paid more or less) is refused with the breach named, so a servicer holding the junior
tranche cannot pay itself first. The distribution after which no loan of the pool is open is the
last: it pays out the account to the most junior tranche and retires the pool.
"""

from __future__ import annotations

from typing import Any

from consortium.contracts import records, waterfall
from consortium.contracts.args import MAX_AMOUNT, Args
from consortium.contracts.clock import business_day
from consortium.contracts.context import RuleViolation, StateView, TxContext
from consortium.contracts.loans import outstanding_principal
from consortium.contracts.money import balance, move
from consortium.contracts.pools import MAX_TRANCHES, pool_principal, store
from consortium.contracts.records import (
    ISSUED,
    OPEN_LOAN_STATES,
    RETIRED,
    WRITTEN_OFF,
    Pool,
    ServicingReport,
)
from consortium.contracts.registry import Caller, require_role
from consortium.roles import Role


def report_key(pool_id: str, number: int) -> str:
    return f"{records.SERVICING_REPORT}{pool_id}/{number:04d}"


def new_defaults(view: StateView, pool: Pool, today: int) -> tuple[tuple[str, ...], int]:
    """Loans of the pool defaulted since the last distribution, and their outstanding principal."""
    found = []
    loss = 0
    for loan_id in pool["loans"]:
        if loan_id in pool["defaulted"]:
            continue
        loan = records.loan(view, loan_id)
        late = today - loan["due_day"] > pool["default_days"]
        if loan["state"] == WRITTEN_OFF or (loan["state"] in OPEN_LOAN_STATES and late):
            found.append(loan_id)
            loss += outstanding_principal(loan)
    return tuple(found), loss


def is_last(view: StateView, pool: Pool) -> bool:
    return all(records.loan(view, i)["state"] not in OPEN_LOAN_STATES for i in pool["loans"])


def _check_instruction(
    instruction: tuple[int, ...], payments: tuple[waterfall.TranchePayment, ...]
) -> None:
    """Refuse a servicer's instruction unless it is the waterfall's, naming the first breach."""
    if len(instruction) != len(payments):
        raise RuleViolation(
            f"payments must list one amount for each of the {len(payments)} tranches"
        )
    planned = [p.paid for p in payments]
    for index, (wanted, due) in enumerate(zip(instruction, planned, strict=True)):
        if wanted == due:
            continue
        junior = next(
            (j for j in range(index + 1, len(planned)) if instruction[j] > planned[j]), None
        )
        name = payments[index].name
        if wanted < due and junior is not None:
            raise RuleViolation(
                f"tranche {payments[junior].name} cannot be paid before tranche {name}, which "
                f"the waterfall pays {due} first (the instruction gives it {wanted})"
            )
        raise RuleViolation(f"the waterfall pays tranche {name} {due}, not {wanted}")


def distribute(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """One period's distribution by the servicing bank, as the module describes; the result
    gives the report number and what each tranche was paid."""
    require_role(who, Role.BANK)
    pool = records.pool(view, args.object_id("pool"))
    instruction = args.optional_integers("payments", MAX_TRANCHES, 0, MAX_AMOUNT)
    if pool["bank"] != who.id:
        raise RuleViolation(f"pool {pool['id']} is serviced by {pool['bank']}, not {who.id}")
    if pool["state"] != ISSUED or pool["last_day"] is None:
        raise RuleViolation(f"pool {pool['id']} is {pool['state']}, not ISSUED")
    today = business_day(view)
    next_day = pool["last_day"] + pool["period_days"]
    if today < next_day:
        raise RuleViolation(f"the next distribution of pool {pool['id']} is on day {next_day}")
    defaults, loss = new_defaults(view, pool, today)
    final = is_last(view, pool)
    account = records.collection_account(pool["id"])
    available = balance(view, account)
    result = waterfall.distribute(
        pool["tranches"], available, today - pool["last_day"], loss, final
    )
    if instruction is not None:
        _check_instruction(instruction, result.payments)
    for payment in result.payments:
        for holder, amount in payment.payouts.items():
            move(view, account, holder, amount)
    number = pool["distributions"] + 1
    updated: Pool = {
        **pool,
        "carried": result.carried,
        "defaulted": (*pool["defaulted"], *defaults),
        "distributions": number,
        "last_day": today,
        "losses": pool["losses"] + loss,
        "state": RETIRED if final else ISSUED,
        "tranches": result.tranches,
    }
    store(view, updated)
    report: ServicingReport = {
        "available": available,
        "carried": result.carried,
        "collected": available - pool["carried"],
        "day": today,
        "defaults": defaults,
        "final": final,
        "loss": loss,
        "number": number,
        "paid": result.paid,
        "pool": pool["id"],
        "pool_principal": pool_principal(view, updated),
        "tranches": tuple(
            {
                "absorbed": p.absorbed,
                "interest": p.interest,
                "name": p.name,
                "outstanding": p.outstanding,
                "principal": p.principal,
                "reinstated": p.reinstated,
                "residual": p.residual,
            }
            for p in result.payments
        ),
    }
    view.put(report_key(pool["id"], number), report)
    return {
        "report": number,
        "paid": tuple(p.paid for p in result.payments),
        "loss": loss,
        "carried": result.carried,
        "final": final,
    }
