"""The regulator's report: everything open, owed and paid, read from state alone.

It also re-derives what the contracts maintain incrementally (credit used, split sums, one pledge
per token, loans in collection having a task, goods released and shipped within bounds, the
credit factors that records still show, tranche lines, securitisation pools: each pooled loan in
one pool, units conserved, no tranche repaid above its size, losses in order of seniority, the
pools' accounts) and lists any disagreement under `problems`, which stays empty on a sound
ledger. Failed transactions change no state, so attempted double financing shows up in the
blocks' failed receipts, not here.
"""

from __future__ import annotations

from typing import Any

from consortium.contracts import pricing, records, scoring
from consortium.contracts.clock import business_day
from consortium.contracts.context import StateView
from consortium.contracts.loans import outstanding
from consortium.contracts.money import balance
from consortium.contracts.pools import pool_principal
from consortium.contracts.records import (
    BLOCKED,
    COLLECTION,
    CONFIRMED,
    CONSUMED,
    DRAFTED,
    DRAWING,
    FORMING,
    LIQUIDATED,
    OPEN_LOAN_STATES,
    OPEN_RECEIPT_STATES,
    OPEN_RECEIVABLE_STATES,
    OPEN_TASK_STATES,
    PENDING,
    PLEDGED,
    RECOVERED,
    REFUSED,
    RELEASED,
    REPAID,
    RETIRED,
    SETTLED,
    STRUCTURED,
    WRITTEN_OFF,
    CreditFactors,
    Loan,
    Pool,
    Receivable,
    Task,
    TrancheLine,
    WarehouseReceipt,
)
from consortium.contracts.servicing import report_key
from consortium.contracts.warehouse import releasable
from consortium.contracts.waterfall import balance as tranche_balance

Groups = dict[str, dict[str, int]]
TASK_FIELDS = (
    "loan",
    "bank",
    "state",
    "agency",
    "rate_bp",
    "ceiling_bp",
    "recovered",
    "commission",
    "actions",
)


def _records(view: StateView, prefix: str) -> dict[str, Any]:
    """Every record of one kind by id, in id order."""
    return {key[len(prefix) :]: view.get(key) for key in view.keys_with_prefix(prefix)}


def _tally(groups: Groups, name: str, **amounts: int) -> None:
    group = groups.setdefault(name, {"count": 0, **dict.fromkeys(amounts, 0)})
    group["count"] += 1
    for field, amount in amounts.items():
        group[field] += amount


def _receivables(receivables: dict[str, Receivable], problems: list[str]) -> dict[str, Any]:
    by_state: Groups = {}
    open_pledges = []
    for rcv_id, rcv in receivables.items():
        _tally(by_state, rcv["state"], amount=rcv["amount"])
        if rcv["state"] == PLEDGED:
            open_pledges.append(
                {
                    "receivable": rcv_id,
                    "bank": rcv["pledgee"],
                    "holder": rcv["holder"],
                    "amount": rcv["amount"],
                    "loan": rcv["loan"],
                }
            )
        if rcv["state"] == CONSUMED:
            children = [receivables.get(child) for child in rcv["children"]]
            if (
                any(c is None or c["parent"] != rcv_id for c in children)
                or sum(c["amount"] for c in children if c is not None) != rcv["amount"]
            ):
                problems.append(f"split of {rcv_id} does not add up")
        if rcv["pledgee"] is not None and rcv["state"] not in (PLEDGED, SETTLED):
            problems.append(f"receivable {rcv_id} was pledged but is {rcv['state']}")
    return {"by_state": by_state, "open_pledges": open_pledges}


def _credit_lines(
    view: StateView, receivables: dict[str, Receivable], problems: list[str]
) -> dict[str, Any]:
    confirmed_open: dict[str, int] = {}
    for rcv in receivables.values():
        if rcv["state"] in (CONFIRMED, PLEDGED):
            confirmed_open[rcv["debtor"]] = confirmed_open.get(rcv["debtor"], 0) + rcv["amount"]
    lines = {}
    for core, line in _records(view, records.CREDIT).items():
        lines[core] = {"limit": line["limit"], "used": line["used"]}
        if line["used"] != confirmed_open.get(core, 0):
            problems.append(
                f"credit used by {core} is {line['used']}, open confirmed is "
                f"{confirmed_open.get(core, 0)}"
            )
    return lines


