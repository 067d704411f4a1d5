"""The state layout: one key prefix per kind of record, the records' shapes, and their loaders.

Records are plain dicts of codec values so the state root can hash them as they are; they are
never changed in place (the committed state shares them), a changed record is a new dict.

    clock                  business day (int)
    member/<id>            Member
    pubkey/<hex>           PublicKeyEntry: every member key ever registered, revoked or current
    role/<role>            tuple of the member ids with that role, sorted
    bal/<id>               balance (int, smallest currency unit); absent means 0
    credit/<id>            CreditLine of a core enterprise
    rcv/<id>               Receivable
    loan/<id>              Loan
    task/<id>              Task (debt collection)
    bid/<task>/<agency>    Bid
    action/<task>/<n>      Action logged by the assigned agency, n zero-padded to 6 digits
    grant/<task>           sealed boxes of the debtor's contact data, by recipient
    whr/<id>               WarehouseReceipt
    lot/<warehouse>/<lot>  id of the receipt issued for that lot (a lot gets one receipt, ever)
    inspection/<hex>       id of the receipt whose inspection documents hash to <hex>
    cfac/<id>              CreditFactors of a member with credit history; absent means none yet
    cline/<id>             TrancheLine: a bank's credit line paid out in tranches
"""

from __future__ import annotations

from typing import Any, TypedDict

from consortium.contracts.context import RuleViolation, StateView

CLOCK = "clock"
MEMBER = "member/"
PUBKEY = "pubkey/"
ROLE = "role/"
BALANCE = "bal/"
CREDIT = "credit/"
RECEIVABLE = "rcv/"
LOAN = "loan/"
TASK = "task/"
BID = "bid/"
ACTION = "action/"
GRANT = "grant/"
WAREHOUSE_RECEIPT = "whr/"
LOT = "lot/"
INSPECTION = "inspection/"
CREDIT_FACTORS = "cfac/"
TRANCHE_LINE = "cline/"

# Receivable states
DRAFTED = "DRAFTED"
CONFIRMED = "CONFIRMED"
PLEDGED = "PLEDGED"
SETTLED = "SETTLED"
CONSUMED = "CONSUMED"
OPEN_RECEIVABLE_STATES = frozenset({DRAFTED, CONFIRMED, PLEDGED})

# Loan states
ACTIVE = "ACTIVE"
REPAID = "REPAID"
OVERDUE = "OVERDUE"
COLLECTION = "COLLECTION"
RECOVERED = "RECOVERED"
WRITTEN_OFF = "WRITTEN_OFF"
OPEN_LOAN_STATES = frozenset({ACTIVE, OVERDUE, COLLECTION})

# Collection task states (SETTLED is shared with receivables)
BIDDING = "BIDDING"
ASSIGNED = "ASSIGNED"
STOPPED = "STOPPED"
COMPLETED = "COMPLETED"
UNASSIGNED = "UNASSIGNED"
OPEN_TASK_STATES = frozenset({BIDDING, ASSIGNED})

# Warehouse receipt states (PLEDGED is shared with receivables)
ISSUED = "ISSUED"
RELEASED = "RELEASED"
CLOSED = "CLOSED"
LIQUIDATED = "LIQUIDATED"
OPEN_RECEIPT_STATES = frozenset({ISSUED, PLEDGED, RELEASED})

# Tranche line states and tranche states
DRAWING = "DRAWING"
BLOCKED = "BLOCKED"
DRAWN = "DRAWN"
PENDING = "PENDING"
REFUSED = "REFUSED"


class Member(TypedDict):
    role: str
    key: bytes
    frozen: bool


class PublicKeyEntry(TypedDict):
    member: str
    revoked: bool


class CreditLine(TypedDict):
    limit: int
    used: int  # face value of the core's confirmed receivables not yet settled


class Receivable(TypedDict):
    id: str
    drafter: str
    holder: str
    debtor: str
    amount: int
    due_day: int
    state: str  # DRAFTED, CONFIRMED, PLEDGED, SETTLED, CONSUMED
    pledgee: str | None  # set once, never changed: the one pledge this token ever gets
    loan: str | None  # the loan financed against the pledge
    parent: str | None
    children: tuple[str, ...]


class Loan(TypedDict):
    id: str
    bank: str
    borrower: str
    principal: int
    amount_due: int  # principal plus interest
    repaid: int  # everything received: repayments and recoveries
    recovered: int  # the part collected by agencies
    due_day: int
    state: str  # ACTIVE, REPAID, OVERDUE, COLLECTION, RECOVERED, WRITTEN_OFF
    receivable: str | None
    task: str | None  # the open collection task
    receipt: str | None  # the warehouse receipt pledged for it
    line: str | None  # the tranche line this loan is a tranche of


