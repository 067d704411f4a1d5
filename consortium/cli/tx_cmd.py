"""`consortium tx submit`: sign one transaction as a member and wait for its receipt."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click
from rich.console import Console

from consortium.cli.common import ConsortiumGroup, config_option, json_option, load, print_json
from consortium.client.client import ChainClient, ClientLogin
from consortium.client.wallet import Wallet
from consortium.errors import ConfigError
from consortium.keys import load_keypair


@click.group(cls=ConsortiumGroup)
def tx() -> None:
    """Transactions."""


def _decode_args(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--args is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError("--args must be a JSON object")
    return _bytes_from_hex(value)


def _bytes_from_hex(value: Any) -> Any:
    """JSON has no bytes: strings written as "0x..." become bytes."""
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            raise ConfigError(f"{value[:20]!r} is not hex") from None
    if isinstance(value, float):
        raise ConfigError("amounts are integers in the smallest currency unit, not decimals")
    if isinstance(value, dict):
        return {k: _bytes_from_hex(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bytes_from_hex(v) for v in value]
    return value


@tx.command("submit")
@click.option("--as", "member_id", required=True, help="The member who signs.")
@click.argument("op")
@click.option(
    "--args",
    "args_json",
    default="{}",
    show_default=True,
    help='Arguments as JSON; "0x.." strings are bytes.',
)
@click.option(
    "--timeout", default=30.0, show_default=True, help="Seconds to wait for f+1 matching receipts."
)
@config_option
@json_option
def tx_submit(
    member_id: str, op: str, args_json: str, timeout: float, config_path: str, as_json: bool
) -> None:
    """Sign OP as a member, publish it, and print the receipt agreed by f+1 nodes."""
    config, keys = load(config_path)
    config.member(member_id)
    args = _decode_args(args_json)
    wallet = Wallet(config.chain_id, member_id, load_keypair(config, member_id, "member"))
    stx = wallet.sign(op, args)

    async def run() -> Any:
        async with ChainClient(config, keys, ClientLogin.local(config, member_id)) as client:
            return await client.submit_one(stx, timeout_s=timeout)

    try:
        outcome = asyncio.run(run())
    except TimeoutError:
        raise click.ClickException(
            f"no agreed receipt within {timeout:g} s (is the network up?)"
        ) from None
    if as_json:
        print_json(outcome.as_json())
    else:
        verdict = (
            "[green]committed[/green]" if outcome.ok else f"[red]rejected[/red]: {outcome.reason}"
        )
        Console().print(
            f"{op} by {member_id}: {verdict} at height {outcome.height} (tx {outcome.tx_id.hex()[:16]})"
        )
        if outcome.result:
            Console().print(outcome.as_json()["result"])
    if not outcome.ok:
        raise SystemExit(1)
