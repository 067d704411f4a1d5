"""The `consortium` command line."""

from __future__ import annotations

import click

from consortium import __version__
from consortium.cli.common import ConsortiumGroup
from consortium.cli.keys_cmd import keys
from consortium.cli.ledger_cmd import ledger


@click.group(cls=ConsortiumGroup)
@click.version_option(__version__, prog_name="consortium")
def cli() -> None:
    """A consortium blockchain of banks, enterprises, agencies and a regulator, on PBFT over MQTT."""


cli.add_command(keys)
cli.add_command(ledger)
