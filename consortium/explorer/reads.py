"""What the explorer reads from one node's store: blocks, transactions, members, search results.

Every request opens the store read-only (`NodeLedger`, as `audit` and the scenarios do) and reads
inside one short read transaction: WAL lets it run beside the node that writes, a snapshot never
mixes two heights, and a short one never holds back the node's WAL checkpoints. There is no index
by sender, operation or outcome, so scans walk back from the head within a fixed budget of
transactions and say how far they got, instead of growing with the chain.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from consortium.certificate import certificate_problems, commit_statement
from consortium.config import NetworkConfig
from consortium.contracts import money, records, scoring
from consortium.contracts.clock import business_day
from consortium.crypto import HASH_BYTES, SIGNATURE_BYTES, verify
from consortium.errors import RemoteError
from consortium.keys import KeyDirectory
from consortium.ledger.block import Receipt
from consortium.ledger.store import StoredBlock, StoreError
from consortium.ledger.tx import decode_transaction
from consortium.ledger.verify import store_errors
from consortium.scenarios.ledger_view import NodeLedger

BLOCKS_PER_PAGE = 25
MAX_BLOCKS_PER_PAGE = 200
SCAN_TX_BUDGET = 200_000
"""Transactions one scan may decode (sender's history, search): about a second at most."""
SCAN_RESULTS = 200
RECORD_SCAN_BUDGET = 50_000
"""Records of one kind a member page may look at for that member's entries."""
MEMBER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
HEX_ID = re.compile(r"[0-9a-fA-F]{64}")
OUTCOMES = ("ok", "failed")
MAX_HEIGHT = 2**63 - 1


class NotFound(LookupError):
    """What was asked for is well-formed and not on this chain: a 404 with this message."""


class BadQuery(ValueError):
    """The request itself is malformed: a 400 with this message."""


def plain(value: Any) -> Any:
    """A codec value made printable: bytes as hex, tuples as lists."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def parse_height(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 19 or int(text) > MAX_HEIGHT:
        raise BadQuery(f"{text[:80]!r} is not a block height (a whole number)")
    return int(text)


def parse_hex_id(text: str, what: str) -> bytes:
    if not HEX_ID.fullmatch(text):
        raise BadQuery(f"{text[:80]!r} is not a {what} (64 hexadecimal digits)")
    return bytes.fromhex(text)


def parse_member_id(text: str) -> str:
    if not MEMBER_ID.fullmatch(text):
        raise BadQuery(f"{text[:80]!r} is not a member id (lowercase letters, digits and '-')")
    return text


@dataclass(frozen=True, slots=True)
class TxView:
    """One transaction with its receipt, as a page lists it."""

    height: int
    position: int
    tx_id: str
    sender: str
    nonce: int
    op: str
    ok: bool
    reason: str
    args: dict[str, Any]
    result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class BlockSummary:
    height: int
    hash: str
    proposer: str
    view: int
    business_day: int
    txs: int
    failed: int


@dataclass(slots=True)
class ScanResult:
    """Matches of a bounded backward scan, and the heights it covered."""

    rows: list[TxView] = field(default_factory=list)
    lowest: int | None = None
    highest: int | None = None
    complete: bool = True  # False when the budget or the result limit stopped it early


def _txs_of(block: StoredBlock) -> list[TxView]:
    receipts = block.decoded_receipts()
    if len(receipts) != len(block.txs):
        raise StoreError(
            f"block {block.height}: {len(block.txs)} transactions, {len(receipts)} receipts"
        )
    rows = []
    for position, (raw, receipt) in enumerate(zip(block.txs, receipts, strict=True)):
        tx = decode_transaction(raw).tx
        rows.append(_tx_view(block.height, position, tx.sender, tx.nonce, tx.op, tx.args, receipt))
    return rows


def _tx_view(
    height: int,
    position: int,
    sender: str,
    nonce: int,
    op: str,
    args: dict[str, Any],
    receipt: Receipt,
) -> TxView:
    result = plain(receipt.result) if receipt.result is not None else None
    return TxView(
        height,
        position,
        receipt.tx_id.hex(),
        sender,
        nonce,
        op,
        receipt.ok,
        receipt.reason,
        plain(args),
        result,
    )


class ChainReads:
    """Read-only views of the store of `node_id`, the node the explorer reads from."""

    def __init__(self, config: NetworkConfig, keys: KeyDirectory, node_id: str) -> None:
        self.config = config
        self.keys = keys
        self.node_id = node_id

    @contextlib.contextmanager
    def reading(self) -> Iterator[NodeLedger]:
        """The store in one read transaction; a damaged or missing file is a `StoreError`."""
        ledger = NodeLedger(self.config, self.node_id)
        try:
            with store_errors(ledger.path), ledger.snapshot():
                try:
                    yield ledger
                except StoreError:
                    raise
                except RemoteError as exc:  # a stored value that does not decode
                    raise StoreError(f"store of {self.node_id}: {exc}") from None
        finally:
            ledger.close()

    # -- blocks -------------------------------------------------------------------------

    def block_list(self, before: int | None, limit: int) -> tuple[list[BlockSummary], int]:
        """Up to `limit` blocks at or below `before` (default: the head), newest first; and
        the head's height."""
        with self.reading() as ledger:
            head = ledger.height()
            top = head if before is None else min(before, head)
            rows = ledger.store.db.execute(
                "SELECT height, hash, header, receipts FROM blocks"
                " WHERE height <= ? AND height > ? ORDER BY height DESC",
                (top, top - limit),
            ).fetchall()
            summaries = []
            for height, block_hash, header, receipts in rows:
                stored = StoredBlock(height, block_hash, header, (), receipts, None)
                decoded = stored.decoded_header()
                outcomes = stored.decoded_receipts()
                summaries.append(
                    BlockSummary(
                        height,
                        block_hash.hex(),
                        decoded.proposer,
                        decoded.view,
                        decoded.business_day,
                        len(outcomes),
                        sum(not r.ok for r in outcomes),
                    )
                )
            return summaries, head

    def block(self, height: int) -> dict[str, Any]:
        """A block's header, transactions with receipts, and its certificate checked here."""
        with self.reading() as ledger:
            stored = ledger.store.block(height)
            if stored is None:
                raise NotFound(f"no block at height {height} (the head is {ledger.height()})")
            header = stored.decoded_header()
            return {
                "height": height,
                "hash": stored.hash.hex(),
                "header": {
                    "chain_id": header.chain_id,
                    "parent_hash": header.parent_hash.hex(),
                    "tx_root": header.tx_root.hex(),
                    "receipts_root": header.receipts_root.hex(),
                    "state_root": header.state_root.hex(),
                    "business_day": header.business_day,
                    "proposer": header.proposer,
                    "view": header.view,
                },
                "txs": _txs_of(stored),
                "certificate": self._certificate(stored),
                "head": ledger.height(),
            }

    def _certificate(self, stored: StoredBlock) -> dict[str, Any] | None:
        """Every signature of the stored certificate verified against the nodes' keys."""
        cert = stored.decoded_certificate()
        if cert is None:
            return None
        node_keys = self.keys.node_keys
        statement = commit_statement(self.config.chain_id, cert.view, cert.height, cert.block_hash)
        signatures = []
        for node_id, signature in cert.signatures:
            key = node_keys.get(node_id)
            valid = (
                key is not None
                and len(signature) == SIGNATURE_BYTES
                and verify(key, statement, signature)
            )
            signatures.append({"node": node_id, "signature": signature.hex(), "valid": valid})
        problems = certificate_problems(cert, self.config.chain_id, node_keys)
        if cert.block_hash != stored.hash or cert.height != stored.height:
            problems.append("the certificate is for another block")
        return {
            "view": cert.view,
            "height": cert.height,
            "block_hash": cert.block_hash.hex(),
            "signatures": signatures,
            "problems": problems,
            "valid": not problems,
        }

    def height_of_hash(self, block_hash: bytes) -> int | None:
        with self.reading() as ledger:
            row = ledger.store.db.execute(
                "SELECT height FROM blocks WHERE hash = ?", (block_hash,)
            ).fetchone()
            return None if row is None else row[0]

    # -- transactions -------------------------------------------------------------------

    def transaction(self, tx_id: bytes) -> tuple[TxView, str, ScanResult]:
        """The transaction, its block's hash, and its sender's other recent transactions."""
        with self.reading() as ledger:
            locations = ledger.store.tx_locations(tx_id)
            if not locations:
                raise NotFound(
                    f"no transaction {tx_id.hex()} in the store of {self.node_id}"
                    f" (up to height {ledger.height()})"
                )
            height, position = locations[0]
            stored = ledger.store.block(height)
            if stored is None or position >= len(stored.txs):
                raise StoreError(f"the transaction index names block {height}, which is missing")
            view = _txs_of(stored)[position]
            others = self._scan(
                ledger, lambda row: row.sender == view.sender and row.tx_id != view.tx_id
            )
            return view, stored.hash.hex(), others

    def _scan(
        self,
        ledger: NodeLedger,
        matches: Any,
        low: int = 1,
        high: int | None = None,
        limit: int = SCAN_RESULTS,
    ) -> ScanResult:
        """Transactions for which `matches(row)` holds, newest first, walking back from `high`
        (default: the head) to `low` within `SCAN_TX_BUDGET` decoded transactions."""
        top = ledger.height() if high is None else min(high, ledger.height())
        floor = max(low, 1)
        result = ScanResult(highest=top)
        budget = SCAN_TX_BUDGET
        height = top
        while height >= floor:
            if budget <= 0 or len(result.rows) >= limit:
                result.complete = False
                break
            stored = ledger.store.block(height)
            if stored is None:
                break
            budget -= len(stored.txs)
            result.rows.extend(reversed([row for row in _txs_of(stored) if matches(row)]))
            result.lowest = height
            height -= 1
        if len(result.rows) > limit:
            del result.rows[limit:]
            result.complete = False
        return result

    # -- members ------------------------------------------------------------------------

    def member_ids(self) -> list[dict[str, Any]]:
        """Every member on chain with role, balance and whether it runs a node."""
        nodes = set(self.config.node_ids)
        with self.reading() as ledger:
            found = []
            for key in ledger.keys_with_prefix(records.MEMBER):
                member_id = key[len(records.MEMBER) :]
                record = ledger.get(key) or {}
                found.append(
                    {
                        "id": member_id,
                        "role": record.get("role", "?"),
                        "frozen": bool(record.get("frozen")),
                        "balance": money.balance(ledger, member_id),
                        "node": member_id in nodes,
                    }
                )
            return found

    def member(self, member_id: str) -> dict[str, Any]:
        """Balance, receivables, loans, warehouse receipts and credit score of one member."""
        with self.reading() as ledger:
            record = ledger.get(records.MEMBER + member_id)
            if record is None:
                raise NotFound(f"no member {member_id!r} on this chain")
            receivables, rcv_complete = _records_of(
                ledger, records.RECEIVABLE, member_id, ("holder", "debtor", "drafter", "pledgee")
            )
            loans, loans_complete = _records_of(
                ledger, records.LOAN, member_id, ("borrower", "bank")
            )
            receipts, whr_complete = _records_of(
                ledger, records.WAREHOUSE_RECEIPT, member_id, ("owner", "warehouse", "pledgee")
            )
            credit = scoring.credit_report(ledger, member_id)
            recent = self._scan(ledger, lambda row: row.sender == member_id, limit=50)
            return {
                "id": member_id,
                "role": record.get("role"),
                "frozen": bool(record.get("frozen")),
                "node": member_id in self.config.node_ids,
                "balance": money.balance(ledger, member_id),
                "day": business_day(ledger),
                "receivables": receivables,
                "loans": loans,
                "warehouse_receipts": receipts,
                "records_complete": rcv_complete and loans_complete and whr_complete,
                "credit": credit,
                "recent": recent,
                "height": ledger.height(),
            }

    def member_exists(self, member_id: str) -> bool:
        with self.reading() as ledger:
            return ledger.get(records.MEMBER + member_id) is not None

    # -- search -------------------------------------------------------------------------

    def search(
        self, member: str | None, op: str | None, outcome: str | None, low: int, high: int | None
    ) -> ScanResult:
        """Transactions by sender, operation and outcome within a height range."""

        def matches(row: TxView) -> bool:
            return (
                (member is None or row.sender == member)
                and (op is None or row.op == op)
                and (outcome is None or row.ok == (outcome == "ok"))
            )

        with self.reading() as ledger:
            return self._scan(ledger, matches, low, high)

    def locate(self, raw_id: bytes) -> tuple[str, int | None]:
        """A 32-byte id: ("tx", None) for a transaction, ("block", height) for a block hash."""
        with self.reading() as ledger:
            if ledger.store.tx_locations(raw_id):
                return "tx", None
        if len(raw_id) == HASH_BYTES:
            height = self.height_of_hash(raw_id)
            if height is not None:
                return "block", height
        raise NotFound(f"no transaction or block with id {raw_id.hex()}")


def _records_of(
    ledger: NodeLedger, prefix: str, member_id: str, roles: tuple[str, ...]
) -> tuple[list[dict[str, Any]], bool]:
    """Records of one kind naming the member in one of `roles`, and whether all were seen."""
    found = []
    keys = ledger.keys_with_prefix(prefix)
    for key in keys[:RECORD_SCAN_BUDGET]:
        record = ledger.get(key)
        if isinstance(record, dict) and any(record.get(role) == member_id for role in roles):
            found.append(plain(record))
    return found, len(keys) <= RECORD_SCAN_BUDGET
