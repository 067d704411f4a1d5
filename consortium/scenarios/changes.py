"""What a step changed, as the regulator's node sees it: balances, freezes, and the tokens the
scenario touched, so the narration shows effects read from a ledger rather than restated."""

from __future__ import annotations

import re
from typing import Any

from consortium.contracts.records import BALANCE, LOAN, MEMBER, POOL, RECEIVABLE, TASK
from consortium.scenarios.ledger_view import NodeLedger

_RECORD_ID = re.compile(r"(rcv|loan|task|pool)-[0-9a-f]{16}(?:-\d+)?")
_PREFIX = {"rcv": RECEIVABLE, "loan": LOAN, "task": TASK, "pool": POOL}


def record_key(record_id: str) -> str | None:
    """The state key of a receivable, loan, task or pool id; None for anything else."""
    if _RECORD_ID.fullmatch(record_id) is None:
        return None
    return _PREFIX[record_id.split("-", 1)[0]] + record_id


def record_ids(value: Any) -> set[str]:
    """Every receivable, loan, task or pool id found in an argument or result value."""
    if isinstance(value, str):
        return {value} if _RECORD_ID.fullmatch(value) else set()
    if isinstance(value, list | tuple):
        return set().union(*(record_ids(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(record_ids(v) for v in value.values())) if value else set()
    return set()


def describe(key: str, record: dict[str, Any]) -> str:
    if key.startswith(RECEIVABLE):
        text = (
            f"{record['state']} {record['amount']:,} owed by {record['debtor']} to "
            f"{record['holder']}, due day {record['due_day']}"
        )
        return text + (f", pledged to {record['pledgee']}" if record["pledgee"] else "")
    if key.startswith(LOAN):
        return (
            f"{record['state']} {record['bank']} -> {record['borrower']}: repaid "
            f"{record['repaid']:,} of {record['amount_due']:,} (principal {record['principal']:,}),"
            f" due day {record['due_day']}"
        )
    if key.startswith(POOL):
        tranches = ", ".join(
            f"{t['name']} {t['size'] - t['principal_paid'] - t['losses']:,} of {t['size']:,}"
            for t in record["tranches"]
        )
        return (
            f"{record['state']} pool of {len(record['loans'])} loans of {record['bank']}"
            + (f"; outstanding {tranches}" if tranches else "")
            + (f"; {record['distributions']} distributions" if record["distributions"] else "")
            + (f"; losses {record['losses']:,}" if record["losses"] else "")
        )
    text = f"{record['state']} for loan {record['loan']} of {record['bank']}"
    if record["agency"]:
        text += f", agency {record['agency']} at {record['rate_bp']} bp"
    if record["recovered"]:
        text += f", recovered {record['recovered']:,}"
    if record["commission"] is not None:
        text += f", commission {record['commission']:,}"
    return text


class ChangeTracker:
    """Snapshots of balances, freezes and the tracked records; `changes` diffs two of them."""

    def __init__(self) -> None:
        self.tracked: set[str] = set()

    def track(self, value: Any) -> None:
        for record_id in record_ids(value):
            key = record_key(record_id)
            if key is not None:
                self.tracked.add(key)

    def snapshot(self, ledger: NodeLedger) -> dict[str, Any]:
        with ledger.snapshot():
            state = dict(ledger.values_with_prefix(BALANCE))
            for key, member in ledger.values_with_prefix(MEMBER).items():
                state[key] = member["frozen"]
            for key in self.tracked:
                state[key] = ledger.get(key)
        return state

    def changes(self, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        lines = []
        for key in sorted(after):
            old, new = before.get(key), after[key]
            if old == new or new is None:
                continue
            if key.startswith(BALANCE):
                old = old or 0
                lines.append(f"balance {key[len(BALANCE) :]}: {old:,} -> {new:,} ({new - old:+,})")
            elif key.startswith(MEMBER):
                member_id = key[len(MEMBER) :]
                if old is None:
                    lines.append(f"{member_id} joins the consortium")
                else:
                    lines.append(f"{member_id} {'frozen' if new else 'unfrozen'}")
            elif old is None:
                lines.append(f"{key.split('/', 1)[1]} new: {describe(key, new)}")
            elif old["state"] != new["state"]:
                lines.append(f"{key.split('/', 1)[1]}: {old['state']} -> {describe(key, new)}")
            elif describe(key, old) != describe(key, new):
                lines.append(f"{key.split('/', 1)[1]}: {describe(key, new)}")
        return lines
