"""The regulator's report: everything open, owed and paid, read from state alone.

It also re-derives what the contracts maintain incrementally (credit used, split sums, one pledge
per token, loans in collection having a task) and lists any disagreement under `problems`, which
stays empty on a sound ledger. Failed transactions change no state, so attempted double financing
shows up in the blocks' failed receipts, not here.
"""

from __future__ import annotations

from typing import Any

from consortium.contracts import pricing, records
from consortium.contracts.clock import business_day
from consortium.contracts.context import StateView
from consortium.contracts.loans import outstanding
from consortium.contracts.records import (
    COLLECTION,
    CONFIRMED,
    CONSUMED,
    OPEN_LOAN_STATES,
    OPEN_RECEIVABLE_STATES,
    OPEN_TASK_STATES,
    PLEDGED,
    SETTLED,
    Loan,
    Receivable,
    Task,
)

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
        "open": {
            "receivables": sum(r["state"] in OPEN_RECEIVABLE_STATES for r in receivables.values()),
            "loans": sum(loan["state"] in OPEN_LOAN_STATES for loan in loans.values()),
            "tasks": sum(_is_task_open(task) for task in tasks.values()),
        },
        "problems": problems,
    }
