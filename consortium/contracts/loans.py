"""Loans: a bank lends from its balance, plainly or against a receivable pledged to it.

ACTIVE -> REPAID, or OVERDUE (marked by the bank after the due day) -> COLLECTION (a task is
open) -> RECOVERED (agencies collected the rest) or back to OVERDUE -> WRITTEN_OFF.
Any repayment while a collection task is open stops that task at once: agencies must not chase a
debtor who is paying, and no commission is ever due on repaid money. Once a loan is pooled for
securitisation every repayment of it, on the chain or recorded from off it, goes to the pool's
collection account instead of the bank (`pay_in`).
The events that make a borrower's credit history are booked here as they happen: a loan paid off
(on time or late), marked overdue, written off; paying off a tranche of a credit line decides on
its next tranche in the same transaction.
"""

from __future__ import annotations

from typing import Any

from consortium.contracts import creditlines, records, scoring
from consortium.contracts.args import Args
from consortium.contracts.clock import business_day
from consortium.contracts.context import RuleViolation, StateView, TxContext
from consortium.contracts.money import move
from consortium.contracts.records import (
    ACTIVE,
    COLLECTION,
    OPEN_LOAN_STATES,
    OPEN_TASK_STATES,
    OVERDUE,
    PLEDGED,
    RECOVERED,
    RELEASED,
    REPAID,
    STOPPED,
    WRITTEN_OFF,
    Loan,
)
from consortium.contracts.registry import Caller, member, require_role
from consortium.roles import Role

BORROWER_ROLES = (Role.SUPPLIER, Role.CORE_ENTERPRISE)


def outstanding(loan: Loan) -> int:
    return loan["amount_due"] - loan["repaid"]


def outstanding_principal(loan: Loan) -> int:
    """What is still owed of the principal, repayments counting towards interest first."""
    return min(loan["principal"], outstanding(loan))


def pay_in(view: StateView, payer: str, loan: Loan, amount: int) -> None:
    """Move a repayment of `loan` from `payer` to whoever collects it: the bank, or the pool's
    collection account once the loan is pooled. A bank passing on what it received off the chain
    pays itself (nothing moves) unless the loan is pooled."""
    pool_id = view.get(records.POOLED + loan["id"])
    move(
        view,
        payer,
        loan["bank"] if pool_id is None else records.collection_account(pool_id),
        amount,
    )


def receive(view: StateView, loan: Loan, amount: int, by_agency: bool) -> Loan:
    """Book `amount` (0 < amount <= outstanding) paid towards `loan` and store the new record."""
    return book(view, loan, amount, by_agency)[0]


def book(
    view: StateView, loan: Loan, amount: int, by_agency: bool
) -> tuple[Loan, dict[str, Any] | None]:
    """Book `amount` (0 < amount <= outstanding) paid towards `loan` and store the new record.

    A payment by the debtor (not `by_agency`) stops the open collection task. Paying the loan off
    closes it as REPAID, or RECOVERED when an agency collected the last part, goes into the
    borrower's credit history, and, for a tranche, decides on the next one (returned second).
    """
    task_id = loan["task"]
    state = loan["state"]
    if not by_agency and task_id is not None:
        task = records.task(view, task_id)
        if task["state"] in OPEN_TASK_STATES:
            view.put(records.TASK + task_id, {**task, "state": STOPPED})
        task_id = None
    repaid = loan["repaid"] + amount
    closed = repaid == loan["amount_due"]
    if closed:
        state = RECOVERED if by_agency else REPAID
        task_id = None
    elif task_id is None and state == COLLECTION:
        state = OVERDUE
    updated: Loan = {
        **loan,
        "repaid": repaid,
        "recovered": loan["recovered"] + amount if by_agency else loan["recovered"],
        "state": state,
        "task": task_id,
    }
    view.put(records.LOAN + loan["id"], updated)
    if not closed:
        return updated, None
    today = business_day(view)
    late = today - loan["due_day"]
    if late <= 0:
        scoring.record(view, loan["borrower"], on_time=1)
    else:
        scoring.record(view, loan["borrower"], late=1, days_late=late)
    if loan["line"] is None:
        return updated, None
    return updated, creditlines.tranche_closed(view, updated, today, on_time=late <= 0)


def _open_loan(view: StateView, args: Args) -> Loan:
    loan = records.loan(view, args.object_id("loan"))
    if loan["state"] not in OPEN_LOAN_STATES:
        raise RuleViolation(f"loan {loan['id']} is {loan['state']}, not open")
    return loan


def _own_loan(view: StateView, who: Caller, loan: Loan) -> None:
    if loan["bank"] != who.id:
        raise RuleViolation(f"loan {loan['id']} was lent by {loan['bank']}, not {who.id}")


def _payment(args: Args, loan: Loan) -> int:
    amount = args.amount("amount")
    if amount > outstanding(loan):
        raise RuleViolation(f"{amount} exceeds the {outstanding(loan)} outstanding")
    return amount


