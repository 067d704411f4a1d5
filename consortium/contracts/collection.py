"""Outsourced debt collection: a task per overdue loan, sealed bids, one assigned agency.

BIDDING (agencies commit to a hidden rate until `bid_deadline`, reveal it until
`reveal_deadline`) -> ASSIGNED to the lowest revealed rate, ties to the earliest bid -> the bank
seals the debtor's contact data to that agency and the regulator -> the agency logs actions and
reports recoveries -> COMPLETED when the loan is recovered, or STOPPED at once by a repayment
(see `loans.receive`) -> SETTLED: the commission on the recovered amount is paid exactly once.
A task nobody validly revealed for ends UNASSIGNED. Committing first keeps agencies from
undercutting each other's visible bids; the reveal shows the bid was made before the deadline.
"""

from __future__ import annotations

from consortium import codec
from consortium.contracts import pricing, records, scoring
from consortium.contracts.args import MAX_DAY, Args
from consortium.contracts.clock import business_day
from consortium.contracts.context import RuleViolation, StateView, TxContext
from consortium.contracts.loans import outstanding, pay_in, receive
from consortium.contracts.money import move
from consortium.contracts.records import (
    ASSIGNED,
    BIDDING,
    COLLECTION,
    COMPLETED,
    OVERDUE,
    RECOVERED,
    SETTLED,
    STOPPED,
    UNASSIGNED,
    Bid,
    Loan,
    Task,
)
from consortium.contracts.registry import Caller, require_role
from consortium.contracts.sealing import sealed_boxes
from consortium.crypto import HASH_BYTES, sha256
from consortium.roles import Role

BID_DOMAIN = "consortium/collection-bid"
MIN_SALT_BYTES = 16
MAX_SALT_BYTES = 64
MAX_ACTION_LENGTH = 200
MAX_ACTIONS = 999_999


def bid_commitment(task_id: str, agency: str, rate_bp: int, salt: bytes) -> bytes:
    """What an agency submits first: it binds the rate without showing it; the salt keeps the few
    possible rates from being guessed by hashing them all."""
    return sha256(codec.encode_flat((BID_DOMAIN, task_id, agency, rate_bp, salt)))


def contact_commitment(contact_data: bytes) -> bytes:
    """Published with the task so the assigned agency can check the data it decrypts."""
    return sha256(contact_data)


def _store(view: StateView, task: Task) -> None:
    view.put(records.TASK + task["id"], task)


def _bank_task(view: StateView, who: Caller, args: Args) -> Task:
    require_role(who, Role.BANK)
    task = records.task(view, args.object_id("task"))
    if task["bank"] != who.id:
        raise RuleViolation(f"task {task['id']} belongs to {task['bank']}, not {who.id}")
    return task


def _assigned_task(view: StateView, who: Caller, args: Args) -> Task:
    """The task named in `args`, still ASSIGNED to the caller: the only time an agency may act."""
    task = records.task(view, args.object_id("task"))
    if task["agency"] != who.id:
        raise RuleViolation(f"task {task['id']} is not assigned to {who.id}")
    if task["state"] != ASSIGNED:
        raise RuleViolation(f"task {task['id']} is {task['state']}, not ASSIGNED")
    return task


def _end_collection(view: StateView, loan_id: str, task_id: str) -> None:
    """The task is over without the loan being paid: the bank may publish again or write off."""
    loan: Loan = records.loan(view, loan_id)
    if loan["task"] == task_id:
        view.put(records.LOAN + loan_id, {**loan, "state": OVERDUE, "task": None})


