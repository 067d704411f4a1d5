"""Receivables: an invoice a core enterprise owes a supplier, as a token with one state.

DRAFTED by the supplier -> CONFIRMED by the named debtor's signature over the terms -> SPLIT
(parent CONSUMED, children CONFIRMED) or TRANSFERRED by the holder -> PLEDGED to one bank ->
SETTLED when the debtor pays at maturity, the pledgee first. A token is pledged at most once in its
life: only a CONFIRMED token can be pledged, split or transferred, and a pledged one never returns
to CONFIRMED. Two conflicting pledges in one block: the first executed wins, the second sees
PLEDGED.
"""

from __future__ import annotations

from consortium import codec
from consortium.contracts import credit, records, scoring
from consortium.contracts.args import Args
from consortium.contracts.clock import business_day
from consortium.contracts.context import RuleViolation, SignatureClaim, StateView, TxContext
from consortium.contracts.loans import outstanding, pay_in, receive
from consortium.contracts.money import move
from consortium.contracts.records import (
    CONFIRMED,
    CONSUMED,
    DRAFTED,
    OPEN_LOAN_STATES,
    PLEDGED,
    SETTLED,
    Receivable,
)
from consortium.contracts.registry import Caller, active_member, member, require_role
from consortium.crypto import SIGNATURE_BYTES
from consortium.roles import Role

CONFIRMATION_DOMAIN = "consortium/receivable-confirmation"
MAX_SPLIT_PARTS = 16


def confirmation_statement(receivable_id: str, debtor: str, amount: int, due_day: int) -> bytes:
    """The bytes a debtor signs to confirm it owes `amount` on `due_day` under this receivable.

    Independent of the chain and of the transaction carrying it, so the core enterprise can sign
    off-chain and either party can submit it; different terms give different bytes.
    """
    return codec.encode_flat((CONFIRMATION_DOMAIN, receivable_id, debtor, amount, due_day))


def confirmation_claim(view: StateView, args: Args) -> SignatureClaim:
    """The debtor's current key, the terms it must have signed, and the confirmation carried:
    what `confirm` checks, known before execution so that a node can check it ahead."""
    rcv = records.receivable(view, args.object_id("receivable"))
    debtor = member(view, rcv["debtor"])
    if debtor is None:
        raise RuleViolation(f"debtor {rcv['debtor']} is not a member")
    statement = confirmation_statement(
        rcv["id"], rcv["debtor"], args.amount("amount"), args.day("due_day")
    )
    signature = args.blob("confirmation", SIGNATURE_BYTES, SIGNATURE_BYTES)
    return debtor["key"], statement, signature


def _store(view: StateView, rcv: Receivable) -> None:
    view.put(records.RECEIVABLE + rcv["id"], rcv)


def _held(view: StateView, who: Caller, args: Args) -> Receivable:
    """The CONFIRMED receivable named in `args`, held by the caller: the only kind that may be
    split, transferred or pledged."""
    rcv = records.receivable(view, args.object_id("receivable"))
    if rcv["holder"] != who.id:
        raise RuleViolation(f"receivable {rcv['id']} is held by {rcv['holder']}, not {who.id}")
    if rcv["state"] != CONFIRMED or rcv["pledgee"] is not None:
        raise RuleViolation(f"receivable {rcv['id']} is {rcv['state']}, not CONFIRMED")
    return rcv


def draft(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, str]:
    require_role(who, Role.SUPPLIER)
    debtor = args.member("debtor")
    amount = args.amount("amount")
    due_day = args.day("due_day")
    active_member(view, debtor, Role.CORE_ENTERPRISE, "debtor")
    today = business_day(view)
    if due_day <= today:
        raise RuleViolation(f"due day {due_day} is not after today ({today})")
    # Keys in canonical (sorted) order: the state encodes the record without re-sorting it.
    rcv: Receivable = {
        "amount": amount,
        "children": (),
        "debtor": debtor,
        "drafter": who.id,
        "due_day": due_day,
        "holder": who.id,
        "id": records.new_id(view, records.RECEIVABLE, "rcv", ctx.tx_id),
        "loan": None,
        "parent": None,
        "pledgee": None,
        "state": DRAFTED,
    }
    _store(view, rcv)
    return {"receivable": rcv["id"]}


