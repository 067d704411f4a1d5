"""What every command shares: the config option, JSON output, and one-line errors."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from consortium.config import NetworkConfig, load_config
from consortium.errors import RemoteError
from consortium.keys import KeyDirectory, load_directory
from consortium.transport.credentials import BrokerError
from consortium.transport.mqtt import TransportError

config_option = click.option(
    "--config",
    "config_path",
    default="nodes.yaml",
    show_default=True,
    # No dir_okay=False: `load_config` refuses a directory itself, in one line like any bad file.
    type=click.Path(),
    help="The network's nodes.yaml.",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object on stdout."
)


class ConsortiumGroup(click.Group):
    """A group whose commands report bad input as a one-line error, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (RemoteError, BrokerError, TransportError) as exc:
            raise click.ClickException(str(exc)) from None


def load(config_path: str) -> tuple[NetworkConfig, KeyDirectory]:
    config = load_config(config_path)
    return config, load_directory(config)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
