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


def new_id(view: StateView, prefix: str, kind: str, tx_id: bytes, suffix: str = "") -> str:
    """A fresh id derived from the transaction id, so every node picks the same one."""
    record_id = f"{kind}-{tx_id.hex()[:16]}{suffix}"
    if view.get(prefix + record_id) is not None:
        raise RuleViolation(f"id {record_id} is taken")
    return record_id
