"""`consortium ledger verify|show`: check and read a node's store from disk."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from consortium.cli.common import ConsortiumGroup, config_option, json_option, load, print_json
from consortium.errors import ConfigError
from consortium.ledger.ledger import store_path
from consortium.ledger.store import Store
from consortium.ledger.tx import decode_transaction
from consortium.ledger.verify import verify_store


@click.group(cls=ConsortiumGroup)
def ledger() -> None:
    """Read and verify a node's ledger on disk."""


def _node_store(config_path: str, node_id: str):
    config, keys = load(config_path)
    if node_id not in config.node_ids:
        raise ConfigError(
            f"no node {node_id!r} in {config.path} (nodes: {', '.join(config.node_ids)})"
        )
    return config, keys, store_path(config, node_id)


@ledger.command("verify")
@click.option("--node", "node_id", required=True, help="The node whose store to check.")
@config_option
@json_option
def ledger_verify(node_id: str, config_path: str, as_json: bool) -> None:
    """Recheck the chain from genesis: links, Merkle roots, signatures, certificates, state."""
    config, keys, path = _node_store(config_path, node_id)
    report = verify_store(config, keys, path)
    if as_json:
        print_json(report.as_json())
    else:
        console = Console(stderr=True)
        verdict = "[green]OK[/green]" if report.ok else "[red]FAILED[/red]"
        console.print(
            f"{node_id}: {verdict} height {report.height} head {report.head_hash[:16]} "
            f"({report.blocks_checked} blocks, {report.txs_checked} transactions)"
        )
        for error in report.errors:
            console.print(f"  [red]-[/red] {error}")
    if not report.ok:
        raise SystemExit(1)


@ledger.command("show")
@click.option("--node", "node_id", required=True, help="The node whose store to read.")
@click.option("--height", type=int, default=None, help="One block (default: the last ten).")
@config_option
def ledger_show(node_id: str, height: int | None, config_path: str) -> None:
    """Blocks and receipts, readable."""
    _, _, path = _node_store(config_path, node_id)
    store = Store(path, readonly=True)
    console = Console()
    try:
        top = store.height()
        heights = [height] if height is not None else range(max(0, top - 9), top + 1)
        for h in heights:
            stored = store.block(h)
            if stored is None:
                raise ConfigError(f"{node_id} has no block {h} (height {top})")
            header = stored.decoded_header()
            console.rule(
                f"block {header.height}  {stored.hash.hex()[:16]}  day {header.business_day}"
                f"  proposer {header.proposer}  view {header.view}"
            )
            table = Table(show_header=True, header_style="bold")
            for column in ("#", "tx", "sender", "nonce", "op", "outcome"):
                table.add_column(column)
            for i, (raw, receipt) in enumerate(
                zip(stored.txs, stored.decoded_receipts(), strict=True)
            ):
                tx = decode_transaction(raw).tx
                outcome = (
                    "[green]ok[/green]" if receipt.ok else f"[red]failed[/red]: {receipt.reason}"
                )
                table.add_row(
                    str(i), receipt.tx_id.hex()[:12], tx.sender, str(tx.nonce), tx.op, outcome
                )
            console.print(table)
    finally:
        store.close()
