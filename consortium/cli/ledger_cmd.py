"""`consortium ledger verify|show`: check and read a node's store from disk.

A damaged store file is reported in one line and a non-zero exit, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from consortium.cli.common import ConsortiumGroup, config_option, json_option, load, print_json
from consortium.errors import ConfigError, RemoteError
from consortium.ledger.block import BlockHeader
from consortium.ledger.ledger import store_path
from consortium.ledger.store import Store, StoreError
from consortium.ledger.tx import decode_transaction
from consortium.ledger.verify import open_readonly, shown, store_errors, verify_store


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
    """Recheck the chain from genesis: links, Merkle roots, signatures, certificates, state,
    the transaction index, and the store file itself."""
    config, keys, path = _node_store(config_path, node_id)
    report = verify_store(config, keys, path)
    if as_json:
        print_json(report.as_json())
    else:
        # Soft wrap: a reason is one line however narrow the terminal, and grep finds it whole.
        console = Console(stderr=True, soft_wrap=True)
        if not report.ok and report.blocks_checked == 0:
            # Not even genesis could be checked (usually an unreadable file): one line says why.
            console.print(f"{node_id}: [red]FAILED[/red]: {escape('; '.join(report.errors))}")
        else:
            verdict = "[green]OK[/green]" if report.ok else "[red]FAILED[/red]"
            console.print(
                f"{node_id}: {verdict} height {report.height} head {report.head_hash[:16]} "
                f"({report.blocks_checked} blocks, {report.txs_checked} transactions)"
            )
            for error in report.errors:
                console.print(f"  [red]-[/red] {escape(error)}")
    if not report.ok:
        raise SystemExit(1)


@dataclass(frozen=True, slots=True)
class _ShownBlock:
    header: BlockHeader
    hash: bytes
    rows: list[tuple[str, ...]]


def _read_blocks(store: Store, path: Path, node_id: str, height: int | None) -> list[_ShownBlock]:
    """Everything to show, read and decoded before anything is printed, so that a damaged block
    ends the command with its one-line reason instead of half a table."""
    top = store.height()
    heights = [height] if height is not None else range(max(0, top - 9), top + 1)
    shown_blocks = []
    for h in heights:
        stored = store.block(h)
        if stored is None:
            raise ConfigError(f"{node_id} has no block {h} (height {top})")
        try:
            header = stored.decoded_header()
            receipts = stored.decoded_receipts()
            if len(receipts) != len(stored.txs):
                raise StoreError(f"{len(stored.txs)} transactions but {len(receipts)} receipts")
            rows = []
            for i, (raw, receipt) in enumerate(zip(stored.txs, receipts, strict=True)):
                tx = decode_transaction(raw).tx
                outcome = (
                    "[green]ok[/green]"
                    if receipt.ok
                    else f"[red]failed[/red]: {escape(receipt.reason)}"
                )
                rows.append(
                    (
                        str(i),
                        receipt.tx_id.hex()[:12],
                        escape(tx.sender),
                        str(tx.nonce),
                        escape(tx.op),
                        outcome,
                    )
                )
        except RemoteError as exc:
            raise StoreError(f"store {shown(path)}: block {h}: {exc}") from None
        shown_blocks.append(_ShownBlock(header, stored.hash, rows))
    return shown_blocks


@ledger.command("show")
@click.option("--node", "node_id", required=True, help="The node whose store to read.")
@click.option("--height", type=int, default=None, help="One block (default: the last ten).")
@config_option
def ledger_show(node_id: str, height: int | None, config_path: str) -> None:
    """Blocks and receipts, readable."""
    _, _, path = _node_store(config_path, node_id)
    store = open_readonly(path)
    try:
        with store_errors(path):
            store.db.execute("BEGIN")  # one snapshot, even beside a node that is writing
            blocks = _read_blocks(store, path, node_id, height)
    finally:
        store.close()
    console = Console()
    for block in blocks:
        header = block.header
        console.rule(
            f"block {header.height}  {block.hash.hex()[:16]}  day {header.business_day}"
            f"  proposer {escape(header.proposer)}  view {header.view}"
        )
        table = Table(show_header=True, header_style="bold")
        for column in ("#", "tx", "sender", "nonce", "op", "outcome"):
            table.add_column(column)
        for row in block.rows:
            table.add_row(*row)
        console.print(table)
