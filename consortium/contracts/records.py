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
    pool/<id>              Pool: loans securitised together, their tranches and holders
    pooled/<loan>          id of the pool the loan went into (a loan gets one pool, ever)
    grant/<pool>/<agency>  sealed boxes of the pool's loan-level data, by recipient
    rating/<pool>/<agency> Rating of the pool's tranches by a granted rating agency
    report/<pool>/<n>      ServicingReport of distribution n, zero-padded to 4 digits
    trade/<pool>/<trade>   Trade: a delivery-versus-payment transfer of units (a trade id, once)
    bal/<pool>/collection  the pool's collection account: repayments of its loans
    bal/<pool>/subscriptions  what investors paid for units until the pool is issued
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
POOL = "pool/"
POOLED = "pooled/"
RATING = "rating/"
SERVICING_REPORT = "report/"
TRADE = "trade/"

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

# Pool states (ISSUED is shared with warehouse receipts)
FORMING = "FORMING"
STRUCTURED = "STRUCTURED"
RETIRED = "RETIRED"


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


class PoolTranche(TypedDict):
    """One tranche of a pool; a pool lists them senior first, which is their priority."""

    cancelled: int  # units offered and not sold, cancelled at issue
    coupon_bp: int  # yearly interest on the outstanding balance, in basis points
    face: int  # money per unit
    holders: dict[str, int]  # investor -> units, keys sorted
    interest_due: int  # accrued and not yet paid
    interest_paid: int
    losses: int  # principal written down by defaulted loans and not yet won back
    name: str
    principal_paid: int  # never above size - losses
    residual_paid: int  # the pool's remainder paid at its last distribution
    size: int  # face * units; unsold units are cancelled at issue, shrinking it
    sold: int  # units subscribed
    units: int  # units offered, then (once issued) the units outstanding


class Pool(TypedDict):
    id: str
    bank: str  # originator and servicer
    arranger: str
    loans: tuple[str, ...]
    principal: int  # the loans' outstanding principal when pooled
    data_commitment: bytes  # SHA-256 of the loan-level data sealed to granted parties
    period_days: int  # days between distributions
    default_days: int  # a loan this many days past due counts as defaulted
    state: str  # FORMING, STRUCTURED, ISSUED, RETIRED
    tranches: tuple[PoolTranche, ...]
    rated_by: tuple[str, ...]  # rating agencies that published a rating, sorted
    granted: tuple[str, ...]  # rating agencies granted the data, sorted
    defaulted: tuple[str, ...]  # loans whose loss was allocated, in order of default
    losses: int  # all principal lost to defaults
    issued_day: int | None
    last_day: int | None  # day interest was last accrued (the issue or the last distribution)
    distributions: int
    carried: int  # left in the collection account by the last distribution


class Rating(TypedDict):
    agency: str
    day: int
    grades: tuple[str, ...]  # one per tranche, in the pool's order
    report: bytes  # SHA-256 of the rating report
    version: int  # ratings the agency published for the pool so far


class Trade(TypedDict):
    buyer: str
    day: int
    price: int
    seller: str
    tranche: str
    units: int


class ServicingReport(TypedDict):
    pool: str
    number: int
    day: int
    available: int  # in the collection account at the start
    collected: int  # repayments since the last distribution
    defaults: tuple[str, ...]  # loans found defaulted now
    loss: int  # their outstanding principal
    tranches: tuple[dict[str, Any], ...]  # per tranche: name, interest, principal (reinstated
    # being the part that won back earlier write-downs), residual, absorbed (loss written down
    # now), outstanding (balance after)
    paid: int  # to holders in total
    carried: int  # left in the collection account
    pool_principal: int  # outstanding principal of the loans not defaulted
    final: bool


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


def pool(view: StateView, pool_id: str) -> Pool:
    return get_record(view, POOL, pool_id, "pool")


def collection_account(pool_id: str) -> str:
    """The balance a pooled loan's repayments go to; no member id contains a slash."""
    return f"{pool_id}/collection"


def subscription_account(pool_id: str) -> str:
    return f"{pool_id}/subscriptions"


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


def derived_id(kind: str, tx_id: bytes, suffix: str = "") -> str:
    """The id a transaction gives what it creates: every node derives the same one."""
    return f"{kind}-{tx_id.hex()[:16]}{suffix}"


def new_id(view: StateView, prefix: str, kind: str, tx_id: bytes, suffix: str = "") -> str:
    """A fresh id derived from the transaction id, so every node picks the same one."""
    record_id = derived_id(kind, tx_id, suffix)
    if view.get(prefix + record_id) is not None:
        raise RuleViolation(f"id {record_id} is taken")
    return record_id
