"""The `consortium` command line."""

from __future__ import annotations

import click

from consortium import __version__
from consortium.cli.audit_cmd import audit
from consortium.cli.bench_cmd import bench
from consortium.cli.broker_cmd import broker
from consortium.cli.chaos_cmd import chaos
from consortium.cli.common import ConsortiumGroup
from consortium.cli.demo_cmd import demo
from consortium.cli.explorer_cmd import explorer
from consortium.cli.fault_cmd import fault
from consortium.cli.fuzz_cmd import fuzz
from consortium.cli.keys_cmd import keys
from consortium.cli.ledger_cmd import ledger
from consortium.cli.network_cmd import down, logs, node, status, up
from consortium.cli.scenario_cmd import scenario
from consortium.cli.sim_cmd import sim
from consortium.cli.tx_cmd import tx


@click.group(cls=ConsortiumGroup)
@click.version_option(__version__, prog_name="consortium")
def cli() -> None:
    """A consortium blockchain of banks, enterprises, agencies and a regulator, on PBFT over MQTT."""


for command in (
    keys,
    ledger,
    node,
    up,
    down,
    status,
    logs,
    tx,
    bench,
    broker,
    fault,
    scenario,
    audit,
    demo,
    explorer,
    sim,
    chaos,
    fuzz,
):
    cli.add_command(command)
