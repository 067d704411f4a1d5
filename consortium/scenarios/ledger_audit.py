"""The regulator's audit, as the regulator's own node sees it: state and failed receipts.

The contracts' `audit_report` covers what is open, owed and paid; failed transactions change no
state, so attempted double financing and forged confirmations are found in the stored blocks'
failed receipts, each with its height, sender, operation and reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from consortium.config import NetworkConfig
from consortium.contracts import audit_report
from consortium.contracts.loans import outstanding
from consortium.contracts.records import LOAN, OPEN_LOAN_STATES, OPEN_RECEIVABLE_STATES, RECEIVABLE
from consortium.errors import ConfigError
from consortium.ledger.tx import decode_transaction
from consortium.roles import Role
from consortium.scenarios.ledger_view import NodeLedger


@dataclass(frozen=True, slots=True)
class RejectedTx:
    height: int
    tx_id: str
    sender: str
    op: str
    reason: str


def regulator_node(config: NetworkConfig) -> str:
    for node in config.nodes:
        if node.role == Role.REGULATOR:
            return node.id
    raise ConfigError(f"{config.path}: no node is run by a regulator")


def rejected_transactions(ledger: NodeLedger, start_height: int = 1) -> list[RejectedTx]:
    """Every transaction with a failed receipt from `start_height` on, in chain order."""
    found = []
    for block in ledger.blocks(start_height):
        receipts = block.decoded_receipts()
        if all(receipt.ok for receipt in receipts):
            continue
        txs = {stx.tx_id: stx for stx in (decode_transaction(raw) for raw in block.txs)}
        for receipt in receipts:
            if receipt.ok:
                continue
            stx = txs.get(receipt.tx_id)
            found.append(
                RejectedTx(
                    block.height,
                    receipt.tx_id.hex(),
                    stx.tx.sender if stx else "?",
                    stx.tx.op if stx else "?",
                    receipt.reason,
                )
            )
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def open_receivables(ledger: NodeLedger) -> list[dict[str, Any]]:
    return [
        {
            key: rcv[key]
            for key in ("id", "state", "holder", "debtor", "amount", "due_day", "pledgee", "loan")
        }
        for rcv in ledger.values_with_prefix(RECEIVABLE).values()
        if rcv["state"] in OPEN_RECEIVABLE_STATES
    ]


def open_loans(ledger: NodeLedger, today: int) -> list[dict[str, Any]]:
    return [
        {
            **{key: loan[key] for key in ("id", "bank", "borrower", "state", "principal")},
            "outstanding": outstanding(loan),
            "due_day": loan["due_day"],
            "days_overdue": max(0, today - loan["due_day"]),
            "receivable": loan["receivable"],
            "task": loan["task"],
        }
        for loan in ledger.values_with_prefix(LOAN).values()
        if loan["state"] in OPEN_LOAN_STATES
    ]


def regulator_audit(ledger: NodeLedger, config: NetworkConfig) -> dict[str, Any]:
    """The full report at one height of `ledger` (JSON-ready). Money is only ever issued at
    genesis, so any other total is listed under `problems`."""
    issued = sum(config.genesis.balances.values())
    with ledger.snapshot():
        height = ledger.height()
        head = ledger.store.block(height)
        report = audit_report(ledger)
        report |= {
            "node": ledger.node_id,
            "height": height,
            "head_hash": head.hash.hex() if head else None,
            "open_receivables": open_receivables(ledger),
            "open_loans": open_loans(ledger, report["day"]),
            "rejected_txs": [asdict(tx) for tx in rejected_transactions(ledger)],
            "genesis_money": issued,
        }
        if report["total_money"] != issued:
            report["problems"].append(
                f"{report['total_money']:,} in circulation, genesis issued {issued:,}"
            )
    return _jsonable(report)