def lend(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, str]:
    """Lend `principal` now against `amount_due` on `due_day`; against a pledged receivable the
    bank must hold its pledge, the borrower must hold the token, principal <= face value, and a
    pledge backs one loan only."""
    require_role(who, Role.BANK)
    borrower = args.member("borrower")
    principal = args.amount("principal")
    amount_due = args.amount("amount_due")
    due_day = args.day("due_day")
    receivable_id = args.optional_object_id("receivable")
    record = member(view, borrower)
    if record is None or record["role"] not in BORROWER_ROLES:
        raise RuleViolation(f"borrower {borrower} is not a supplier or core enterprise")
    if record["frozen"]:
        raise RuleViolation(f"borrower {borrower} is frozen")
    if amount_due < principal:
        raise RuleViolation(f"amount due {amount_due} is less than the principal {principal}")
    if due_day <= business_day(view):
        raise RuleViolation(f"due day {due_day} is not after today ({business_day(view)})")
    loan_id = records.new_id(view, records.LOAN, "loan", ctx.tx_id)
    if receivable_id is not None:
        rcv = records.receivable(view, receivable_id)
        if rcv["state"] != PLEDGED or rcv["pledgee"] != who.id:
            raise RuleViolation(f"receivable {receivable_id} is not pledged to {who.id}")
        if rcv["loan"] is not None:
            raise RuleViolation(f"receivable {receivable_id} already backs loan {rcv['loan']}")
        if rcv["holder"] != borrower:
            raise RuleViolation(f"receivable {receivable_id} is held by {rcv['holder']}")
        if principal > rcv["amount"]:
            raise RuleViolation(f"principal {principal} exceeds the face value {rcv['amount']}")
        view.put(records.RECEIVABLE + receivable_id, {**rcv, "loan": loan_id})
    move(view, who.id, borrower, principal)
    # Keys in canonical (sorted) order: the state encodes the record without re-sorting it.
    loan: Loan = {
        "amount_due": amount_due,
        "bank": who.id,
        "borrower": borrower,
        "due_day": due_day,
        "id": loan_id,
        "line": None,
        "principal": principal,
        "receipt": None,
        "receivable": receivable_id,
        "recovered": 0,
        "repaid": 0,
        "state": ACTIVE,
        "task": None,
    }
    view.put(records.LOAN + loan_id, loan)
    return {"loan": loan_id}


def _repaid(view: StateView, loan: Loan, amount: int) -> dict[str, Any]:
    """Book a repayment by the debtor; the result shows a tranche decision it caused."""
    updated, tranche = book(view, loan, amount, by_agency=False)
    return {"state": updated["state"], **(tranche or {})}


def repay(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """The borrower pays the bank, in full or in part."""
    loan = _open_loan(view, args)
    if loan["borrower"] != who.id:
        raise RuleViolation(f"loan {loan['id']} is owed by {loan['borrower']}, not {who.id}")
    amount = _payment(args, loan)
    pay_in(view, who.id, loan, amount)
    return _repaid(view, loan, amount)


def record_repayment(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """The bank records a repayment it received off the chain: no balance moves (unless the loan
    is pooled: then the bank passes the money on to the pool), but the loan and any collection
    task react exactly as to an on-chain repayment."""
    require_role(who, Role.BANK)
    loan = _open_loan(view, args)
    _own_loan(view, who, loan)
    amount = _payment(args, loan)
    pay_in(view, who.id, loan, amount)
    return _repaid(view, loan, amount)


def mark_overdue(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    require_role(who, Role.BANK)
    loan = records.loan(view, args.object_id("loan"))
    _own_loan(view, who, loan)
    if loan["state"] != ACTIVE:
        raise RuleViolation(f"loan {loan['id']} is {loan['state']}, not ACTIVE")
    today = business_day(view)
    if today <= loan["due_day"]:
        raise RuleViolation(f"loan {loan['id']} is due on day {loan['due_day']}, today is {today}")
    view.put(records.LOAN + loan["id"], {**loan, "state": OVERDUE})
    scoring.record(view, loan["borrower"], overdue=1)


def write_off(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any] | None:
    """Give up an overdue loan. Not while a collection task is open (settle it first) nor while
    its pledged receivable is unpaid or its pledged goods are still in the warehouse: the
    collateral comes first. A written-off tranche refuses the line's next tranche."""
    require_role(who, Role.BANK)
    loan = records.loan(view, args.object_id("loan"))
    _own_loan(view, who, loan)
    if loan["state"] != OVERDUE:
        raise RuleViolation(f"loan {loan['id']} is {loan['state']}, not OVERDUE")
    if loan["receivable"] is not None:
        rcv = records.receivable(view, loan["receivable"])
        if rcv["state"] == PLEDGED:
            raise RuleViolation(f"receivable {rcv['id']} pledged for this loan is not settled")
    if loan["receipt"] is not None:
        receipt = records.warehouse_receipt(view, loan["receipt"])
        if receipt["state"] in (PLEDGED, RELEASED) and receipt["released"] < receipt["quantity"]:
            raise RuleViolation(
                f"goods of warehouse receipt {receipt['id']} pledged for this loan are not "
                "released or liquidated"
            )
    view.put(records.LOAN + loan["id"], {**loan, "state": WRITTEN_OFF})
    today = business_day(view)
    scoring.record(view, loan["borrower"], written_off=1, days_late=max(0, today - loan["due_day"]))
    if loan["line"] is None:
        return None
    return creditlines.tranche_closed(view, loan, today, on_time=False)
