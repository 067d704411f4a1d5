"""`consortium tx submit`: sign one transaction as a member and wait for its receipt;
`consortium tx status`: ask the network for the outcome of any transaction id."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click
from rich.console import Console

from consortium.cli.common import ConsortiumGroup, config_option, json_option, load, print_json
from consortium.client.client import ChainClient, ClientLogin, Outcome
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


def _tx_id(text: str) -> bytes:
    hex_text = text[2:] if text.startswith("0x") else text
    try:
        tx_id = bytes.fromhex(hex_text)
    except ValueError:
        tx_id = b""
    if len(tx_id) != 32:
        raise ConfigError(f"TXID {text[:80]!r} is not a transaction id (64 hex digits)")
    return tx_id


@tx.command("status")
@click.argument("txid")
@click.option(
    "--as",
    "member_id",
    default=None,
    help="The member whose broker login asks (default: the first member of the config).",
)
@click.option(
    "--timeout", default=10.0, show_default=True, help="Seconds to wait for the nodes' answers."
)
@config_option
@json_option
def tx_status(
    txid: str, member_id: str | None, timeout: float, config_path: str, as_json: bool
) -> None:
    """The outcome of transaction TXID, from f+1 matching signed node answers; says so when the
    network does not know it (exit status 2)."""
    tx_id = _tx_id(txid)
    config, keys = load(config_path)
    asker = member_id or config.members[0].id
    config.member(asker)

    async def run() -> Any:
        async with ChainClient(config, keys, ClientLogin.local(config, asker)) as client:
            return (await client.outcomes([tx_id], timeout_s=timeout))[0]

    answer = asyncio.run(run())
    if isinstance(answer, Outcome):
        report = {
            "tx": tx_id.hex(),
            "known": True,
            "height": answer.height,
            "block_hash": answer.block_hash.hex(),
            "business_day": answer.business_day,
            "ok": answer.ok,
            "reason": answer.reason,
            "result": answer.as_json()["result"],
        }
    else:
        report = {
            "tx": tx_id.hex(),
            "known": False,
            "height": None,
            "block_hash": None,
            "ok": None,
            "reason": None,
            "answered_unknown": answer.heights,
        }
    if as_json:
        print_json(report)
    elif report["known"]:
        verdict = "committed" if report["ok"] else f"rejected: {report['reason']}"
        Console().print(
            f"tx {tx_id.hex()[:16]}: {verdict} at height {report['height']}"
            f" (block {str(report['block_hash'])[:16]})"
        )
    else:
        heights = ", ".join(f"{n} at {h}" for n, h in sorted(answer.heights.items()))
        Console().print(
            f"tx {tx_id.hex()[:16]}: unknown: no f+1 nodes hold it"
            + (f" (answered by {heights})" if heights else " (no node answered)")
        )
    if not report["known"]:
        raise SystemExit(2)
