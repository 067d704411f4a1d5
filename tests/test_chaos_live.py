"""Chaos on a real network: a fixed seed's faults, then every acknowledged transaction on every
node exactly once, equal heads, and every ledger verified from genesis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from consortium.chaos.checker import CheckReport
from consortium.chaos.network import fresh_network
from consortium.chaos.runner import ChaosSettings, run_chaos

pytestmark = [pytest.mark.live, pytest.mark.slow]

SEED = 7


def assert_nothing_lost(check: CheckReport) -> None:
    """Every acknowledged transaction on every node once, at its height; equal, verified heads."""
    assert check.lost == 0, check.problems
    assert check.duplicated == 0, check.problems
    assert check.misplaced == 0, check.problems
    assert check.heads_equal, check.problems
    assert check.ledgers_verified, check.problems


def test_chaos_with_a_fixed_seed_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    with fresh_network(tmp_path / "net", load_signers=16) as net:
        settings = ChaosSettings(duration_s=25.0, seed=SEED, clients=4, rest_timeout_s=30.0)
        report = asyncio.run(run_chaos(net.config, net.keys, settings))
    summary = report.as_json()
    assert sum(report.faults.values()) >= 3, summary["events"]
    assert report.acknowledged > 100, summary
    assert_nothing_lost(report.check)
    assert report.indeterminate == 0, report.problems  # all committed after the heal


BROKER_SEED = 12  # with a broker per organisation: in 12 s two brokers killed, a partition


def test_chaos_with_a_broker_per_organisation_kills_brokers_and_loses_nothing(
    tmp_path: Path,
) -> None:
    with fresh_network(tmp_path / "net", load_signers=16, broker_per_node=True) as net:
        assert net.config.per_node_brokers
        settings = ChaosSettings(duration_s=12.0, seed=BROKER_SEED, clients=4, rest_timeout_s=30.0)
        report = asyncio.run(run_chaos(net.config, net.keys, settings))
    summary = report.as_json()
    assert report.faults.get("broker_down", 0) >= 2, summary["events"]
    assert report.acknowledged > 100, summary
    assert_nothing_lost(report.check)
    assert report.indeterminate == 0, report.problems
