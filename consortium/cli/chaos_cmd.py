"""`consortium chaos`: faults on the live network under a workload, then a check of every node."""

from __future__ import annotations

import asyncio
import secrets

import click

from consortium.chaos.runner import ChaosReport, ChaosSettings, run_chaos
from consortium.cli.checked_run import broker_per_node_option, err, run_checked
from consortium.cli.common import config_option, json_option
from consortium.config import NetworkConfig
from consortium.keys import KeyDirectory


def _run(config: NetworkConfig, keys: KeyDirectory, settings: ChaosSettings) -> ChaosReport:
    return asyncio.run(run_chaos(config, keys, settings, progress=lambda m: err.print(m)))


def _summary(report: ChaosReport) -> str:
    check = report.check
    return (
        f"seed {report.seed}: {report.acknowledged} acknowledged, lost {check.lost},"
        f" duplicated {check.duplicated}, view changes {report.view_changes},"
        f" longest stall {report.max_stall_s:.1f} s, heads equal {check.heads_equal},"
        f" ledgers verified {check.ledgers_verified}; faults "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items()))
    )


@click.command()
@click.option(
    "--duration",
    "duration_s",
    default=60.0,
    show_default=True,
    type=click.FloatRange(5, 3600),
    help="Seconds of faults before the heal.",
)
@click.option("--seed", default=None, type=click.IntRange(0, 2**63 - 1), help="Replay this seed.")
@click.option("--clients", default=4, show_default=True, type=click.IntRange(1, 8))
@click.option(
    "--fresh",
    is_flag=True,
    help="Run against a new network of its own on a free port (ignores --config).",
)
@broker_per_node_option
@json_option
@config_option
def chaos(
    duration_s: float,
    seed: int | None,
    clients: int,
    fresh: bool,
    broker_per_node: bool,
    as_json: bool,
    config_path: str,
) -> None:
    """A workload of acknowledged transactions while a seeded nemesis kills, restarts, pauses,
    partitions and delays up to f nodes (the primary often), and with a broker per organisation
    kills their brokers too; then heal, rest, and check that every
    acknowledged transaction is on every node exactly once, the heads agree and every ledger
    verifies. Exits 1 if any check fails."""
    chosen = seed if seed is not None else secrets.randbelow(2**31)
    settings = ChaosSettings(duration_s=duration_s, seed=chosen, clients=clients)
    run_checked(
        "chaos",
        fresh,
        config_path,
        lambda config, keys: _run(config, keys, settings),
        _summary,
        as_json,
        broker_per_node,
    )