def _loans(
    loans: dict[str, Loan], receivables: dict[str, Receivable], today: int, problems: list[str]
) -> tuple[Groups, Groups, Groups]:
    """Loans by state; per bank the open exposure and how much of it pledges secure; overdue
    open loans by the pricing model's tiers."""
    by_state: Groups = {}
    exposure: Groups = {}
    overdue: Groups = {name: {"count": 0, "outstanding": 0} for name in pricing.TIER_NAMES}
    for loan_id, loan in loans.items():
        owed = outstanding(loan)
        _tally(by_state, loan["state"], principal=loan["principal"], outstanding=owed)
        if loan["state"] not in OPEN_LOAN_STATES:
            continue
        rcv = receivables.get(loan["receivable"] or "")
        secured = min(owed, rcv["amount"]) if rcv is not None and rcv["state"] == PLEDGED else 0
        bank = exposure.setdefault(
            loan["bank"], {"loans": 0, "outstanding": 0, "secured": 0, "unsecured": 0}
        )
        bank["loans"] += 1
        bank["outstanding"] += owed
        bank["secured"] += secured
        bank["unsecured"] += owed - secured
        if today > loan["due_day"]:
            _tally(overdue, pricing.overdue_tier(today - loan["due_day"]), outstanding=owed)
        if loan["state"] == COLLECTION and loan["task"] is None:
            problems.append(f"loan {loan_id} is in COLLECTION without a task")
    return by_state, exposure, overdue


def _receipts(
    view: StateView,
    receipts: dict[str, WarehouseReceipt],
    loans: dict[str, Loan],
    problems: list[str],
) -> dict[str, Any]:
    """Receipts by state (count and units), open pledges, and every liquidation."""
    by_state: Groups = {}
    open_pledges = []
    liquidated = []
    for receipt_id, r in receipts.items():
        _tally(by_state, r["state"], quantity=r["quantity"])
        if r["pledgee"] is not None and r["state"] in OPEN_RECEIPT_STATES:
            open_pledges.append(
                {
                    "receipt": receipt_id,
                    "bank": r["pledgee"],
                    "owner": r["owner"],
                    "warehouse": r["warehouse"],
                    "commodity": r["commodity"],
                    "quantity": r["quantity"],
                    "released": r["released"],
                    "shipped": r["shipped"],
                    "loan": r["loan"],
                }
            )
        if r["state"] == LIQUIDATED:
            liquidated.append(
                {
                    "receipt": receipt_id,
                    "bank": r["pledgee"],
                    "owner": r["owner"],
                    "commodity": r["commodity"],
                    "liquidated": r["liquidated"],
                    "proceeds": r["proceeds"],
                    "loan": r["loan"],
                }
            )
        if not 0 <= r["shipped"] <= r["released"] <= r["quantity"]:
            problems.append(f"receipt {receipt_id} shipped or released more than it holds")
        if view.get(f"{records.LOT}{r['warehouse']}/{r['lot']}") != receipt_id:
            problems.append(
                f"lot {r['lot']} of {r['warehouse']} does not name receipt {receipt_id}"
            )
        if r["loan"] is not None:
            loan = loans.get(r["loan"])
            if loan is None or loan["receipt"] != receipt_id:
                problems.append(f"receipt {receipt_id} and loan {r['loan']} do not name each other")
            elif r["state"] in (PLEDGED, RELEASED) and r["released"] > releasable(view, r):
                problems.append(f"receipt {receipt_id} released more than its loan's repaid share")
    return {"by_state": by_state, "open_pledges": open_pledges, "liquidated": liquidated}


def _tranche_lines(
    lines: dict[str, TrancheLine], loans: dict[str, Loan], problems: list[str]
) -> list[dict[str, Any]]:
    out = []
    for line_id, line in lines.items():
        tranches = line["tranches"]
        decided = [t["state"] != PENDING for t in tranches]
        if decided != [i < line["next"] for i in range(len(tranches))]:
            problems.append(f"credit line {line_id} decided tranches out of order")
        if (line["state"] == BLOCKED) != any(t["state"] == REFUSED for t in tranches):
            problems.append(f"credit line {line_id} is {line['state']} against its tranches")
        for index, t in enumerate(tranches):
            loan = loans.get(t["loan"] or "")
            if (t["loan"] is not None) != (t["state"] == RELEASED) or (
                t["loan"] is not None
                and (loan is None or loan["line"] != line_id or loan["principal"] != t["amount"])
            ):
                problems.append(f"tranche {index} of credit line {line_id} and its loan disagree")
        out.append(
            {
                "line": line_id,
                **{f: line[f] for f in ("bank", "borrower", "threshold", "rate_bp", "state")},
                "tranches": [dict(t) for t in tranches],
            }
        )
    return out


