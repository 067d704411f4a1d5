"""`consortium broker ...`: brokers on their own hosts, for nodes on several machines: the shared
one, or (`brokers: per_node`) each organisation's own, bridged to the others."""

from __future__ import annotations

import click
from rich.console import Console

from consortium.cli.common import ConsortiumGroup, config_option
from consortium.config import NetworkConfig, load_config
from consortium.node import broker as mqtt_broker
from consortium.node import local_tls
from consortium.transport import credentials


@click.group(cls=ConsortiumGroup)
def broker() -> None:
    """The MQTT broker alone (when nodes run on other hosts)."""


id_option = click.option(
    "--id",
    "broker_id",
    default=None,
    help="Which broker (an organisation's id with `brokers: per_node`); default: all of them.",
)


def _chosen(config: NetworkConfig, broker_id: str | None) -> list[str]:
    return [config.broker(broker_id).id] if broker_id else [b.id for b in config.brokers]


@broker.command("start")
@id_option
@config_option
def broker_start(broker_id: str | None, config_path: str) -> None:
    """Write a broker's configuration (logins, ACL, bridges, TLS from broker_tls:) and start it."""
    config = load_config(config_path)
    local_tls.ensure_local_certificates(config)
    for each in _chosen(config, broker_id):
        process = mqtt_broker.start_configured(config, each)
        Console(stderr=True).print(
            f"broker {each} listening on {config.broker(each).url} (pid {process.pid});"
            f" logins in {process.files.credentials_path}"
        )


@broker.command("stop")
@id_option
@config_option
def broker_stop(broker_id: str | None, config_path: str) -> None:
    """Stop a broker started by `broker start` or `up`."""
    config = load_config(config_path)
    for each in _chosen(config, broker_id):
        stopped = mqtt_broker.stop_running_broker(config, each)
        Console(stderr=True).print(
            f"broker {each} stopped" if stopped else f"broker {each} was not running"
        )


@broker.command("password")
@click.argument("username")
@config_option
def broker_password(username: str, config_path: str) -> None:
    """Print USERNAME's broker password (e.g. node-bank-a), to hand to the host that runs it."""
    config = load_config(config_path)
    click.echo(credentials.read_credentials(config.run_dir, username).password)
