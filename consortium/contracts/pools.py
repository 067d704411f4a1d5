"""Securitisation pools: a bank's loans put together, structured into tranches and rated.

FORMING (the bank pools ACTIVE loans it granted, none overdue, none pooled before: a loan goes
into one pool in its life, and from then on its repayments go to the pool's collection account)
-> STRUCTURED (the arranger the bank named defines the tranches once, senior first, their sizes
adding up to no more than the loans' outstanding principal) -> rated by rating agencies the bank
granted the loan-level data to (sealed to the agency and the regulators; an agency without the
grant sees only what every member sees: the aggregates) -> ISSUED and serviced (`issuance`,
`servicing`).
"""

from __future__ import annotations

from typing import Any

from consortium.contracts import records
from consortium.contracts.args import Args
from consortium.contracts.clock import business_day
from consortium.contracts.context import RuleViolation, StateView, TxContext
from consortium.contracts.loans import outstanding_principal
from consortium.contracts.records import (
    ACTIVE,
    FORMING,
    ISSUED,
    OPEN_LOAN_STATES,
    RETIRED,
    STRUCTURED,
    Pool,
    PoolTranche,
    Rating,
)
from consortium.contracts.registry import Caller, active_member, require_role
from consortium.contracts.sealing import sealed_boxes
from consortium.crypto import HASH_BYTES
from consortium.roles import Role

MAX_POOL_LOANS = 64
MAX_TRANCHES = 5
MAX_TRANCHE_NAME = 16
MAX_UNITS = 1_000_000
MAX_COUPON_BP = 5000
MAX_PERIOD_DAYS = 3650
MAX_GRADE = 8


def store(view: StateView, pool: Pool) -> None:
    view.put(records.POOL + pool["id"], pool)


def tranche_index(pool: Pool, name: str) -> int:
    for index, tranche in enumerate(pool["tranches"]):
        if tranche["name"] == name:
            return index
    raise RuleViolation(f"pool {pool['id']} has no tranche {name}")


def pool_principal(view: StateView, pool: Pool) -> int:
    """Outstanding principal of the pool's open loans that have not defaulted."""
    total = 0
    for loan_id in pool["loans"]:
        loan = records.loan(view, loan_id)
        if loan["state"] in OPEN_LOAN_STATES and loan_id not in pool["defaulted"]:
            total += outstanding_principal(loan)
    return total


def _own_pool(view: StateView, who: Caller, args: Args) -> Pool:
    require_role(who, Role.BANK)
    pool = records.pool(view, args.object_id("pool"))
    if pool["bank"] != who.id:
        raise RuleViolation(f"pool {pool['id']} belongs to {pool['bank']}, not {who.id}")
    return pool