TRANCHE_FIELDS = (
    "name",
    "size",
    "units",
    "cancelled",
    "face",
    "coupon_bp",
    "principal_paid",
    "interest_paid",
    "interest_due",
    "losses",
    "residual_paid",
)


def _pool_problems(view: StateView, pool: Pool, problems: list[str]) -> None:
    pool_id = pool["id"]
    for loan_id in pool["loans"]:
        if view.get(records.POOLED + loan_id) != pool_id:
            problems.append(f"loan {loan_id} of pool {pool_id} is not marked as pooled there")
    tranches = pool["tranches"]
    issued = pool["state"] not in (FORMING, STRUCTURED)
    for index, t in enumerate(tranches):
        name = f"tranche {t['name']} of pool {pool_id}"
        if sum(t["holders"].values()) != t["sold"] or (issued and t["sold"] != t["units"]):
            problems.append(f"{name}: units held do not add up to the units sold")
        if t["principal_paid"] + t["losses"] > t["size"] or t["size"] != t["face"] * t["units"]:
            problems.append(f"{name} repaid or lost more than its size")
        if t["losses"] and any(tranche_balance(j) for j in tranches[index + 1 :]):
            problems.append(f"{name} took losses while a more junior tranche had a balance")
    escrow = balance(view, records.subscription_account(pool_id))
    sold = sum(t["sold"] * t["face"] for t in tranches) if pool["state"] == STRUCTURED else 0
    if escrow != sold:
        problems.append(f"pool {pool_id} holds {escrow} of subscriptions, units sold for {sold}")
    if pool["state"] == RETIRED and balance(view, records.collection_account(pool_id)):
        problems.append(f"pool {pool_id} is RETIRED with money in its collection account")


