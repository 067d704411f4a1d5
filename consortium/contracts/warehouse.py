"""Warehouse receipts: a registered warehouse's digital receipt for one lot of goods it holds.

ISSUED to the goods' owner -> PLEDGED to one bank, which may lend against it -> RELEASED bit by bit
as the loan is repaid -> CLOSED once every unit has left the warehouse; or LIQUIDATED by the bank
when the loan is in default. The rules that make the receipt worth lending against:

- One receipt per lot: a warehouse's lot id gets one receipt, ever, and so does a hash of
  inspection documents (chain-wide, also across amendments), so the same goods or the same papers
  cannot back two receipts.
- One pledge, ever, as for receivables: only an ISSUED receipt with nothing released is pledged,
  and a pledged one never returns to ISSUED.
- Goods leave only as released: the warehouse's outbound never exceeds what was released, and
  while pledged only the pledgee releases, at most the share of the pledged quantity its loan has
  been repaid (`quantity * repaid // amount_due`), everything once the loan is paid off.
  Released never exceeds the quantity. An unpledged receipt's goods are released by the owner.
- Terms change only by the warehouse with the owner's consent: `warehouse.amend` carries the
  owner's signature (its current key) over the new terms and the version they replace, and only
  while the receipt is ISSUED, so a pledgee's collateral never changes under it.
"""

from __future__ import annotations

from typing import Any

from consortium import codec
from consortium.contracts import records, scoring
from consortium.contracts.args import MAX_AMOUNT, Args
from consortium.contracts.clock import business_day
from consortium.contracts.context import RuleViolation, SignatureClaim, StateView, TxContext
from consortium.contracts.loans import BORROWER_ROLES, book, outstanding, pay_in
from consortium.contracts.money import move
from consortium.contracts.records import (
    CLOSED,
    COLLECTION,
    ISSUED,
    LIQUIDATED,
    OPEN_LOAN_STATES,
    OVERDUE,
    PLEDGED,
    RELEASED,
    WarehouseReceipt,
)
from consortium.contracts.registry import Caller, active_member, member, require_role
from consortium.crypto import HASH_BYTES, SIGNATURE_BYTES
from consortium.roles import Role

AMENDMENT_DOMAIN = "consortium/warehouse-receipt-amendment"
MAX_TEXT = 64


def amendment_statement(
    receipt_id: str, version: int, commodity: str, quantity: int, grade: str, inspection: bytes
) -> bytes:
    """The bytes the owner signs to consent to new terms of a receipt at `version` (the version
    being replaced), so a consent is good for one amendment only."""
    return codec.encode_flat(
        (AMENDMENT_DOMAIN, receipt_id, version, commodity, quantity, grade, inspection)
    )


def _store(view: StateView, receipt: WarehouseReceipt) -> None:
    view.put(records.WAREHOUSE_RECEIPT + receipt["id"], receipt)


def _terms(args: Args) -> tuple[str, int, str, bytes]:
    return (
        args.text("commodity", MAX_TEXT),
        args.integer("quantity", 1, MAX_AMOUNT),
        args.text("grade", MAX_TEXT),
        args.blob("inspection", HASH_BYTES, HASH_BYTES),
    )


def amendment_claim(view: StateView, args: Args) -> SignatureClaim:
    """The owner's current key, the terms it must have consented to, and the consent carried:
    what `amend` checks, known before execution so that a node can check it ahead."""
    receipt = records.warehouse_receipt(view, args.object_id("receipt"))
    owner = member(view, receipt["owner"])
    if owner is None:
        raise RuleViolation(f"owner {receipt['owner']} is not a member")
    commodity, quantity, grade, inspection = _terms(args)
    statement = amendment_statement(
        receipt["id"], receipt["version"], commodity, quantity, grade, inspection
    )
    return owner["key"], statement, args.blob("consent", SIGNATURE_BYTES, SIGNATURE_BYTES)


def _claim_inspection(view: StateView, inspection: bytes, receipt_id: str) -> None:
    key = records.INSPECTION + inspection.hex()
    if view.get(key) is not None:
        raise RuleViolation(
            f"inspection documents {inspection.hex()[:16]}... back a receipt already"
        )
    view.put(key, receipt_id)


def _own_receipt(view: StateView, who: Caller, args: Args) -> WarehouseReceipt:
    require_role(who, Role.WAREHOUSE)
    receipt = records.warehouse_receipt(view, args.object_id("receipt"))
    if receipt["warehouse"] != who.id:
        raise RuleViolation(f"receipt {receipt['id']} was issued by {receipt['warehouse']}")
    return receipt


