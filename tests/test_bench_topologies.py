"""`bench consensus --brokers both`: the same load on one shared broker and on brokers bridged per
organisation, one run each, side by side (the measuring itself is the benchmark's, not a test's)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from consortium.bench import consensus
from consortium.bench.consensus import ConsensusResult
from consortium.cli.main import cli


def fake_result(broker_per_node: bool, **_: object) -> ConsensusResult:
    committed = 800.0 if broker_per_node else 1000.0
    return ConsensusResult(
        nodes=5,
        duration_s=10.0,
        batch_max_txs=2000,
        offered_tx_per_s=1000.0,
        window=None,
        committed_tx_per_s=committed,
        latency_ms={"p50": 40.0, "p95": 90.0, "p99": 120.0},
        view_changes=0,
        verify_per_s_1core=24_000,
        cores=2,
        bound_tx_per_s=9_600,
        efficiency=committed / 9_600,
        sent=10_000,
        accepted=10_000,
        failed_receipts=0,
        refused=0,
        cpu_percent={"mosquitto-bank-a": 5.0} if broker_per_node else {"mosquitto": 4.0},
        brokers="per_node" if broker_per_node else "shared",
    )


def test_both_topologies_are_measured_and_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []

    def run(**kwargs: object) -> ConsensusResult:
        calls.append(bool(kwargs["broker_per_node"]))
        return fake_result(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(consensus, "run_consensus_bench", run)
    done = CliRunner().invoke(cli, ["bench", "consensus", "--brokers", "both", "--json"])
    assert done.exit_code == 0, done.output
    figures = json.loads(done.stdout)
    assert calls == [False, True]
    assert figures["shared"]["brokers"] == "shared"
    assert figures["per_node"]["brokers"] == "per_node"
    assert figures["per_node"]["committed_tx_per_s"] == 800.0
    assert figures["per_node_vs_shared"] == 0.8
    table = CliRunner().invoke(cli, ["bench", "consensus", "--brokers", "both"])
    assert table.exit_code == 0, table.output
    assert "broker per organisation" in table.stdout and "800 tx/s" in table.stdout


def test_both_topologies_take_no_sweep_or_plot() -> None:
    done = CliRunner().invoke(cli, ["bench", "consensus", "--brokers", "both", "--sweep"])
    assert done.exit_code == 2
    assert "--brokers both compares one run of each" in done.output
