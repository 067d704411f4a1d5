"""The outside checker: after the heal, every node's ledger is read from its own disk.

It trusts neither the nodes' statuses nor the client's outcomes: each store is opened read-only
and scanned block by block (a duplicate in one block would not show in the transaction index),
every chain is re-verified from genesis, and the heads are compared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from consortium.client.client import Outcome
from consortium.config import NetworkConfig
from consortium.errors import RemoteError
from consortium.keys import KeyDirectory
from consortium.ledger.ledger import store_path
from consortium.ledger.store import Store
from consortium.ledger.tx import decode_transaction
from consortium.ledger.verify import verify_store


@dataclass(frozen=True, slots=True)
class NodeLedger:
    node_id: str
    height: int
    head_hash: str
    tx_counts: Counter[bytes]
    tx_heights: dict[bytes, int]


@dataclass(slots=True)
class CheckReport:
    lost: int = 0  # acknowledged, missing on some node
    duplicated: int = 0  # committed more than once on some node
    misplaced: int = 0  # acknowledged at a height where a node does not hold it
    indeterminate_committed: int = 0
    heads_equal: bool = False
    ledgers_verified: bool = False
    heights: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.lost
            and not self.duplicated
            and not self.misplaced
            and self.heads_equal
            and self.ledgers_verified
        )


def read_ledger(config: NetworkConfig, node_id: str) -> NodeLedger:
    """One node's committed transactions, counted by scanning every stored block."""
    store = Store(store_path(config, node_id), readonly=True)
    try:
        counts: Counter[bytes] = Counter()
        heights: dict[bytes, int] = {}
        height, head = 0, b""
        for block in store.blocks():
            height, head = block.height, block.hash
            for raw in block.txs:
                tx_id = decode_transaction(raw).tx_id
                counts[tx_id] += 1
                heights.setdefault(tx_id, block.height)
        return NodeLedger(node_id, height, head.hex(), counts, heights)
    finally:
        store.close()


def store_heads(config: NetworkConfig) -> dict[str, tuple[int, str]]:
    """(height, head hash) of every node's store; a store that cannot be read is left out."""
    heads: dict[str, tuple[int, str]] = {}
    for node_id in config.node_ids:
        try:
            store = Store(store_path(config, node_id), readonly=True)
        except RemoteError:
            continue
        try:
            height = store.height()
            block = store.block(height)
            if block is not None:
                heads[node_id] = (height, block.hash.hex())
        finally:
            store.close()
    return heads


def check_ledgers(
    config: NetworkConfig,
    keys: KeyDirectory,
    acknowledged: Mapping[bytes, Outcome],
    indeterminate: Iterable[bytes] = (),
) -> CheckReport:
    report = CheckReport()
    ledgers = []
    for node_id in config.node_ids:
        try:
            ledgers.append(read_ledger(config, node_id))
        except RemoteError as exc:
            report.problems.append(f"{node_id}: store unreadable: {exc}")
    lost: set[bytes] = set()
    misplaced: set[bytes] = set()
    duplicated: set[bytes] = set()
    for ledger in ledgers:
        report.heights[ledger.node_id] = ledger.height
        duplicated |= {tx_id for tx_id, count in ledger.tx_counts.items() if count > 1}
        for tx_id, outcome in acknowledged.items():
            where = ledger.tx_heights.get(tx_id)
            if where is None:
                lost.add(tx_id)
            elif where != outcome.height:
                misplaced.add(tx_id)
    report.lost, report.misplaced, report.duplicated = len(lost), len(misplaced), len(duplicated)
    for what, ids in (("lost", lost), ("misplaced", misplaced), ("duplicated", duplicated)):
        for tx_id in sorted(ids)[:5]:
            report.problems.append(f"{what}: transaction {tx_id.hex()}")
    report.indeterminate_committed = sum(
        1 for tx_id in indeterminate if ledgers and tx_id in ledgers[0].tx_counts
    )
    heads = {(ledger.height, ledger.head_hash) for ledger in ledgers}
    report.heads_equal = len(ledgers) == len(config.node_ids) and len(heads) == 1
    if not report.heads_equal:
        report.problems.append(
            "heads differ: "
            + ", ".join(f"{x.node_id}={x.height}/{x.head_hash[:12]}" for x in ledgers)
        )
    report.ledgers_verified = len(ledgers) == len(config.node_ids)
    for node_id in config.node_ids:
        verified = verify_store(config, keys, store_path(config, node_id))
        if not verified.ok:
            report.ledgers_verified = False
            report.problems.append(f"{node_id}: ledger verify failed: {verified.errors[:2]}")
    return report
