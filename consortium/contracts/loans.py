"""Loans: a bank lends from its balance, plainly or against a receivable pledged to it.

ACTIVE -> REPAID, or OVERDUE (marked by the bank after the due day) -> COLLECTION (a task is
open) -> RECOVERED (agencies collected the rest) or back to OVERDUE -> WRITTEN_OFF.
Any repayment while a collection task is open stops that task at once: agencies must not chase a
debtor who is paying, and no commission is ever due on repaid money.
"""

from __future__ import annotations

from consortium.contracts import records
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


def receive(view: StateView, loan: Loan, amount: int, by_agency: bool) -> Loan:
    """Book `amount` (0 < amount <= outstanding) paid towards `loan` and store the new record.

    A payment by the debtor (not `by_agency`) stops the open collection task. Paying the loan off
    closes it as REPAID, or RECOVERED when an agency collected the last part.
    """
    task_id = loan["task"]
    state = loan["state"]
    if not by_agency and task_id is not None:
        task = records.task(view, task_id)
        if task["state"] in OPEN_TASK_STATES:
            view.put(records.TASK + task_id, {**task, "state": STOPPED})
        task_id = None
    repaid = loan["repaid"] + amount
    if repaid == loan["amount_due"]:
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
    return updated


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
    loan: Loan = {
        "id": loan_id,
        "bank": who.id,
        "borrower": borrower,
        "principal": principal,
        "amount_due": amount_due,
        "repaid": 0,
        "recovered": 0,
        "due_day": due_day,
        "state": ACTIVE,
        "receivable": receivable_id,
        "task": None,
    }
    view.put(records.LOAN + loan_id, loan)
    return {"loan": loan_id}


def repay(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, str]:
    """The borrower pays the bank, in full or in part."""
    loan = _open_loan(view, args)
    if loan["borrower"] != who.id:
        raise RuleViolation(f"loan {loan['id']} is owed by {loan['borrower']}, not {who.id}")
    amount = _payment(args, loan)
    move(view, who.id, loan["bank"], amount)
    return {"state": receive(view, loan, amount, by_agency=False)["state"]}


def record_repayment(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, str]:
    """The bank records a repayment it received off the chain: no balance moves, but the loan
    and any collection task react exactly as to an on-chain repayment."""
    require_role(who, Role.BANK)
    loan = _open_loan(view, args)
    _own_loan(view, who, loan)
    amount = _payment(args, loan)
    return {"state": receive(view, loan, amount, by_agency=False)["state"]}


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


def write_off(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    """Give up an overdue loan. Not while a collection task is open (settle it first) nor while
    its pledged receivable is unpaid: the collateral comes first."""
    require_role(who, Role.BANK)
    loan = records.loan(view, args.object_id("loan"))
    _own_loan(view, who, loan)
    if loan["state"] != OVERDUE:
        raise RuleViolation(f"loan {loan['id']} is {loan['state']}, not OVERDUE")
    if loan["receivable"] is not None:
        rcv = records.receivable(view, loan["receivable"])
        if rcv["state"] == PLEDGED:
            raise RuleViolation(f"receivable {rcv['id']} pledged for this loan is not settled")
    view.put(records.LOAN + loan["id"], {**loan, "state": WRITTEN_OFF})
