"""Running the network: `up`, `down`, `status`, `logs`, `node run`."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from consortium.cli.common import ConsortiumGroup, config_option, json_option, load, print_json
from consortium.cli.explorer_cmd import explorer_url
from consortium.client.watch import (
    StatusWatcher,
    collect_statuses,
    heartbeat_age_s,
    probe_brokers,
)
from consortium.config import NetworkConfig, load_config, record_topology
from consortium.errors import ConfigError
from consortium.node import broker, supervisor
from consortium.node.process import Node
from consortium.transport import credentials

STALE_AFTER_S = 3.0
LAST_EXIT_WIDTH = 48


@click.group(cls=ConsortiumGroup)
def node() -> None:
    """One node process."""


@node.command("run")
@click.option(
    "--id", "node_id", required=True, help="The node to run (an id under nodes: in the config)."
)
@config_option
@click.option(
    "--broker",
    "broker_url",
    default=None,
    help="mqtt://HOST:PORT or mqtts://HOST:PORT (default: the config's).",
)
def node_run(node_id: str, config_path: str, broker_url: str | None) -> None:
    """Run one node in the foreground: what `up` starts per node, and how a node joins from
    another host. The broker password comes from run/broker/credentials, or from the environment
    variable CONSORTIUM_BROKER_PASSWORD; a CA file for mqtts:// from CONSORTIUM_BROKER_CA."""
    config, keys = load(config_path)
    if node_id not in config.node_ids:
        raise ConfigError(
            f"no node {node_id!r} in {config.path} (nodes: {', '.join(config.node_ids)})"
        )
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {node_id} %(levelname)s %(message)s"
    )
    login = credentials.broker_login(
        config, credentials.node_username(node_id), broker_url, node_id=node_id
    )
    node_main = Node(config, keys, node_id, login).run
    profile_dir = os.environ.get("CONSORTIUM_PROFILE")
    if profile_dir:
        # Where a node spends its time under load: `python -m pstats DIR/ID.prof`.
        import cProfile

        with cProfile.Profile() as profiler:
            asyncio.run(node_main())
        profiler.dump_stats(os.path.join(profile_dir, f"{node_id}.prof"))
    else:
        asyncio.run(node_main())


def _rows(
    config: NetworkConfig, statuses: dict[str, dict[str, Any]], ages: dict[str, float | None]
) -> list[dict]:
    rows = []
    for member in config.nodes:
        status = statuses.get(member.id, {})
        pid = supervisor.node_pid(config, member.id)
        supervision = supervisor.read_state(config, member.id)
        age = ages.get(member.id)
        fresh = age is not None and age < STALE_AFTER_S and status.get("alive", True)
        if supervision is not None:
            # Supervised from here: the process table is the truth, not a retained heartbeat
            # that a killed node left behind on the broker.
            fresh = False
        else:
            supervision = {}
            pid = pid if pid is not None else status.get("pid")
        rows.append(
            {
                "id": member.id,
                "role": member.role,
                "pid": pid,
                "alive": bool(fresh) or pid is not None,
                "view": status.get("view"),
                "primary": status.get("primary"),
                "height": status.get("height"),
                "head_hash": status.get("head_hash"),
                "committed_txs": status.get("committed_txs"),
                "tx_per_s": status.get("tx_per_s"),
                "mempool": status.get("mempool"),
                "rejected_msgs": status.get("rejected_msgs"),
                "rejected_by_reason": status.get("rejected_by_reason", {}),
                "view_changes": status.get("view_changes"),
                "business_day": status.get("business_day"),
                "heartbeat_age_s": None if age is None else round(age, 2),
                "faults": status.get("faults", {}),
                "supervised": supervisor.supervisor_pid(config, member.id) is not None,
                "restarts": supervision.get("restarts", 0),
                "last_exit": supervision.get("last_exit"),
                "last_exit_reason": supervision.get("last_exit_reason"),
                "metrics_url": status.get("metrics_url") if fresh or pid is not None else None,
            }
        )
    return rows


def _last_exit(row: dict) -> str:
    reason = row["last_exit_reason"]
    if not reason:
        return ""
    return reason if len(reason) <= LAST_EXIT_WIDTH else reason[: LAST_EXIT_WIDTH - 1] + "…"


def _table(rows: list[dict]) -> Table:
    table = Table(title="consortium", header_style="bold")
    for column in (
        "node",
        "role",
        "pid",
        "alive",
        "view",
        "primary",
        "height",
        "head",
        "tx/s",
        "committed",
        "mempool",
        "rejected",
        "restarts",
        "last exit",
        "faults",
    ):
        left = ("node", "role", "primary", "head", "last exit", "faults")
        table.add_column(column, justify="left" if column in left else "right")
    for row in rows:
        alive = "[green]yes[/green]" if row["alive"] else "[red]no[/red]"
        head = (row["head_hash"] or "")[:12]
        table.add_row(
            row["id"],
            row["role"],
            str(row["pid"] or "-"),
            alive,
            str(row["view"] if row["view"] is not None else "-"),
            str(row["primary"] or "-"),
            str(row["height"] if row["height"] is not None else "-"),
            head,
            str(row["tx_per_s"] or 0),
            str(row["committed_txs"] or 0),
            str(row["mempool"] or 0),
            str(row["rejected_msgs"] or 0),
            str(row["restarts"]),
            _last_exit(row),
            _faults(row["faults"]),
        )
    return table


def _faults(faults: dict) -> str:
    parts = []
    if "partition" in faults:
        parts.append(
            "hears " + ",".join(faults["partition"]) if faults["partition"] else "isolated"
        )
    if faults.get("delay_ms"):
        parts.append(f"delay {faults['delay_ms']} ms")
    return "[yellow]" + "; ".join(parts) + "[/yellow]" if parts else ""