def confirm(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    """Only the debtor's current key makes a confirmation, whoever of holder and debtor submits
    it; the restated terms must be the drafted ones, and the debtor's credit line must allow it.
    A confirmed receivable counts in its drafter's credit history."""
    rcv = records.receivable(view, args.object_id("receivable"))
    amount = args.amount("amount")
    due_day = args.day("due_day")
    args.blob("confirmation", SIGNATURE_BYTES, SIGNATURE_BYTES)
    debtor = rcv["debtor"]
    if who.id not in (debtor, rcv["holder"]):
        raise RuleViolation(f"{who.id} is neither the debtor nor the holder of {rcv['id']}")
    if rcv["state"] != DRAFTED:
        raise RuleViolation(f"receivable {rcv['id']} is {rcv['state']}, not DRAFTED")
    if amount != rcv["amount"] or due_day != rcv["due_day"]:
        raise RuleViolation(
            f"terms {amount} due day {due_day} differ from the draft: "
            f"{rcv['amount']} due day {rcv['due_day']}"
        )
    debtor_record = member(view, debtor)
    if debtor_record is None or debtor_record["frozen"]:
        raise RuleViolation(f"debtor {debtor} is frozen or gone")
    if not ctx.check_signature(*confirmation_claim(view, args)):
        raise RuleViolation(f"confirmation is not signed by the current key of {debtor}")
    credit.take(view, debtor, amount)
    _store(view, {**rcv, "state": CONFIRMED})
    scoring.record(view, rcv["drafter"], confirmed=1, confirmed_amount=amount)


def split(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, tuple[str, ...]]:
    """Cut a confirmed receivable into parts for suppliers (the holder may keep one); the parts
    sum exactly to the parent, which is consumed; each part keeps the debtor and the due day."""
    rcv = _held(view, who, args)
    parts = args.allocation("parts", MAX_SPLIT_PARTS)
    total = sum(amount for _, amount in parts)
    if total != rcv["amount"]:
        raise RuleViolation(f"parts sum to {total}, the receivable is {rcv['amount']}")
    children = []
    for index, (recipient, amount) in enumerate(parts):
        active_member(view, recipient, Role.SUPPLIER, "recipient")
        child_id = records.new_id(view, records.RECEIVABLE, "rcv", ctx.tx_id, f"-{index}")
        child: Receivable = {
            **rcv,
            "id": child_id,
            "holder": recipient,
            "amount": amount,
            "parent": rcv["id"],
            "children": (),
        }
        _store(view, child)
        children.append(child_id)
    _store(view, {**rcv, "state": CONSUMED, "children": tuple(children)})
    return {"children": tuple(children)}


def transfer(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    rcv = _held(view, who, args)
    recipient = args.member("to")
    if recipient == who.id:
        raise RuleViolation("a receivable cannot be transferred to its holder")
    active_member(view, recipient, Role.SUPPLIER, "recipient")
    _store(view, {**rcv, "holder": recipient})


def pledge(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    rcv = _held(view, who, args)
    bank = args.member("bank")
    active_member(view, bank, Role.BANK, "pledgee")
    _store(view, {**rcv, "state": PLEDGED, "pledgee": bank})


def settle(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, int]:
    """The debtor pays at or after maturity: the pledgee receives what its loan still wants (up
    to the face value), the holder the rest; the pledge ends and the token is closed."""
    require_role(who, Role.CORE_ENTERPRISE)
    rcv = records.receivable(view, args.object_id("receivable"))
    if rcv["debtor"] != who.id:
        raise RuleViolation(f"receivable {rcv['id']} is owed by {rcv['debtor']}, not {who.id}")
    if rcv["state"] not in (CONFIRMED, PLEDGED):
        raise RuleViolation(f"receivable {rcv['id']} is {rcv['state']}, not payable")
    today = business_day(view)
    if today < rcv["due_day"]:
        raise RuleViolation(f"receivable {rcv['id']} matures on day {rcv['due_day']}, not {today}")
    to_pledgee = 0
    if rcv["state"] == PLEDGED and rcv["loan"] is not None and rcv["pledgee"] is not None:
        loan = records.loan(view, rcv["loan"])
        if loan["state"] in OPEN_LOAN_STATES:
            to_pledgee = min(outstanding(loan), rcv["amount"])
            pay_in(view, who.id, loan, to_pledgee)
            receive(view, loan, to_pledgee, by_agency=False)
    to_holder = rcv["amount"] - to_pledgee
    move(view, who.id, rcv["holder"], to_holder)
    credit.give_back(view, who.id, rcv["amount"])
    _store(view, {**rcv, "state": SETTLED})
    return {"to_pledgee": to_pledgee, "to_holder": to_holder}