def publish(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, object]:
    require_role(who, Role.BANK)
    loan = records.loan(view, args.object_id("loan"))
    bid_deadline = args.day("bid_deadline")
    reveal_deadline = args.day("reveal_deadline")
    commitment = args.blob("contact_commitment", HASH_BYTES, HASH_BYTES)
    if loan["bank"] != who.id:
        raise RuleViolation(f"loan {loan['id']} was lent by {loan['bank']}, not {who.id}")
    if loan["state"] != OVERDUE or loan["task"] is not None:
        raise RuleViolation(f"loan {loan['id']} is {loan['state']}; a task needs an OVERDUE loan")
    today = business_day(view)
    if not today <= bid_deadline < reveal_deadline <= MAX_DAY:
        raise RuleViolation(
            f"need today ({today}) <= bid deadline ({bid_deadline}) < reveal deadline "
            f"({reveal_deadline})"
        )
    days_overdue = today - loan["due_day"]
    owed = outstanding(loan)
    task: Task = {
        "id": records.new_id(view, records.TASK, "task", ctx.tx_id),
        "loan": loan["id"],
        "bank": who.id,
        "debtor": loan["borrower"],
        "outstanding": owed,
        "days_overdue": days_overdue,
        "ceiling_bp": pricing.commission_ceiling_bp(owed, days_overdue),
        "bid_deadline": bid_deadline,
        "reveal_deadline": reveal_deadline,
        "contact_commitment": commitment,
        "state": BIDDING,
        "bidders": (),
        "agency": None,
        "rate_bp": None,
        "recovered": 0,
        "commission": None,
        "actions": 0,
        "granted": False,
    }
    _store(view, task)
    view.put(records.LOAN + loan["id"], {**loan, "state": COLLECTION, "task": task["id"]})
    scoring.record(view, loan["borrower"], collection=1)
    return {"task": task["id"], "ceiling_bp": task["ceiling_bp"]}


