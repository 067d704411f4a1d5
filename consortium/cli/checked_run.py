"""What `chaos` and `fuzz` share: run against the `up` network or a fresh one, keep a failed
fresh network's stores and logs for reading, and report the verdict the same way."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import click
from rich.console import Console

from consortium.chaos.network import fresh_network
from consortium.cli.common import load, print_json
from consortium.config import NetworkConfig
from consortium.keys import KeyDirectory

err = Console(stderr=True, soft_wrap=True)

broker_per_node_option = click.option(
    "--broker-per-node",
    is_flag=True,
    help="With --fresh: every organisation runs its own broker, bridged (broker faults included).",
)


class CheckedReport(Protocol):
    ok: bool
    seed: int
    problems: list[str]

    def as_json(self) -> dict[str, Any]: ...


def run_checked(
    name: str,
    fresh: bool,
    config_path: str,
    run: Callable[[NetworkConfig, KeyDirectory], CheckedReport],
    summary: Callable[[Any], str],
    as_json: bool,
    broker_per_node: bool = False,
) -> None:
    """Run, print the report (JSON on stdout, summary and problems on stderr), and exit 1 with
    the replay command if any check failed."""
    kept: Path | None = None
    if broker_per_node and not fresh:
        raise click.UsageError(
            "--broker-per-node goes with --fresh; the network of --config has its own topology"
        )
    if fresh:
        directory = Path(tempfile.mkdtemp(prefix=f"consortium-{name}-"))
        with fresh_network(directory, broker_per_node=broker_per_node) as net:
            report = run(net.config, net.keys)
        if report.ok:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            kept = directory
    else:
        config, keys = load(config_path)
        report = run(config, keys)
    if as_json:
        print_json(report.as_json())
    err.print(summary(report))
    for problem in report.problems:
        err.print(f"  {problem}")
    if kept is not None:
        err.print(f"the network's stores and logs are kept in {kept}")
    if not report.ok:
        topology = " --fresh --broker-per-node" if broker_per_node else ""
        raise click.ClickException(
            f"{name} check failed (replay: consortium {name} --seed {report.seed}{topology})"
        )
