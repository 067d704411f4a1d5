"""The paper's count as a check of the implementation: in a fault-free run every committed block
costs exactly the normal case of PBFT (Castro and Liskov 1999, section 4.2) in PRE-PREPARE,
PREPARE and COMMIT messages, and checkpoints every K blocks. A replica that sent one vote too
many or too few per block would show here."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from consortium.cli.sim_cmd import sim
from consortium.sim.cost import normal_case_messages
from consortium.sim.runner import SimSettings
from consortium.sim.sweep import sweep
from consortium.sim.whole import NODE_CONSENSUS


@pytest.mark.parametrize(("app", "n"), [("node", 4), ("node", 7), ("model", 5)])
def test_a_fault_free_run_costs_the_papers_normal_case(app: str, n: int) -> None:
    settings = SimSettings(nodes=n, app=app, faults=False)
    if app == "node":
        settings = SimSettings(nodes=n, app=app, faults=False, consensus=NODE_CONSENSUS)
    report = sweep(range(1), settings, workers=1)
    assert report.failing_seeds == [] and report.view_changes == 0
    assert sum(report.faults.values()) == 0
    blocks = report.blocks
    assert blocks > 20
    interval = settings.consensus.checkpoint_interval
    paper = normal_case_messages(n, interval)
    measured = report.messages_by_kind
    for phase in ("PrePrepare", "Prepare", "Commit"):
        assert measured[phase] == paper[phase] * blocks, phase
    checkpoints = measured.get("Checkpoint", 0)
    assert paper["Checkpoint"] * (blocks - interval) <= checkpoints <= paper["Checkpoint"] * blocks
    assert not {"ViewChange", "NewView", "Fetch"} & set(measured)


def test_the_cli_reports_the_papers_count_beside_the_measured_one() -> None:
    result = CliRunner().invoke(sim, ["--faults", "none", "--nodes", "4", "--seed", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["paper_messages_per_block"]["Prepare"] == 9
    assert report["messages_per_block_by_kind"]["Prepare"] == 9
    assert report["faults"] == dict.fromkeys(report["faults"], 0)