def _pools(view: StateView, problems: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every pool with its tranches, ratings and last servicing report; investors' holdings."""
    pools: dict[str, Pool] = _records(view, records.POOL)
    for loan_key in view.keys_with_prefix(records.POOLED):
        pool = pools.get(view.get(loan_key))
        if pool is None or loan_key[len(records.POOLED) :] not in pool["loans"]:
            problems.append(f"{loan_key} names a pool that does not list the loan")
    out = []
    holdings: dict[str, list[dict[str, Any]]] = {}
    for pool_id, pool in pools.items():
        _pool_problems(view, pool, problems)
        ratings = {
            agency: view.get(f"{records.RATING}{pool_id}/{agency}") for agency in pool["rated_by"]
        }
        tranches = []
        for index, t in enumerate(pool["tranches"]):
            grades = {agency: r["grades"][index] for agency, r in ratings.items()}
            tranches.append(
                {
                    **{f: t[f] for f in TRANCHE_FIELDS},
                    "outstanding": tranche_balance(t),
                    "holders": dict(t["holders"]),
                    "ratings": grades,
                }
            )
            for investor, units in t["holders"].items():
                holdings.setdefault(investor, []).append(
                    {"pool": pool_id, "tranche": t["name"], "units": units}
                )
        number = pool["distributions"]
        out.append(
            {
                "pool": pool_id,
                **{f: pool[f] for f in ("bank", "arranger", "state", "principal", "losses")},
                "loans": len(pool["loans"]),
                "defaulted": list(pool["defaulted"]),
                "outstanding_principal": pool_principal(view, pool),
                "collection_account": balance(view, records.collection_account(pool_id)),
                "granted": list(pool["granted"]),
                "rated_by": list(pool["rated_by"]),
                "distributions": number,
                "tranches": tranches,
                "last_report": view.get(report_key(pool_id, number)) if number else None,
            }
        )
    return out, {investor: holdings[investor] for investor in sorted(holdings)}


def _credit(
    factors: dict[str, CreditFactors],
    receivables: dict[str, Receivable],
    loans: dict[str, Loan],
    tasks: dict[str, Task],
    receipts: dict[str, WarehouseReceipt],
    problems: list[str],
) -> dict[str, Any]:
    """Every member's factors and score, checked against the counts records still show (a
    loan's overdue marks and the days late are history only the factors keep)."""
    derived: dict[str, dict[str, int]] = {}

    def bump(member_id: str, name: str, amount: int = 1) -> None:
        counts = derived.setdefault(member_id, {})
        counts[name] = counts.get(name, 0) + amount

    for rcv in receivables.values():
        if rcv["parent"] is None and rcv["state"] != DRAFTED:
            bump(rcv["drafter"], "confirmed")
            bump(rcv["drafter"], "confirmed_amount", rcv["amount"])
    for loan in loans.values():
        if loan["state"] in (REPAID, RECOVERED):
            bump(loan["borrower"], "closed")
        elif loan["state"] == WRITTEN_OFF:
            bump(loan["borrower"], "written_off")
    for task in tasks.values():
        bump(task["debtor"], "collection")
    for r in receipts.values():
        if r["state"] == LIQUIDATED:
            bump(r["owner"], "liquidated")
    for member_id in sorted(set(derived) - set(factors)):
        problems.append(f"{member_id} has credit history but no credit factors")
    report = {}
    for member_id, f in factors.items():
        counts = derived.get(member_id, {})
        shown = {**f, "closed": f["on_time"] + f["late"]}
        for name in ("confirmed", "confirmed_amount", "closed", "written_off", "collection"):
            if shown[name] != counts.get(name, 0):
                problems.append(
                    f"credit factor {name} of {member_id} is {shown[name]}, records show "
                    f"{counts.get(name, 0)}"
                )
        if f["liquidated"] != counts.get("liquidated", 0):
            problems.append(f"credit factor liquidated of {member_id} disagrees with receipts")
        report[member_id] = {"factors": dict(f), "score": scoring.credit_score(f)}
    return report


def _is_task_open(task: Task) -> bool:
    """Still running, or over with a commission not yet settled."""
    return task["state"] in OPEN_TASK_STATES or (
        task["state"] != SETTLED and task["agency"] is not None
    )


def audit_report(view: StateView) -> dict[str, Any]:
    """The regulator's view of the whole ledger as plain codec values."""
    today = business_day(view)
    problems: list[str] = []
    balances = _records(view, records.BALANCE)
    revoked: dict[str, int] = {}
    for entry in _records(view, records.PUBKEY).values():
        if entry["revoked"]:
            revoked[entry["member"]] = revoked.get(entry["member"], 0) + 1
    receivables = _records(view, records.RECEIVABLE)
    loans = _records(view, records.LOAN)
    tasks = _records(view, records.TASK)
    receipts = _records(view, records.WAREHOUSE_RECEIPT)
    lines = _records(view, records.TRANCHE_LINE)
    pools, holdings = _pools(view, problems)
    loans_by_state, exposure, overdue = _loans(loans, receivables, today, problems)
    commissions: dict[str, int] = {}
    for task in tasks.values():
        if task["commission"] is not None and task["agency"] is not None:
            commissions[task["agency"]] = commissions.get(task["agency"], 0) + task["commission"]
    return {
        "day": today,
        "total_money": sum(balances.values()),
        "balances": balances,
        "frozen": [m for m, record in _records(view, records.MEMBER).items() if record["frozen"]],
        "revoked_keys": revoked,
        "credit_lines": _credit_lines(view, receivables, problems),
        "receivables": _receivables(receivables, problems),
        "loans": {"by_state": loans_by_state},
        "exposure": exposure,
        "overdue": overdue,
        "collection": {
            "tasks": [
                {"task": t, **{f: task[f] for f in TASK_FIELDS}} for t, task in tasks.items()
            ],
            "commissions_paid": commissions,
        },
        "warehouse_receipts": _receipts(view, receipts, loans, problems),
        "tranche_lines": _tranche_lines(lines, loans, problems),
        "credit_scores": _credit(
            _records(view, records.CREDIT_FACTORS), receivables, loans, tasks, receipts, problems
        ),
        "pools": pools,
        "holdings": holdings,
        "open": {
            "receivables": sum(r["state"] in OPEN_RECEIVABLE_STATES for r in receivables.values()),
            "loans": sum(loan["state"] in OPEN_LOAN_STATES for loan in loans.values()),
            "tasks": sum(_is_task_open(task) for task in tasks.values()),
            "receipts": sum(r["state"] in OPEN_RECEIPT_STATES for r in receipts.values()),
            "tranche_lines": sum(line["state"] == DRAWING for line in lines.values()),
            "pools": sum(pool["state"] != RETIRED for pool in pools),
        },
        "problems": problems,
    }