def _pledged_to(view: StateView, who: Caller, args: Args) -> WarehouseReceipt:
    receipt = records.warehouse_receipt(view, args.object_id("receipt"))
    if receipt["pledgee"] != who.id:
        raise RuleViolation(f"receipt {receipt['id']} is not pledged to {who.id}")
    return receipt


def releasable(view: StateView, receipt: WarehouseReceipt) -> int:
    """The units that may have been released so far: all of them unpledged, without a loan or
    once the loan is closed; otherwise the repaid share of the quantity, rounded down."""
    if receipt["pledgee"] is None or receipt["loan"] is None:
        return receipt["quantity"]
    loan = records.loan(view, receipt["loan"])
    if loan["state"] not in OPEN_LOAN_STATES:
        return receipt["quantity"]
    return receipt["quantity"] * loan["repaid"] // loan["amount_due"]


def issue(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, str]:
    """A receipt to the goods' owner (a supplier or core enterprise) for a lot not yet receipted,
    inspected under documents no other receipt names."""
    require_role(who, Role.WAREHOUSE)
    owner = args.member("owner")
    lot = args.object_id("lot")
    commodity, quantity, grade, inspection = _terms(args)
    record = member(view, owner)
    if record is None or record["role"] not in BORROWER_ROLES:
        raise RuleViolation(f"owner {owner} is not a supplier or core enterprise")
    if record["frozen"]:
        raise RuleViolation(f"owner {owner} is frozen")
    lot_key = f"{records.LOT}{who.id}/{lot}"
    if view.get(lot_key) is not None:
        raise RuleViolation(f"lot {lot} of {who.id} has receipt {view.get(lot_key)} already")
    receipt_id = records.new_id(view, records.WAREHOUSE_RECEIPT, "whr", ctx.tx_id)
    _claim_inspection(view, inspection, receipt_id)
    view.put(lot_key, receipt_id)
    receipt: WarehouseReceipt = {
        "id": receipt_id,
        "warehouse": who.id,
        "owner": owner,
        "lot": lot,
        "commodity": commodity,
        "quantity": quantity,
        "grade": grade,
        "inspection": inspection,
        "version": 0,
        "state": ISSUED,
        "pledgee": None,
        "loan": None,
        "released": 0,
        "shipped": 0,
        "liquidated": 0,
        "proceeds": None,
    }
    _store(view, receipt)
    return {"receipt": receipt_id}


def amend(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, int]:
    """New terms by the issuing warehouse, with the owner's signature over them and the version
    they replace; only before any pledge or release."""
    receipt = _own_receipt(view, who, args)
    commodity, quantity, grade, inspection = _terms(args)
    args.blob("consent", SIGNATURE_BYTES, SIGNATURE_BYTES)
    if receipt["state"] != ISSUED:
        raise RuleViolation(f"receipt {receipt['id']} is {receipt['state']}, not ISSUED")
    owner = member(view, receipt["owner"])
    if owner is None or owner["frozen"]:
        raise RuleViolation(f"owner {receipt['owner']} is frozen or gone")
    if not ctx.check_signature(*amendment_claim(view, args)):
        raise RuleViolation(f"consent is not signed by the current key of {receipt['owner']}")
    if inspection != receipt["inspection"]:
        _claim_inspection(view, inspection, receipt["id"])
    version = receipt["version"] + 1
    _store(
        view,
        {
            **receipt,
            "commodity": commodity,
            "quantity": quantity,
            "grade": grade,
            "inspection": inspection,
            "version": version,
        },
    )
    return {"version": version}


def pledge(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, str]:
    """The owner pledges an ISSUED receipt to a bank: the first pledge it gets is its only one."""
    receipt = records.warehouse_receipt(view, args.object_id("receipt"))
    bank = args.member("bank")
    if receipt["owner"] != who.id:
        raise RuleViolation(f"receipt {receipt['id']} is owned by {receipt['owner']}, not {who.id}")
    if receipt["state"] != ISSUED or receipt["pledgee"] is not None:
        raise RuleViolation(f"receipt {receipt['id']} is {receipt['state']}, not ISSUED")
    active_member(view, bank, Role.BANK, "pledgee")
    _store(view, {**receipt, "state": PLEDGED, "pledgee": bank})
    return {"state": PLEDGED}