@click.command()
@config_option
@json_option
def status(config_path: str, as_json: bool) -> None:
    """One row per node: process, view, primary, height, head hash, throughput, rejections, and
    how often its supervisor restarted it and why it last exited."""
    config = load_config(config_path)

    async def collect() -> tuple[dict[str, dict[str, Any]], list[dict]]:
        brokers = await probe_brokers(config)
        return await collect_statuses(config), _broker_rows(config, brokers)

    statuses, broker_rows = asyncio.run(collect())
    now = time.time()
    ages = {n: heartbeat_age_s(s, now) or 0.0 for n, s in statuses.items()}
    rows = _rows(config, statuses, ages)
    if as_json:
        print_json({"nodes": rows, "brokers": broker_rows})
    else:
        Console().print(_table(rows))
        Console().print(_broker_table(broker_rows))


def _broker_rows(
    config: NetworkConfig, probed: dict[str, tuple[bool, dict[str, bool]]]
) -> list[dict]:
    rows = []
    for each in config.brokers:
        alive, bridges = probed[each.id]
        rows.append(
            {
                "id": each.id,
                "url": each.url,
                "pid": broker.running_broker_pid(config, each.id),
                "alive": alive,
                "bridges": bridges,
            }
        )
    return rows


def _broker_table(rows: list[dict]) -> Table:
    table = Table(title="brokers", header_style="bold")
    for column in ("broker", "url", "pid", "alive", "bridges up"):
        table.add_column(column, justify="right" if column == "pid" else "left")
    for row in rows:
        up = [peer for peer, state in row["bridges"].items() if state]
        down = [peer for peer, state in row["bridges"].items() if not state]
        bridges = ", ".join(up) + (f" [red](down: {', '.join(down)})[/red]" if down else "")
        table.add_row(
            row["id"],
            row["url"],
            str(row["pid"] or "-"),
            "[green]yes[/green]" if row["alive"] else "[red]no[/red]",
            bridges or "-",
        )
    return table


async def _dashboard(config: NetworkConfig) -> None:
    async with StatusWatcher(config) as watcher:
        with Live(refresh_per_second=4, console=Console(stderr=True)) as live:
            while True:
                ages = {n: watcher.age_s(n) for n in config.node_ids}
                live.update(_table(_rows(config, watcher.latest, ages)))
                await asyncio.sleep(0.25)


@click.command()
@config_option
@click.option("--detach", is_flag=True, help="Start and return; stop later with `consortium down`.")
@click.option(
    "--broker-per-node",
    is_flag=True,
    help="Every organisation that runs a node runs its own broker, bridged to the others over TLS"
    " (as `brokers: per_node` in nodes.yaml); remembered until `consortium down`.",
)
def up(config_path: str, detach: bool, broker_per_node: bool) -> None:
    """Start the broker (or one per organisation, bridged) and one OS process per node, each under
    a supervisor that restarts it (with backoff) when it exits on its own; in the foreground, a
    live dashboard until Ctrl-C."""
    config = load_config(config_path)
    if broker_per_node and not config.per_node_brokers:
        _refuse_if_running(config)
        record_topology(config, "per_node")
        config = load_config(config_path)
    try:
        started = supervisor.start_network(config)
    except BaseException:
        if broker_per_node:
            record_topology(config, None)
        raise
    err = Console(stderr=True)
    brokers = ", ".join(f"{b.id} {b.url}" for b in config.brokers)
    err.print(
        f"brokers: {brokers}; nodes: " + ", ".join(f"{p.node_id} (pid {p.pid})" for p in started)
    )
    err.print(f"explorer: `consortium explorer` serves {explorer_url()}")
    if detach:
        err.print(
            "supervised: a node that exits on its own is restarted; stop with `consortium down`;"
            " logs in " + str(config.run_dir / "logs")
        )
        return
    try:
        asyncio.run(_dashboard(config))
    except KeyboardInterrupt:
        pass
    finally:
        err.print("stopping...")
        _stop(config)
        err.print("stopped")


def _refuse_if_running(config: NetworkConfig) -> None:
    running = [n for n in config.node_ids if supervisor.node_pid(config, n) is not None]
    if running or any(broker.running_broker_pid(config, b.id) for b in config.brokers):
        raise ConfigError(
            "the network is running with a shared broker: `consortium down` first, then"
            " `consortium up --broker-per-node`"
        )


def _stop(config: NetworkConfig) -> list[str]:
    """Stop nodes and brokers, and forget a topology `up --broker-per-node` recorded."""
    stopped = supervisor.stop_network(config)
    record_topology(config, None)
    return stopped


@click.command()
@config_option
def down(config_path: str) -> None:
    """Stop what `up --detach` started: supervisors, nodes and the brokers."""
    config = load_config(config_path)
    stopped = _stop(config)
    brokers = "the broker" if len(config.brokers) == 1 else f"{len(config.brokers)} brokers"
    Console(stderr=True).print(f"stopped {len(stopped)} nodes and {brokers}")


@click.command()
@click.argument("node_id")
@config_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing as the log grows.")
@click.option("--lines", "-n", default=50, show_default=True, help="How many lines from the end.")
def logs(node_id: str, config_path: str, follow: bool, lines: int) -> None:
    """Show a node's log."""
    config = load_config(config_path)
    if node_id not in config.node_ids:
        raise ConfigError(f"no node {node_id!r} in {config.path}")
    path = supervisor.log_path(config, node_id)
    if not path.exists():
        raise ConfigError(f"no log for {node_id} yet ({path})")
    with path.open("r", errors="replace") as f:
        for line in f.readlines()[-lines:]:
            sys.stdout.write(line)
        while follow:
            line = f.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)
