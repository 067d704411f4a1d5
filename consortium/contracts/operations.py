"""The table of operations and the one entry point that runs a transaction against it.

Every transaction goes through the same gate, in this order: a known operation, a sender that is
a member and not frozen, arguments with exactly the operation's names; then the operation's own
rules. Anything refused raises `RuleViolation`, and the caller drops the transaction's writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consortium.contracts import (
    clock,
    collection,
    credit,
    creditlines,
    issuance,
    loans,
    pools,
    receivables,
    records,
    registry,
    servicing,
    warehouse,
)
from consortium.contracts.args import Args, shown
from consortium.contracts.context import RuleViolation, SignatureClaim, StateView, TxContext
from consortium.contracts.registry import Caller

Handler = Callable[[StateView, TxContext, Caller, Args], Any]
Claim = Callable[[StateView, Args], SignatureClaim]


@dataclass(frozen=True, slots=True)
class Operation:
    handler: Handler
    params: frozenset[str]
    claim: Claim | None = None
    """For operations that carry a signature besides the transaction's: which one it checks."""
    creates: tuple[tuple[str, str], ...] = ()
    """(record prefix, kind) of each id it derives from the transaction id (`records.new_id`):
    a block's node reads whether those are taken in one pass before running it."""


def _op(
    handler: Handler,
    *params: str,
    claim: Claim | None = None,
    creates: tuple[tuple[str, str], ...] = (),
) -> Operation:
    return Operation(handler, frozenset(params), claim, creates)


_TABLE: dict[str, Operation] = {
    "member.register": _op(registry.register, "member", "role", "public_key"),
    "member.rotate_key": _op(registry.rotate_key, "member", "public_key"),
    "member.freeze": _op(registry.freeze, "member"),
    "member.unfreeze": _op(registry.unfreeze, "member"),
    "clock.advance": _op(clock.advance, "days"),
    "credit.set_line": _op(credit.set_line, "member", "limit"),
    "receivable.draft": _op(
        receivables.draft, "debtor", "amount", "due_day", creates=((records.RECEIVABLE, "rcv"),)
    ),
    "receivable.confirm": _op(
        receivables.confirm,
        *("receivable", "amount", "due_day", "confirmation"),
        claim=receivables.confirmation_claim,
    ),
    "receivable.split": _op(receivables.split, "receivable", "parts"),
    "receivable.transfer": _op(receivables.transfer, "receivable", "to"),
    "receivable.pledge": _op(receivables.pledge, "receivable", "bank"),
    "receivable.settle": _op(receivables.settle, "receivable"),
    "loan.lend": _op(
        loans.lend,
        *("borrower", "principal", "amount_due", "due_day", "receivable"),
        creates=((records.LOAN, "loan"),),
    ),
    "loan.repay": _op(loans.repay, "loan", "amount"),
    "loan.record_repayment": _op(loans.record_repayment, "loan", "amount"),
    "loan.mark_overdue": _op(loans.mark_overdue, "loan"),
    "loan.write_off": _op(loans.write_off, "loan"),
    "collection.publish": _op(
        collection.publish,
        *("loan", "bid_deadline", "reveal_deadline", "contact_commitment"),
        creates=((records.TASK, "task"),),
    ),
    "collection.bid": _op(collection.bid, "task", "commitment"),
    "collection.reveal": _op(collection.reveal, "task", "rate_bp", "salt"),
    "collection.assign": _op(collection.assign, "task"),
    "collection.grant_data": _op(collection.grant_data, "task", "ciphertexts"),
    "collection.log_action": _op(collection.log_action, "task", "action"),
    "collection.report_recovery": _op(collection.report_recovery, "task", "amount"),
    "collection.settle": _op(collection.settle, "task"),
    "warehouse.issue": _op(
        warehouse.issue,
        *("owner", "lot", "commodity", "quantity", "grade", "inspection"),
        creates=((records.WAREHOUSE_RECEIPT, "whr"),),
    ),
    "warehouse.amend": _op(
        warehouse.amend,
        *("receipt", "commodity", "quantity", "grade", "inspection", "consent"),
        claim=warehouse.amendment_claim,
    ),
    "warehouse.pledge": _op(warehouse.pledge, "receipt", "bank"),
    "warehouse.lend": _op(
        warehouse.lend,
        *("receipt", "principal", "amount_due", "due_day"),
        creates=((records.LOAN, "loan"),),
    ),
    "warehouse.release": _op(warehouse.release, "receipt", "quantity"),
    "warehouse.outbound": _op(warehouse.outbound, "receipt", "quantity"),
    "warehouse.liquidate": _op(warehouse.liquidate, "receipt", "proceeds"),
    "creditline.open": _op(
        creditlines.open_line,
        *("borrower", "amounts", "due_days", "threshold", "rate_bp"),
        creates=((records.TRANCHE_LINE, "cl"),),
    ),
    "pool.create": _op(
        pools.create,
        *("loans", "arranger", "period_days", "default_days", "data_commitment"),
        creates=((records.POOL, "pool"),),
    ),
    "pool.structure": _op(pools.structure, "pool", "tranches"),
    "pool.grant_data": _op(pools.grant_data, "pool", "agency", "ciphertexts"),
    "pool.rate": _op(pools.rate, "pool", "grades", "report"),
    "pool.subscribe": _op(issuance.subscribe, "pool", "tranche", "units"),
    "pool.close": _op(issuance.close, "pool"),
    "pool.distribute": _op(servicing.distribute, "pool", "payments"),
    "pool.transfer_units": _op(
        issuance.transfer_units,
        *("pool", "trade", "tranche", "seller", "buyer", "units", "price", "consent"),
        claim=issuance.transfer_claim,
    ),
}

OPERATIONS: frozenset[str] = frozenset(_TABLE)
PARAMETERS: dict[str, frozenset[str]] = {name: op.params for name, op in _TABLE.items()}


def execute(
    view: StateView, ctx: TxContext, op: str, args: dict[str, Any]
) -> dict[str, Any] | None:
    """Run one transaction on `view` (its own overlay). Returns a small result (ids of what it
    created) or None; raises `RuleViolation` and nothing else for any input from the network."""
    operation = _TABLE.get(op) if type(op) is str else None
    if operation is None:
        raise RuleViolation(f"unknown operation {shown(op)}")
    who = registry.caller(view, ctx.sender)
    return operation.handler(view, ctx, who, Args(op, args, operation.params))


def created_keys(op: str, tx_id: bytes) -> list[str]:
    """The state keys a transaction would create under ids derived from its id, for a read
    of them all at once ahead of execution (execution still checks each)."""
    operation = _TABLE.get(op) if type(op) is str else None
    if operation is None:
        return []
    return [prefix + records.derived_id(kind, tx_id) for prefix, kind in operation.creates]


def signature_claim(view: StateView, op: str, args: dict[str, Any]) -> SignatureClaim | None:
    """The signature inside a transaction that its execution on `view` would check, if any: a
    node verifies it ahead (at admission, or with the block's signatures on every core) and
    execution then finds the verdict remembered. None when there is none or the arguments are
    not even well-formed (execution will then refuse the transaction)."""
    operation = _TABLE.get(op) if type(op) is str else None
    if operation is None or operation.claim is None:
        return None
    try:
        return operation.claim(view, Args(op, args, operation.params))
    except RuleViolation:
        return None