def create(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """Pool loans the bank granted that are ACTIVE, not overdue and never pooled; name the
    arranger, the days between distributions, the days past due at which a loan counts as
    defaulted, and commit to the loan-level data that granted parties will read."""
    require_role(who, Role.BANK)
    loan_ids = args.object_ids("loans", MAX_POOL_LOANS)
    arranger = args.member("arranger")
    period_days = args.integer("period_days", 1, MAX_PERIOD_DAYS)
    default_days = args.integer("default_days", 0, MAX_PERIOD_DAYS)
    commitment = args.blob("data_commitment", HASH_BYTES, HASH_BYTES)
    active_member(view, arranger, Role.ARRANGER, "arranger")
    today = business_day(view)
    pool_id = records.new_id(view, records.POOL, "pool", ctx.tx_id)
    principal = 0
    for loan_id in loan_ids:
        loan = records.loan(view, loan_id)
        if loan["bank"] != who.id:
            raise RuleViolation(f"loan {loan_id} was lent by {loan['bank']}, not {who.id}")
        earlier = view.get(records.POOLED + loan_id)
        if earlier is not None:
            raise RuleViolation(f"loan {loan_id} is in pool {earlier} already")
        if loan["state"] != ACTIVE or today > loan["due_day"]:
            raise RuleViolation(
                f"loan {loan_id} is {loan['state']} and due on day "
                f"{loan['due_day']}; only an ACTIVE loan not past its due day can be pooled"
            )
        principal += outstanding_principal(loan)
        view.put(records.POOLED + loan_id, pool_id)
    # Keys in canonical (sorted) order: the state encodes the record without re-sorting it.
    pool: Pool = {
        "arranger": arranger,
        "bank": who.id,
        "carried": 0,
        "data_commitment": commitment,
        "default_days": default_days,
        "defaulted": (),
        "distributions": 0,
        "granted": (),
        "id": pool_id,
        "issued_day": None,
        "last_day": None,
        "loans": loan_ids,
        "losses": 0,
        "period_days": period_days,
        "principal": principal,
        "rated_by": (),
        "state": FORMING,
        "tranches": (),
    }
    store(view, pool)
    return {"pool": pool_id, "principal": principal}


def structure(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """The pool's arranger defines its tranches once, senior first: each a whole number of
    units, the sizes together within the pool's outstanding principal."""
    require_role(who, Role.ARRANGER)
    pool = records.pool(view, args.object_id("pool"))
    terms = args.tranche_terms("tranches", MAX_TRANCHES, MAX_TRANCHE_NAME, MAX_UNITS, MAX_COUPON_BP)
    if pool["arranger"] != who.id:
        raise RuleViolation(f"pool {pool['id']} is arranged by {pool['arranger']}, not {who.id}")
    if pool["state"] != FORMING:
        raise RuleViolation(f"pool {pool['id']} is {pool['state']}, not FORMING")
    names = [name for name, _, _, _ in terms]
    if len(set(names)) != len(names):
        raise RuleViolation("tranche names must differ")
    for name, size, units, _ in terms:
        if size % units:
            raise RuleViolation(
                f"tranche {name}: size {size} is not a whole number of {units} units"
            )
    total = sum(size for _, size, _, _ in terms)
    available = pool_principal(view, pool)
    if total > available:
        raise RuleViolation(
            f"tranches total {total}, more than the pool's outstanding principal {available}"
        )
    tranches: list[PoolTranche] = [
        {
            "cancelled": 0,
            "coupon_bp": coupon_bp,
            "face": size // units,
            "holders": {},
            "interest_due": 0,
            "interest_paid": 0,
            "losses": 0,
            "name": name,
            "principal_paid": 0,
            "residual_paid": 0,
            "size": size,
            "sold": 0,
            "units": units,
        }
        for name, size, units, coupon_bp in terms
    ]
    store(view, {**pool, "state": STRUCTURED, "tranches": tuple(tranches)})
    return {"tranches": len(tranches), "principal": available}


def grant_data(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    """The bank seals the pool's loan-level data to one rating agency and the regulators; each
    agency is granted once, and only what it is granted it can read."""
    pool = _own_pool(view, who, args)
    agency = args.member("agency")
    active_member(view, agency, Role.RATING_AGENCY, "agency")
    if pool["state"] == RETIRED:
        raise RuleViolation(f"pool {pool['id']} is RETIRED")
    if agency in pool["granted"]:
        raise RuleViolation(f"{agency} was granted the data of pool {pool['id']} already")
    sealed = sealed_boxes(view, args, "ciphertexts", {agency})
    view.put(f"{records.GRANT}{pool['id']}/{agency}", sealed)
    store(view, {**pool, "granted": tuple(sorted((*pool["granted"], agency)))})


def rate(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, int]:
    """A granted rating agency grades every tranche and publishes the hash of its report; a
    later rating by the same agency replaces its earlier one."""
    require_role(who, Role.RATING_AGENCY)
    pool = records.pool(view, args.object_id("pool"))
    grades = args.texts("grades", MAX_TRANCHES, MAX_GRADE)
    report = args.blob("report", HASH_BYTES, HASH_BYTES)
    if who.id not in pool["granted"]:
        raise RuleViolation(f"{who.id} has not been granted the data of pool {pool['id']}")
    if pool["state"] not in (STRUCTURED, ISSUED):
        raise RuleViolation(f"pool {pool['id']} is {pool['state']}, not STRUCTURED or ISSUED")
    if len(grades) != len(pool["tranches"]):
        raise RuleViolation(
            f"pool {pool['id']} has {len(pool['tranches'])} tranches, not {len(grades)} grades"
        )
    key = f"{records.RATING}{pool['id']}/{who.id}"
    earlier: Rating | None = view.get(key)
    rating: Rating = {
        "agency": who.id,
        "day": business_day(view),
        "grades": grades,
        "report": report,
        "version": 1 if earlier is None else earlier["version"] + 1,
    }
    view.put(key, rating)
    if who.id not in pool["rated_by"]:
        store(view, {**pool, "rated_by": tuple(sorted((*pool["rated_by"], who.id)))})
    return {"version": rating["version"]}