def lend(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, str]:
    """The pledgee lends the owner `principal` against the receipt, once, before any release;
    repayments go through `loan.repay` like any loan's."""
    require_role(who, Role.BANK)
    receipt = _pledged_to(view, who, args)
    principal = args.amount("principal")
    amount_due = args.amount("amount_due")
    due_day = args.day("due_day")
    if receipt["state"] != PLEDGED:
        raise RuleViolation(f"receipt {receipt['id']} is {receipt['state']}, not PLEDGED")
    if receipt["loan"] is not None:
        raise RuleViolation(f"receipt {receipt['id']} already backs loan {receipt['loan']}")
    owner = member(view, receipt["owner"])
    if owner is None or owner["frozen"]:
        raise RuleViolation(f"borrower {receipt['owner']} is frozen or gone")
    if amount_due < principal:
        raise RuleViolation(f"amount due {amount_due} is less than the principal {principal}")
    today = business_day(view)
    if due_day <= today:
        raise RuleViolation(f"due day {due_day} is not after today ({today})")
    loan_id = records.new_id(view, records.LOAN, "loan", ctx.tx_id)
    move(view, who.id, receipt["owner"], principal)
    loan = records.make_loan(
        loan_id, who.id, receipt["owner"], principal, amount_due, due_day, receipt=receipt["id"]
    )
    view.put(records.LOAN + loan_id, loan)
    _store(view, {**receipt, "loan": loan_id})
    return {"loan": loan_id}


def release(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """The pledgee (the owner, if never pledged) lets `quantity` more units go."""
    receipt = records.warehouse_receipt(view, args.object_id("receipt"))
    quantity = args.integer("quantity", 1, MAX_AMOUNT)
    controller = receipt["owner"] if receipt["pledgee"] is None else receipt["pledgee"]
    if who.id != controller:
        raise RuleViolation(f"only {controller} may release goods of receipt {receipt['id']}")
    if receipt["state"] not in (ISSUED, PLEDGED, RELEASED):
        raise RuleViolation(f"receipt {receipt['id']} is {receipt['state']}")
    released = receipt["released"] + quantity
    cap = releasable(view, receipt)
    if released > cap:
        raise RuleViolation(
            f"releasing {quantity} more would release {released} of {receipt['quantity']} units; "
            f"the repaid share allows {cap}"
        )
    _store(view, {**receipt, "state": RELEASED, "released": released})
    return {"released": released, "releasable": cap, "state": RELEASED}


def outbound(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """The warehouse lets `quantity` units out, within what was released; the receipt closes
    when every unit is out (a liquidated one stays LIQUIDATED)."""
    receipt = _own_receipt(view, who, args)
    quantity = args.integer("quantity", 1, MAX_AMOUNT)
    shipped = receipt["shipped"] + quantity
    if receipt["state"] not in (RELEASED, LIQUIDATED) or shipped > receipt["released"]:
        raise RuleViolation(
            f"letting {quantity} out of receipt {receipt['id']} ({receipt['state']}) would exceed "
            f"the {receipt['released'] - receipt['shipped']} released and not yet shipped"
        )
    state = receipt["state"]
    if state == RELEASED and shipped == receipt["quantity"]:
        state = CLOSED
    _store(view, {**receipt, "shipped": shipped, "state": state})
    return {"shipped": shipped, "state": state}


def liquidate(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """On default (the loan OVERDUE or in collection) the pledgee takes the unreleased goods and
    records what their sale realised off the chain: booked as a repayment up to what is owed
    (which stops any collection task), the rest reported as `surplus`, owed to the owner."""
    require_role(who, Role.BANK)
    receipt = _pledged_to(view, who, args)
    proceeds = args.integer("proceeds", 0, MAX_AMOUNT)
    if receipt["state"] not in (PLEDGED, RELEASED) or receipt["released"] >= receipt["quantity"]:
        raise RuleViolation(f"receipt {receipt['id']} has no pledged goods left to liquidate")
    if receipt["loan"] is None:
        raise RuleViolation(f"receipt {receipt['id']} backs no loan")
    loan = records.loan(view, receipt["loan"])
    if loan["state"] not in (OVERDUE, COLLECTION):
        raise RuleViolation(f"loan {loan['id']} is {loan['state']}, not in default")
    applied = min(proceeds, outstanding(loan))
    loan_state = loan["state"]
    if applied:
        pay_in(view, who.id, loan, applied)
        loan_state = book(view, loan, applied, by_agency=False)[0]["state"]
    taken = receipt["quantity"] - receipt["released"]
    _store(
        view,
        {
            **receipt,
            "state": LIQUIDATED,
            "released": receipt["quantity"],
            "liquidated": taken,
            "proceeds": proceeds,
        },
    )
    scoring.record(view, receipt["owner"], liquidated=1)
    return {
        "liquidated": taken,
        "applied": applied,
        "surplus": proceeds - applied,
        "loan_state": loan_state,
    }
