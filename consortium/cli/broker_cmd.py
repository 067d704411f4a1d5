"""`consortium broker ...`: the shared broker on its own host, for nodes on several machines."""

from __future__ import annotations

import click
from rich.console import Console

from consortium.cli.common import ConsortiumGroup, config_option
from consortium.config import load_config
from consortium.node import broker as mqtt_broker
from consortium.transport import credentials


@click.group(cls=ConsortiumGroup)
def broker() -> None:
    """The MQTT broker alone (when nodes run on other hosts)."""


@broker.command("start")
@config_option
def broker_start(config_path: str) -> None:
    """Write the broker's configuration (logins, ACL, TLS from broker_tls:) and start it."""
    config = load_config(config_path)
    files = mqtt_broker.write_broker_config(config, tls=mqtt_broker.configured_tls(config))
    process = mqtt_broker.start_broker(files)
    Console(stderr=True).print(
        f"broker listening on {config.broker_url} (pid {process.pid}); logins in {files.credentials_path}"
    )


@broker.command("stop")
@config_option
def broker_stop(config_path: str) -> None:
    """Stop the broker started by `broker start` or `up`."""
    stopped = mqtt_broker.stop_running_broker(load_config(config_path))
    Console(stderr=True).print("broker stopped" if stopped else "no broker was running")


@broker.command("password")
@click.argument("username")
@config_option
def broker_password(username: str, config_path: str) -> None:
    """Print USERNAME's broker password (e.g. node-bank-a), to hand to the host that runs it."""
    config = load_config(config_path)
    click.echo(credentials.read_credentials(config.run_dir, username).password)