def bid(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    require_role(who, Role.COLLECTION_AGENCY)
    task = records.task(view, args.object_id("task"))
    commitment = args.blob("commitment", HASH_BYTES, HASH_BYTES)
    today = business_day(view)
    if task["state"] != BIDDING or today > task["bid_deadline"]:
        raise RuleViolation(f"task {task['id']} takes no bids (state {task['state']}, day {today})")
    key = f"{records.BID}{task['id']}/{who.id}"
    if view.get(key) is not None:
        raise RuleViolation(f"{who.id} has bid on task {task['id']} already")
    record: Bid = {
        "commitment": commitment,
        "height": ctx.height,
        "index": ctx.index,
        "rate_bp": None,
    }
    view.put(key, record)
    _store(view, {**task, "bidders": (*task["bidders"], who.id)})


def reveal(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    require_role(who, Role.COLLECTION_AGENCY)
    task = records.task(view, args.object_id("task"))
    rate_bp = args.integer("rate_bp", 0, pricing.BASIS_POINTS)
    salt = args.blob("salt", MIN_SALT_BYTES, MAX_SALT_BYTES)
    today = business_day(view)
    if task["state"] != BIDDING or not task["bid_deadline"] < today <= task["reveal_deadline"]:
        raise RuleViolation(
            f"task {task['id']} takes reveals after day {task['bid_deadline']} until day "
            f"{task['reveal_deadline']} while BIDDING (today {today}, {task['state']})"
        )
    key = f"{records.BID}{task['id']}/{who.id}"
    record: Bid | None = view.get(key)
    if record is None:
        raise RuleViolation(f"{who.id} made no bid on task {task['id']}")
    if record["rate_bp"] is not None:
        raise RuleViolation(f"{who.id} revealed its bid on task {task['id']} already")
    if bid_commitment(task["id"], who.id, rate_bp, salt) != record["commitment"]:
        raise RuleViolation("rate and salt do not match the committed bid")
    if rate_bp > task["ceiling_bp"]:
        raise RuleViolation(f"rate {rate_bp} bp exceeds the ceiling of {task['ceiling_bp']} bp")
    view.put(key, {**record, "rate_bp": rate_bp})


def assign(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, object]:
    """Anyone may close the auction after the reveal deadline; the bank may close it as soon as
    bidding is over and every bid is revealed. Lowest rate wins, then the earliest bid."""
    task = records.task(view, args.object_id("task"))
    if task["state"] != BIDDING:
        raise RuleViolation(f"task {task['id']} is {task['state']}, not BIDDING")
    today = business_day(view)
    bids: list[tuple[int, int, int, str]] = []
    all_revealed = True
    for agency in task["bidders"]:
        record: Bid = view.get(f"{records.BID}{task['id']}/{agency}")
        if record["rate_bp"] is None:
            all_revealed = False
        else:
            bids.append((record["rate_bp"], record["height"], record["index"], agency))
    early = who.id == task["bank"] and today > task["bid_deadline"] and all_revealed and bool(bids)
    if today <= task["reveal_deadline"] and not early:
        raise RuleViolation(
            f"task {task['id']} can be assigned after day {task['reveal_deadline']} "
            "(by its bank earlier, once bidding is over and every bid is revealed)"
        )
    if not bids:
        _store(view, {**task, "state": UNASSIGNED})
        _end_collection(view, task["loan"], task["id"])
        return {"agency": None}
    rate_bp, _, _, agency = min(bids)
    _store(view, {**task, "state": ASSIGNED, "agency": agency, "rate_bp": rate_bp})
    return {"agency": agency, "rate_bp": rate_bp}


def grant_data(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    """Store the debtor's contact data sealed to exactly the assigned agency and the regulators:
    everyone else sees only ciphertext, and nobody can be added later."""
    task = _bank_task(view, who, args)
    if task["state"] != ASSIGNED or task["agency"] is None:
        raise RuleViolation(f"task {task['id']} is {task['state']}, not ASSIGNED")
    if task["granted"]:
        raise RuleViolation(f"contact data of task {task['id']} was granted already")
    sealed = sealed_boxes(view, args, "ciphertexts", {task["agency"]})
    view.put(records.GRANT + task["id"], sealed)
    _store(view, {**task, "granted": True})


def log_action(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, int]:
    task = _assigned_task(view, who, args)
    action = args.text("action", MAX_ACTION_LENGTH)
    number = task["actions"] + 1
    if number > MAX_ACTIONS:
        raise RuleViolation(f"task {task['id']} has the most actions a task may log")
    entry = {"agency": who.id, "day": business_day(view), "action": action}
    view.put(f"{records.ACTION}{task['id']}/{number:06d}", entry)
    _store(view, {**task, "actions": number})
    return {"action": number}


def report_recovery(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, int]:
    """The agency collected `amount` from the debtor: it moves debtor -> bank (or the loan's
    pool) and counts towards the commission; when the loan is paid off the task is COMPLETED."""
    task = _assigned_task(view, who, args)
    amount = args.amount("amount")
    loan: Loan = records.loan(view, task["loan"])
    if loan["task"] != task["id"]:
        raise RuleViolation(f"loan {loan['id']} is not in collection under task {task['id']}")
    if amount > outstanding(loan):
        raise RuleViolation(f"{amount} exceeds the {outstanding(loan)} outstanding")
    pay_in(view, loan["borrower"], loan, amount)
    updated = receive(view, loan, amount, by_agency=True)
    state = COMPLETED if updated["state"] == RECOVERED else ASSIGNED
    _store(view, {**task, "recovered": task["recovered"] + amount, "state": state})
    return {"recovered": task["recovered"] + amount}


def settle(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, int]:
    """Pay the commission, once, and close the task; an ASSIGNED task settled early ends the
    agency's mandate and returns the loan to OVERDUE."""
    task = _bank_task(view, who, args)
    if task["state"] not in (ASSIGNED, STOPPED, COMPLETED):
        raise RuleViolation(f"task {task['id']} is {task['state']}, nothing to settle")
    agency = task["agency"]
    rate_bp = task["rate_bp"]
    if agency is None or rate_bp is None:
        raise RuleViolation(f"task {task['id']} was never assigned")
    fee = pricing.commission(rate_bp, task["recovered"])
    move(view, who.id, agency, fee)
    if task["state"] == ASSIGNED:
        _end_collection(view, task["loan"], task["id"])
    _store(view, {**task, "state": SETTLED, "commission": fee})
    return {"commission": fee}
