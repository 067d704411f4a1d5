"""`consortium demo`: the whole story in one command, network started and always stopped."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from consortium.cli.audit_cmd import read_audit, render_audit
from consortium.cli.common import config_option
from consortium.cli.explorer_cmd import explorer_url
from consortium.cli.scenario_cmd import failures, run_scenarios, summary_table
from consortium.client.watch import collect_statuses
from consortium.config import NetworkConfig, load_config
from consortium.keys import load_directory
from consortium.node import supervisor
from consortium.scenarios.loader import builtin_scenarios
from consortium.scenarios.narration import RichNarrator

STARTUP_TIMEOUT_S = 30.0


def wait_for_nodes(config: NetworkConfig, timeout_s: float) -> dict[str, dict[str, Any]]:
    """Every node's status heartbeat, once all of them report; ClickException on timeout."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        seen = asyncio.run(collect_statuses(config, wait_s=1.0))
        if all(node in seen for node in config.node_ids):
            return seen
    missing = ", ".join(n for n in config.node_ids if n not in seen)
    raise click.ClickException(f"nodes {missing} sent no status within {timeout_s:g} s")


def _status_table(statuses: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="the network is up")
    for column in ("node", "role", "pid", "view", "primary", "height"):
        table.add_column(column)
    for node, status in statuses.items():
        table.add_row(
            node,
            str(status.get("role", "")),
            str(status.get("pid", "")),
            str(status.get("view", "")),
            str(status.get("primary", "")),
            str(status.get("height", "")),
        )
    return table


@click.command("demo")
@config_option
def demo(config_path: str) -> None:
    """Start the network, run every scenario with narration, show the audit, stop the network."""
    started = time.monotonic()
    config = load_config(config_path)
    running = [n for n in config.node_ids if supervisor.node_pid(config, n) is not None]
    if running:
        raise click.ClickException(
            f"nodes {', '.join(running)} of {config.path} are running already: stop them with "
            "`consortium down`, or run `consortium scenario run all` against them"
        )
    scenarios = builtin_scenarios()
    console = Console()
    try:
        console.print(f"starting the broker and {len(config.node_ids)} nodes of {config.path}")
        supervisor.start_network(config)
        keys = load_directory(config)
        console.print(_status_table(wait_for_nodes(config, STARTUP_TIMEOUT_S)))
        console.print(
            f"explorer: run `consortium explorer` beside the demo and open {explorer_url()}"
        )
        results = run_scenarios(config, keys, scenarios, RichNarrator(console))
        render_audit(read_audit(str(config.path), None), console)
    finally:
        console.print("stopping the network")
        supervisor.stop_network(config)
    console.print(summary_table(results))
    console.print(f"demo finished in {time.monotonic() - started:.1f} s")
    failed = failures(results)
    if failed:
        raise click.ClickException("; ".join(failed))