class Task(TypedDict):
    id: str
    loan: str
    bank: str
    debtor: str
    outstanding: int  # at publication
    days_overdue: int  # at publication
    ceiling_bp: int
    bid_deadline: int
    reveal_deadline: int
    contact_commitment: bytes
    state: str  # BIDDING, ASSIGNED, STOPPED, COMPLETED, UNASSIGNED, SETTLED
    bidders: tuple[str, ...]  # in bid order
    agency: str | None
    rate_bp: int | None
    recovered: int
    commission: int | None
    actions: int
    granted: bool


class Bid(TypedDict):
    commitment: bytes
    height: int
    index: int
    rate_bp: int | None  # set by a valid reveal


class WarehouseReceipt(TypedDict):
    id: str
    warehouse: str
    owner: str
    lot: str
    commodity: str
    quantity: int  # integer units of the commodity
    grade: str
    inspection: bytes  # SHA-256 of the inspection documents
    version: int  # amendments so far; an owner's consent names the version it changes
    state: str  # ISSUED, PLEDGED, RELEASED, CLOSED, LIQUIDATED
    pledgee: str | None  # set once, never changed: the one pledge this receipt ever gets
    loan: str | None  # the loan lent against the pledge
    released: int  # units the pledgee (or, unpledged, the owner) let go; never above quantity
    shipped: int  # units the warehouse let out; never above released
    liquidated: int  # units the pledgee took on default
    proceeds: int | None  # what the pledgee recorded from selling them


class CreditFactors(TypedDict):
    """A member's credit history as counters; the score is `scoring.credit_score` of these."""

    confirmed: int  # receivables it drafted that the debtor confirmed
    confirmed_amount: int
    on_time: int  # loans it repaid in full by their due day
    late: int  # loans paid off (repaid or recovered) after their due day
    days_late: int  # days past the due day at those closings and at write-offs
    overdue: int  # loans of its marked overdue
    collection: int  # collection tasks published against it
    written_off: int
    liquidated: int  # warehouse receipts of its liquidated on default


class Tranche(TypedDict):
    amount: int
    due_days: int  # the tranche is due this many days after it is paid out
    state: str  # PENDING, RELEASED, REFUSED
    loan: str | None  # set once, when released
    day: int | None  # business day of the release or refusal
    score: int | None  # the borrower's score at that decision
    reason: str | None  # why it was refused


class TrancheLine(TypedDict):
    id: str
    bank: str
    borrower: str
    threshold: int  # the lowest score at which a tranche is paid out
    rate_bp: int  # interest of each tranche, in basis points of its amount
    state: str  # DRAWING, DRAWN (every tranche released), BLOCKED (one refused)
    tranches: tuple[Tranche, ...]
    next: int  # index of the next tranche to decide on


def get_record(view: StateView, prefix: str, record_id: str, kind: str) -> Any:
    record = view.get(prefix + record_id)
    if record is None:
        raise RuleViolation(f"no {kind} {record_id}")
    return record


def receivable(view: StateView, receivable_id: str) -> Receivable:
    return get_record(view, RECEIVABLE, receivable_id, "receivable")


def loan(view: StateView, loan_id: str) -> Loan:
    return get_record(view, LOAN, loan_id, "loan")


def task(view: StateView, task_id: str) -> Task:
    return get_record(view, TASK, task_id, "collection task")


def warehouse_receipt(view: StateView, receipt_id: str) -> WarehouseReceipt:
    return get_record(view, WAREHOUSE_RECEIPT, receipt_id, "warehouse receipt")


def tranche_line(view: StateView, line_id: str) -> TrancheLine:
    return get_record(view, TRANCHE_LINE, line_id, "credit line")


def make_loan(
    loan_id: str,
    bank: str,
    borrower: str,
    principal: int,
    amount_due: int,
    due_day: int,
    receivable: str | None = None,
    receipt: str | None = None,
    line: str | None = None,
) -> Loan:
    """A fresh ACTIVE loan: the one shape every kind of lending stores."""
    return {
        "id": loan_id,
        "bank": bank,
        "borrower": borrower,
        "principal": principal,
        "amount_due": amount_due,
        "repaid": 0,
        "recovered": 0,
        "due_day": due_day,
        "state": ACTIVE,
        "receivable": receivable,
        "task": None,
        "receipt": receipt,
        "line": line,
    }


def new_id(view: StateView, prefix: str, kind: str, tx_id: bytes, suffix: str = "") -> str:
    """A fresh id derived from the transaction id, so every node picks the same one."""
    record_id = f"{kind}-{tx_id.hex()[:16]}{suffix}"
    if view.get(prefix + record_id) is not None:
        raise RuleViolation(f"id {record_id} is taken")
    return record_id
