"""The whole-node simulator: the real node core, ledger, contracts and store under seeded faults,
and its checkers shown to catch what they look for."""

from __future__ import annotations

import dataclasses

import pytest

from consortium.contracts import OPERATIONS, receivables
from consortium.errors import SignatureError
from consortium.node import core as node_core
from consortium.sim.business import sealed_for
from consortium.sim.runner import SimSettings, run_seed
from consortium.sim.sweep import sweep
from consortium.sim.whole import NODE_CONSENSUS, member_key

NODE = SimSettings(app="node", consensus=NODE_CONSENSUS)


def test_a_short_sweep_is_safe_live_and_keeps_the_business_rules() -> None:
    report = sweep(range(6), NODE)
    summary = report.summary()
    assert summary["failing_seeds"] == [], [r.safety_violations for r in report.failures]
    assert summary["business_invariant_violations"] == 0
    assert summary["committed_txs_per_seed"]["min"] >= 200
    ops = summary["operations"]
    assert sorted(op for op in OPERATIONS if not ops.get(op)) == []
    for op in ("receivable.confirm", "receivable.pledge", "loan.lend", "collection.bid"):
        assert ops.get(f"{op}:failed", 0) > 0, op


def test_a_sealed_box_of_the_workload_opens_for_its_recipient_only() -> None:
    reader, other = member_key("agency"), member_key("agency-2")
    box = sealed_for(reader.public_key, b"contact data", bytes(32))
    assert box == sealed_for(reader.public_key, b"contact data", bytes(32))
    assert reader.open_sealed(box) == b"contact data"
    with pytest.raises(SignatureError):
        other.open_sealed(box)


def test_the_same_seed_gives_the_same_trace() -> None:
    first, again = run_seed(3, NODE), run_seed(3, NODE)
    assert first.ok and first.trace_hash == again.trace_hash
    assert first.committed_txs == again.committed_txs
    assert run_seed(4, NODE).trace_hash != first.trace_hash


def test_money_made_from_nothing_is_a_business_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: settling a receivable pays its holder twice."""
    original = receivables.move

    def generous(view, payer, payee, amount):  # type: ignore[no-untyped-def]
        original(view, payer, payee, amount)
        if amount:
            balance = view.get("bal/" + payee) or 0
            view.put("bal/" + payee, balance + amount)

    monkeypatch.setattr(receivables, "move", generous)
    results = [run_seed(seed, NODE) for seed in range(3)]
    assert any(r.business_invariant_violations for r in results)
    assert all(not r.ok for r in results if r.business_invariant_violations)


def test_a_node_that_answers_for_the_wrong_block_is_caught(monkeypatch: pytest.MonkeyPatch):
    """Planted bug: commit notices name the parent's hash, so clients accept outcomes that no
    canonical block holds."""
    original = node_core.CommitNotice

    def wrong_hash(node, height, block_hash, day, receipts, signature=b""):  # type: ignore[no-untyped-def]
        return original(node, height, bytes(32), day, receipts, signature)

    monkeypatch.setattr(node_core, "CommitNotice", wrong_hash)
    result = run_seed(1, dataclasses.replace(NODE, liveness_budget_ms=5_000))
    assert any("not canonical" in v for v in result.safety_violations), result.safety_violations


def test_a_byzantine_node_that_refuses_requests_does_not_crash_the_simulation() -> None:
    """Seed 142: a node that lies to clients refuses a batch as overloaded; its refusal must
    reach the clients as it is (the liar used to take every answer for a commit notice)."""
    result = run_seed(142, NODE)
    assert result.ok, result.safety_violations or result.liveness_failure
