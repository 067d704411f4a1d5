"""`consortium chaos`: faults on the live network under a workload, then a check of every node."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from pathlib import Path

import click
from rich.console import Console

from consortium.chaos.network import fresh_network
from consortium.chaos.runner import ChaosReport, ChaosSettings, run_chaos
from consortium.cli.common import config_option, json_option, load, print_json
from consortium.config import NetworkConfig
from consortium.keys import KeyDirectory

err = Console(stderr=True, soft_wrap=True)


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
@json_option
@config_option
def chaos(
    duration_s: float, seed: int | None, clients: int, fresh: bool, as_json: bool, config_path: str
) -> None:
    """A workload of acknowledged transactions while a seeded nemesis kills, restarts, pauses,
    partitions and delays up to f nodes (the primary often); then heal, rest, and check that every
    acknowledged transaction is on every node exactly once, the heads agree and every ledger
    verifies. Exits 1 if any check fails."""
    chosen = seed if seed is not None else secrets.randbelow(2**31)
    settings = ChaosSettings(duration_s=duration_s, seed=chosen, clients=clients)
    kept: Path | None = None
    if fresh:
        directory = Path(tempfile.mkdtemp(prefix="consortium-chaos-"))
        with fresh_network(directory) as net:
            report = _run(net.config, net.keys, settings)
        if report.ok:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            kept = directory
    else:
        config, keys = load(config_path)
        report = _run(config, keys, settings)
    if as_json:
        print_json(report.as_json())
    err.print(_summary(report))
    for problem in report.problems:
        err.print(f"  {problem}")
    if kept is not None:
        err.print(f"the network's stores and logs are kept in {kept}")
    if not report.ok:
        raise click.ClickException(
            f"chaos check failed (replay: consortium chaos --seed {report.seed})"
        )
