"""The scenarios of DOMAIN.md on a real five-node network, in order, on one network; the
regulator's audit afterwards; and a scenario whose expectation is wrong failing loudly."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from consortium.cli.common import ConsortiumGroup
from consortium.cli.scenario_cmd import scenario
from consortium.devnet import Devnet
from consortium.scenarios.ledger_audit import regulator_audit
from consortium.scenarios.ledger_view import NodeLedger
from consortium.scenarios.loader import builtin_scenarios
from consortium.scenarios.narration import SilentNarrator
from consortium.scenarios.results import ScenarioResult
from consortium.scenarios.runner import ScenarioRunner
from tests.network_helpers import live_network, statuses, wait_for

pytestmark = [pytest.mark.live, pytest.mark.slow]

RUN_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Story:
    net: Devnet
    results: dict[str, ScenarioResult]
    audit: dict[str, Any]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """One network: the scenarios in order, then the regulator's audit of it."""
    with live_network(tmp_path_factory.mktemp("scenarios")) as net:
        wait_for(lambda: len(statuses(net)) == len(net.config.node_ids), 30)
        runner = ScenarioRunner(net.config, net.keys, SilentNarrator())
        results = asyncio.run(
            asyncio.wait_for(runner.run(builtin_scenarios()), timeout=RUN_TIMEOUT_S)
        )
        ledger = NodeLedger(net.config, "regulator")
        try:
            report = regulator_audit(ledger, net.config)
        finally:
            ledger.close()
        yield Story(net, {r.name: r for r in results}, report)


def test_every_scenario_passes_on_a_live_network(story: Story):
    assert list(story.results) == [
        "happy-path",
        "double-financing",
        "forged-confirmation",
        "default-to-collection",
        "repayment-and-freeze",
        "warehouse-receipt-loan",
        "tranche-credit-line",
        "securitisation",
    ]
    for result in story.results.values():
        assert result.passed, result.failure
        assert result.steps and all(step.passed for step in result.steps)
        assert all(step.height for step in result.steps)
    same_block = [s for s in story.results["double-financing"].steps if s.expected == "one block"]
    assert len(same_block) == 1 and same_block[0].passed


def test_the_audit_matches_what_the_scenarios_did(story: Story):
    audit = story.audit
    expected_rejections = {
        step.tx_id: step.reason
        for result in story.results.values()
        for step in result.steps
        if step.expected.startswith("rejected")
    }
    # 5 + 6 + 4 + 2 in scenarios 2 to 5, 8 + 1 in 6 and 7, 4 in 8
    assert len(expected_rejections) == 30
    assert {tx["tx_id"]: tx["reason"] for tx in audit["rejected_txs"]} == expected_rejections
    forged = story.results["forged-confirmation"].saved
    assert {r["id"]: r["state"] for r in audit["open_receivables"]} == {
        forged["invoice"]: "DRAFTED",
        forged["on_new_core"]: "CONFIRMED",
    }
    collection = story.results["default-to-collection"].saved
    securitised = story.results["securitisation"].saved
    assert {(loan["id"], loan["state"], loan["outstanding"]) for loan in audit["open_loans"]} == {
        (collection["loan"], "OVERDUE", 350_000),
        (securitised["loan_d"], "OVERDUE", 262_500),
    }
    assert audit["exposure"] == {
        "bank-a": {"loans": 2, "outstanding": 612_500, "secured": 0, "unsecured": 612_500}
    }
    (pool,) = audit["pools"]
    assert (pool["pool"], pool["state"], pool["distributions"]) == (
        securitised["pool"],
        "ISSUED",
        2,
    )
    assert [t["losses"] for t in pool["tranches"]] == [0, 90_175]
    assert pool["last_report"]["loss"] == 250_000
    assert audit["holdings"]["investor-3"] == [
        {"pool": securitised["pool"], "tranche": "senior", "units": 400}
    ]
    assert audit["collection"]["commissions_paid"] == {"agency": 26_000}
    assert audit["frozen"] == []
    assert audit["revoked_keys"] == {forged["new_core"]: 1}
    assert audit["problems"] == []
    assert audit["total_money"] == audit["genesis_money"]


WRONG = """
name: wrong-expectation
steps:
  - name: draft a receivable
    as: supplier-a
    via: bank-a
    op: receivable.draft
    args: {debtor: core, amount: 1000, due_day: today+30}
    expect: committed
    save: {rcv: receivable}
  - name: pledge the unconfirmed draft
    as: supplier-a
    via: bank-b
    op: receivable.pledge
    args: {receivable: $rcv, bank: bank-a}
    expect: committed
  - name: never reached
    as: regulator
    via: regulator
    op: clock.advance
    args: {days: 1}
    expect: committed
"""


def test_a_wrong_expectation_fails_the_run_and_names_the_step(story: Story, tmp_path: Path):
    path = tmp_path / "wrong.yaml"
    path.write_text(textwrap.dedent(WRONG))
    group = ConsortiumGroup(commands={"scenario": scenario})
    config = str(story.net.config.path)
    result = CliRunner().invoke(group, ["scenario", "run", str(path), "--config", config])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "wrong-expectation: step 'pledge the unconfirmed draft' (steps[1] of " in result.output
    assert "expected committed, got rejected: receivable rcv-" in result.output
    assert "is DRAFTED, not CONFIRMED" in result.output

    as_json = CliRunner().invoke(
        group, ["scenario", "run", str(path), "--config", config, "--json"]
    )
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    (run,) = report["scenarios"]
    assert report["passed"] is False and run["passed"] is False
    assert [(s["name"], s["passed"]) for s in run["steps"]] == [
        ("draft a receivable", True),
        ("pledge the unconfirmed draft", False),
        ("never reached", False),
    ]
    assert run["steps"][1]["expected"] == "committed"
    assert run["steps"][1]["outcome"].startswith("rejected: receivable rcv-")
    assert run["steps"][2]["outcome"] == "not run"
