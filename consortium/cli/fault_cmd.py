"""`consortium fault ...`: break the live network on purpose."""

from __future__ import annotations

import asyncio
import signal

import click
from rich.console import Console

from consortium.cli.common import ConsortiumGroup, config_option
from consortium.client.operator import send_control
from consortium.config import NetworkConfig, load_config
from consortium.errors import ConfigError
from consortium.node import broker, supervisor
from consortium.node.faults import MAX_DELAY_MS, delay_message, heal_message, partition_message

err = Console(stderr=True)


@click.group(cls=ConsortiumGroup)
def fault() -> None:
    """Faults on the live network: processes (kill, restart, pause, resume; of a broker too, with
    --broker) and, through each node's transport, partitions and delays."""


def _node(config: NetworkConfig, node_id: str) -> str:
    if node_id not in config.node_ids:
        raise ConfigError(f"no node {node_id!r} (nodes: {', '.join(config.node_ids)})")
    return node_id


def _running(config: NetworkConfig, node_id: str) -> None:
    if supervisor.node_pid(config, node_id) is None:
        raise ConfigError(f"node {node_id} is not running")


broker_option = click.option(
    "--broker",
    "on_broker",
    is_flag=True,
    help="ID names a broker (as `status` lists them: an organisation's, or `shared`).",
)


@fault.command("kill")
@click.argument("node_id", metavar="ID")
@broker_option
@config_option
def fault_kill(node_id: str, on_broker: bool, config_path: str) -> None:
    """SIGKILL a node: no goodbye, its disk stays as it was. Its supervisor stops too, so it stays
    down until `fault restart`. With --broker, SIGKILL that broker: everyone connected to it loses
    it (clients move to another broker; its organisation's node is cut off)."""
    config = load_config(config_path)
    if on_broker:
        config.broker(node_id)
        if not broker.stop_running_broker(config, node_id, kill=True):
            raise ConfigError(f"broker {node_id} is not running")
        err.print(f"killed broker {node_id}; `consortium fault restart {node_id} --broker`")
        return
    _node(config, node_id)
    if supervisor.supervisor_pid(config, node_id) is None:
        _running(config, node_id)
    supervisor.stop_node(config, node_id, kill=True)
    err.print(f"killed {node_id}; it stays down until `consortium fault restart {node_id}`")


@fault.command("restart")
@click.argument("node_id", metavar="ID")
@broker_option
@config_option
def fault_restart(node_id: str, on_broker: bool, config_path: str) -> None:
    """Start a node again under a new supervisor (killing it first if it runs, lifting a `fault
    kill`); it resumes from its store and catches up. With --broker, (re)start that broker; its
    bridges and everyone's connections come back by themselves."""
    config = load_config(config_path)
    if on_broker:
        config.broker(node_id)
        process = broker.restart_broker(config, node_id)
        err.print(f"restarted broker {node_id} (pid {process.pid})")
        return
    _node(config, node_id)
    supervisor.stop_node(config, node_id, kill=True)
    process = supervisor.spawn_node(config, node_id)
    err.print(f"restarted {node_id} (pid {process.pid})")


@fault.command("pause")
@click.argument("node_id")
@config_option
def fault_pause(node_id: str, config_path: str) -> None:
    """SIGSTOP a node: it freezes mid-step, its broker connection times out."""
    config = load_config(config_path)
    _running(config, _node(config, node_id))
    supervisor.signal_node(config, node_id, signal.SIGSTOP)
    err.print(f"paused {node_id}")


@fault.command("resume")
@click.argument("node_id")
@config_option
def fault_resume(node_id: str, config_path: str) -> None:
    """SIGCONT a paused node."""
    config = load_config(config_path)
    _running(config, _node(config, node_id))
    supervisor.signal_node(config, node_id, signal.SIGCONT)
    err.print(f"resumed {node_id}")


def parse_partition(config: NetworkConfig, spec: str) -> list[list[str]]:
    """`A,B/C,D,E`: every node in exactly one group; nodes not named form one more group."""
    groups = [[n.strip() for n in part.split(",") if n.strip()] for part in spec.split("/")]
    named = [n for g in groups for n in g]
    for node_id in named:
        _node(config, node_id)
    if len(set(named)) != len(named):
        raise ConfigError(f"partition {spec!r} names a node twice")
    if len(groups) < 2 and len(named) == len(config.node_ids):
        raise ConfigError("a partition needs at least two groups")
    rest = [n for n in config.node_ids if n not in named]
    if rest:
        groups.append(rest)
    return [g for g in groups if g]


@fault.command("partition")
@click.argument("spec")
@config_option
def fault_partition(spec: str, config_path: str) -> None:
    """Split the nodes, e.g. `bank-a,bank-b/core,agency,regulator`."""
    config = load_config(config_path)
    groups = parse_partition(config, spec)
    asyncio.run(send_control(config, {n: partition_message(groups) for n in config.node_ids}))
    err.print("partitioned: " + " | ".join(",".join(g) for g in groups))


@fault.command("delay")
@click.argument("node_id")
@click.argument("ms", type=click.IntRange(0, MAX_DELAY_MS))
@config_option
def fault_delay(node_id: str, ms: int, config_path: str) -> None:
    """Hold back every consensus message NODE sends by MS milliseconds."""
    config = load_config(config_path)
    asyncio.run(send_control(config, {_node(config, node_id): delay_message(ms)}))
    err.print(f"{node_id} delays its messages by {ms} ms")


@fault.command("heal")
@config_option
def fault_heal(config_path: str) -> None:
    """Remove every partition and delay (processes killed or paused stay so)."""
    config = load_config(config_path)
    asyncio.run(send_control(config, {n: heal_message() for n in config.node_ids}))
    err.print("healed")
