"""`consortium keys init`: ed25519 keys for every member and node of the config."""

from __future__ import annotations

import click

from consortium.cli.common import ConsortiumGroup, config_option
from consortium.config import load_config
from consortium.keys import init_keys


@click.group(cls=ConsortiumGroup)
def keys() -> None:
    """Key files of members and nodes."""


@keys.command("init")
@config_option
@click.option("--force", is_flag=True, help="Replace existing key files.")
def keys_init(config_path: str, force: bool) -> None:
    """Make ed25519 keys for every node and member; never overwrites without --force."""
    config = load_config(config_path)
    written = init_keys(config, force=force)
    click.echo(f"wrote {len(written)} key pairs to {config.keys_dir}", err=True)
