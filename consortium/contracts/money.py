"""Balances: money only moves between members, so the total stays what genesis issued."""

from __future__ import annotations

from consortium.contracts import records
from consortium.contracts.context import RuleViolation, StateView


def balance(view: StateView, member_id: str) -> int:
    return view.get(records.BALANCE + member_id) or 0


def move(view: StateView, payer: str, payee: str, amount: int) -> None:
    """Pay `amount` (>= 0) from `payer` to `payee`; the payer must have it."""
    if amount == 0 or payer == payee:
        return
    payer_key = records.BALANCE + payer
    have = view.get(payer_key) or 0
    if have < amount:
        raise RuleViolation(f"{payer} has {have}, needs {amount}")
    payee_key = records.BALANCE + payee
    view.put(payer_key, have - amount)
    view.put(payee_key, (view.get(payee_key) or 0) + amount)
