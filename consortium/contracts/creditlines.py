"""Tranche credit lines: a bank's line for a borrower, paid out one tranche at a time.

`creditline.open` writes the conditions into the line (tranche amounts and terms, the lowest
score, the interest) and pays out the first tranche at once; it is refused while the borrower's
score is below the threshold. After that the bank does nothing: the repayment that pays off a tranche's loan decides
on the next tranche in the same transaction. It is RELEASED (a new loan, the money moved from the
bank) only if that loan was paid off by its due day and the borrower's score, with this repayment
counted, is at or above the threshold (and the bank can pay it: not frozen, enough money; and the
borrower is not frozen); otherwise it is REFUSED with every failed condition as the reason, the
line is BLOCKED, and no later tranche is ever paid out. The repayment itself always stands. A
tranche is decided once: its entry leaves PENDING for good. A loan recovered by an agency or
written off counts as not repaid on time.
"""

from __future__ import annotations

from typing import Any

from consortium.contracts import records, scoring
from consortium.contracts.args import MAX_AMOUNT, MAX_DAY, Args
from consortium.contracts.clock import business_day
from consortium.contracts.context import RuleViolation, StateView, TxContext
from consortium.contracts.money import balance, move
from consortium.contracts.pricing import BASIS_POINTS
from consortium.contracts.records import (
    BLOCKED,
    DRAWING,
    DRAWN,
    PENDING,
    REFUSED,
    RELEASED,
    Loan,
    Tranche,
    TrancheLine,
)
from consortium.contracts.registry import Caller, member, require_role
from consortium.roles import Role

MAX_TRANCHES = 12
MAX_TRANCHE_DAYS = 3650
MAX_RATE_BP = 5000
BORROWER_ROLES = (Role.SUPPLIER, Role.CORE_ENTERPRISE)


def tranche_loan_id(line_id: str, index: int) -> str:
    """The loan of tranche `index`: named after the line, so it needs no transaction id of its
    own and reads as `loan-<hex>-<n>` like any other loan."""
    return f"loan-{line_id.removeprefix('cl-')}-{index}"


def _store(view: StateView, line: TrancheLine) -> None:
    view.put(records.TRANCHE_LINE + line["id"], line)


def _decide(view: StateView, line: TrancheLine, today: int, failed: list[str]) -> dict[str, Any]:
    """Release the line's next tranche, or refuse it with `failed` and more conditions found
    here; store the line and return the decision for the transaction's result."""
    index = line["next"]
    tranche = line["tranches"][index]
    score = scoring.score_of(view, line["borrower"])
    if score < line["threshold"]:
        failed.append(f"score {score} is below the threshold {line['threshold']}")
    borrower = member(view, line["borrower"])
    if borrower is None or borrower["frozen"]:
        failed.append(f"borrower {line['borrower']} is frozen")
    bank = member(view, line["bank"])
    if bank is None or bank["frozen"]:
        failed.append(f"bank {line['bank']} is frozen")
    elif balance(view, line["bank"]) < tranche["amount"]:
        failed.append(f"bank {line['bank']} lacks the {tranche['amount']}")
    decided: Tranche
    if failed:
        reason = "; ".join(failed)
        decided = {**tranche, "state": REFUSED, "day": today, "score": score, "reason": reason}
        state = BLOCKED
    else:
        loan_id = tranche_loan_id(line["id"], index)
        if view.get(records.LOAN + loan_id) is not None:
            raise RuleViolation(f"id {loan_id} is taken")
        amount = tranche["amount"]
        interest = amount * line["rate_bp"] // BASIS_POINTS
        due_day = min(MAX_DAY, today + tranche["due_days"])
        move(view, line["bank"], line["borrower"], amount)
        view.put(
            records.LOAN + loan_id,
            records.make_loan(
                loan_id,
                line["bank"],
                line["borrower"],
                amount,
                amount + interest,
                due_day,
                line=line["id"],
            ),
        )
        decided = {**tranche, "state": RELEASED, "loan": loan_id, "day": today, "score": score}
        state = DRAWN if index + 1 == len(line["tranches"]) else DRAWING
    tranches = (*line["tranches"][:index], decided, *line["tranches"][index + 1 :])
    _store(view, {**line, "tranches": tranches, "next": index + 1, "state": state})
    result: dict[str, Any] = {
        "line": line["id"],
        "tranche": index,
        "tranche_state": decided["state"],
        "score": score,
    }
    if decided["state"] == RELEASED:
        result["tranche_loan"] = decided["loan"]
    else:
        result["reason"] = decided["reason"]
    return result


def open_line(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """The bank opens a line and the first tranche is decided at once (on the score alone)."""
    require_role(who, Role.BANK)
    borrower = args.member("borrower")
    amounts = args.integers("amounts", MAX_TRANCHES, 1, MAX_AMOUNT)
    due_days = args.integers("due_days", MAX_TRANCHES, 1, MAX_TRANCHE_DAYS)
    threshold = args.integer("threshold", scoring.MIN_SCORE, scoring.MAX_SCORE)
    rate_bp = args.integer("rate_bp", 0, MAX_RATE_BP)
    if len(amounts) != len(due_days):
        raise RuleViolation(f"{len(amounts)} tranche amounts but {len(due_days)} due days")
    record = member(view, borrower)
    if record is None or record["role"] not in BORROWER_ROLES:
        raise RuleViolation(f"borrower {borrower} is not a supplier or core enterprise")
    if record["frozen"]:
        raise RuleViolation(f"borrower {borrower} is frozen")
    line_id = records.new_id(view, records.TRANCHE_LINE, "cl", ctx.tx_id)
    today = business_day(view)
    score = scoring.score_of(view, borrower)
    if score < threshold:
        raise RuleViolation(f"score {score} of {borrower} is below the threshold {threshold}")
    if balance(view, who.id) < amounts[0]:
        raise RuleViolation(f"{who.id} has {balance(view, who.id)}, needs {amounts[0]}")
    tranches = tuple(
        Tranche(amount=a, due_days=d, state=PENDING, loan=None, day=None, score=None, reason=None)
        for a, d in zip(amounts, due_days, strict=True)
    )
    line: TrancheLine = {
        "id": line_id,
        "bank": who.id,
        "borrower": borrower,
        "threshold": threshold,
        "rate_bp": rate_bp,
        "state": DRAWING,
        "tranches": tranches,
        "next": 0,
    }
    first = _decide(view, line, today, [])
    return {"line": line_id, "loan": first["tranche_loan"], "score": score}


def tranche_closed(view: StateView, loan: Loan, today: int, on_time: bool) -> dict[str, Any] | None:
    """`loan`, a tranche of its line, was just paid off or written off: decide on the next
    tranche, if the line has one still PENDING. Returns the decision (line, tranche index,
    tranche_state, the borrower's score, and tranche_loan or reason) for the transaction's
    result, or None."""
    line = records.tranche_line(view, loan["line"] or "")
    index = line["next"]
    if line["state"] != DRAWING or index >= len(line["tranches"]):
        return None
    if line["tranches"][index - 1]["loan"] != loan["id"]:
        return None
    failed = [] if on_time else [f"tranche {index - 1} was not repaid by day {loan['due_day']}"]
    return _decide(view, line, today, failed)
