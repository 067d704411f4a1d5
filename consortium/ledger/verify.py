"""`ledger verify`: recheck a node's store from genesis without trusting the node.

Everything is derived again from the stored bytes and the public keys: header links, Merkle roots
of transactions and receipts, every transaction signature, every commit certificate, and the state
root by re-executing every block; the stored state table is compared with the re-executed state,
and the transaction index (which answers "was this committed?") with the stored blocks.

The file itself is not trusted either: a missing, empty, truncated, locked or foreign file, or one
without the store's tables, is a failed report with a one-line reason, not an exception.
"""

from __future__ import annotations

import contextlib
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consortium.certificate import certificate_problems
from consortium.config import NetworkConfig
from consortium.errors import RemoteError
from consortium.keys import KeyDirectory
from consortium.ledger.block import receipts_root
from consortium.ledger.chain import Chain
from consortium.ledger.ledger import genesis_state
from consortium.ledger.signatures import BatchVerifier
from consortium.ledger.store import Store, StoreError

# A reader beside a node in WAL mode is not blocked by its writes, so waiting long for a lock only
# hides a process that holds the whole file (SQLite's default wait is 5 s per statement).
BUSY_TIMEOUT_S = 2.0
TABLES = ("meta", "blocks", "txs", "state", "consensus")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100
_LISTED_ERRORS = 20  # per check, so that a wholly foreign table does not flood the report
_KEPT_MISMATCHES = 10_000  # index rows remembered for pairing; beyond this they are only counted


@dataclass(slots=True)
class VerifyReport:
    ok: bool = True
    height: int = -1
    head_hash: str = ""
    blocks_checked: int = 0
    txs_checked: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.ok = False
        self.errors.append(message)

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "height": self.height,
            "head_hash": self.head_hash,
            "blocks_checked": self.blocks_checked,
            "txs_checked": self.txs_checked,
            "errors": self.errors,
        }


# -- opening a file that may be damaged ------------------------------------------------------


def shown(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    with contextlib.suppress(ValueError, OSError):
        return str(path.absolute().relative_to(Path.cwd()))
    return str(path)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _file_problem(path: Path) -> str | None:
    """What is wrong with the file before SQLite sees it: SQLite opens an empty file as an empty
    database and names neither a missing file nor a directory."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "file does not exist"
    except OSError as exc:
        return f"cannot read the file: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_size == 0:
        return "file is empty"
    try:
        with path.open("rb") as file:
            header = file.read(_HEADER_BYTES)
    except OSError as exc:
        return f"cannot read the file: {exc.strerror or exc}"
    if not header.startswith(_SQLITE_MAGIC[: len(header)]):
        return "file is not a database"
    if len(header) < _HEADER_BYTES:
        return f"file is truncated: {len(header)} bytes, shorter than the SQLite header"
    return None


def _declared_size(path: Path) -> int | None:
    """The size the SQLite header gives the file (page size times page count), if it is valid."""
    try:
        with path.open("rb") as file:
            header = file.read(_HEADER_BYTES)
    except OSError:
        return None
    if len(header) < _HEADER_BYTES or not header.startswith(_SQLITE_MAGIC):
        return None
    if header[24:28] != header[92:96]:  # the page count is stale unless these agree
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    return page_size * int.from_bytes(header[28:32], "big")


def damage_reason(path: Path, exc: BaseException) -> str:
    """One line naming what `exc`, raised while reading the store at `path`, says about the file."""
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return (
                f"store {shown(path)}: database is locked by another connection"
                f" (gave up after {BUSY_TIMEOUT_S:g} s)"
            )
        reason = _one_line(str(exc))
        if name.startswith("SQLITE_CORRUPT"):
            declared = _declared_size(path)
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                if declared is not None and size < declared:
                    reason = f"file is truncated: {size} of {declared} bytes ({reason})"
        return f"store {shown(path)}: {reason}"
    if isinstance(exc, OSError):
        return f"store {shown(path)}: {_one_line(exc.strerror or str(exc))}"
    return f"store {shown(path)}: {_one_line(str(exc))}"


@contextlib.contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """Re-raise what a damaged file makes SQLite or the OS raise as a `StoreError` with a one-line
    reason, which every command reports as such instead of a traceback."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(damage_reason(path, exc)) from None


def open_readonly(path: Path) -> Store:
    """Open a node's store for reading only, failing with a `StoreError` that names the damage.

    Read-only, the file is never created or written; the short busy timeout turns a file that
    another process holds locked into an error instead of a long wait."""
    problem = _file_problem(path)
    if problem is not None:
        raise StoreError(f"store {shown(path)}: {problem}")
    with store_errors(path):
        store = Store(path, readonly=True)
        try:
            store.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        except BaseException:
            store.close()
            raise
    return store


def structure_problems(store: Store) -> list[str]:
    """SQLite's own check of the file's B-trees and free pages (which the node's writes rely on
    and reading the tables does not fully cover), and the store's tables being there at all."""
    rows = [_one_line(row[0]) for row in store.db.execute("PRAGMA quick_check(21)")]
    if rows != ["ok"]:
        more = " and more" if len(rows) > _LISTED_ERRORS else ""
        return [f"integrity check failed: {'; '.join(rows[:_LISTED_ERRORS])}{more}"]
    names = {row[0] for row in store.db.execute("SELECT name FROM sqlite_master")}
    missing = [table for table in TABLES if table not in names]
    return [f"missing tables: {', '.join(missing)}"] if missing else []


# -- verify ---------------------------------------------------------------------------------


def verify_store(
    config: NetworkConfig, keys: KeyDirectory, path: Path, verifier: BatchVerifier | None = None
) -> VerifyReport:
    """Check the store at `path`; whatever the file holds, the answer is a report, not a raise."""
    report = VerifyReport()
    try:
        store = open_readonly(path)
    except StoreError as exc:
        report.fail(str(exc))
        return report
    try:
        with store_errors(path):
            # One read transaction: a node writing beside us cannot make the tables disagree.
            store.db.execute("BEGIN")
            problems = structure_problems(store)
            for problem in problems:
                report.fail(f"store {shown(path)}: {problem}")
            if not problems:
                _verify(config, keys, store, report, verifier)
    except RemoteError as exc:
        report.fail(str(exc))
    finally:
        store.close()
    return report


def verify_open_store(
    config: NetworkConfig, keys: KeyDirectory, store: Store, verifier: BatchVerifier | None = None
) -> VerifyReport:
    """`verify_store` for a store already open (the simulator's in-memory ones)."""
    report = VerifyReport()
    try:
        problems = structure_problems(store)
        for problem in problems:
            report.fail(f"store {store.path}: {problem}")
        if not problems:
            _verify(config, keys, store, report, verifier)
    except RemoteError as exc:
        report.fail(str(exc))
    return report


def _verify(
    config: NetworkConfig,
    keys: KeyDirectory,
    store: Store,
    report: VerifyReport,
    verifier: BatchVerifier | None,
) -> None:
    state = genesis_state(config, keys)
    chain = Chain(config.chain_id, state, Chain.genesis_header(config.chain_id, state), verifier)
    _check_meta(store, config.chain_id, chain.head.hash, report)
    index = _IndexCheck(store)
    top = store.height()
    for height in range(top + 1):
        where = f"block {height}"
        try:
            stored = store.block(height)
        except RemoteError as exc:
            report.fail(f"{where}: {exc}")
            return
        if stored is None:
            report.fail(f"{where}: missing from the store (height {top})")
            return
        try:
            header = stored.decoded_header()
        except RemoteError as exc:
            report.fail(f"{where}: header is corrupt: {exc}")
            return
        if header.hash != stored.hash:
            report.fail(f"{where}: stored hash does not match its header")
        if stored.height == 0:
            if header != chain.head:
                report.fail("block 0: genesis does not match nodes.yaml and the public keys")
                return
            index.block(0, [])
            report.blocks_checked += 1
            continue
        if header.parent_hash != chain.head.hash:
            report.fail(f"{where}: parent hash does not link to block {chain.head.height}")
            return
        try:
            executed = chain.validate_parts(header, stored.txs)
        except RemoteError as exc:
            report.fail(f"{where}: {exc}")
            return
        try:
            receipts = stored.decoded_receipts()
        except RemoteError as exc:
            report.fail(f"{where}: receipts are corrupt: {exc}")
            receipts = None
        if receipts is not None:
            if receipts_root(receipts) != header.receipts_root:
                report.fail(f"{where}: stored receipts do not match the receipts root")
            elif receipts != executed.receipts:
                report.fail(f"{where}: stored receipts differ from re-execution")
        try:
            certificate = stored.decoded_certificate()
        except RemoteError as exc:
            report.fail(f"{where}: commit certificate is corrupt: {exc}")
            certificate = None
        if certificate is None:
            if stored.certificate is None:
                report.fail(f"{where}: no commit certificate")
        elif certificate.block_hash != header.hash or certificate.height != header.height:
            report.fail(f"{where}: commit certificate is for another block")
        else:
            check = chain.verifier.verify_many
            for problem in certificate_problems(
                certificate, config.chain_id, keys.node_keys, check
            ):
                report.fail(f"{where}: commit certificate: {problem}")
        index.block(height, [t.tx_id for t in executed.block.txs])
        chain.commit(executed.hash)
        report.blocks_checked += 1
        report.txs_checked += len(stored.txs)
    report.height = chain.head.height
    report.head_hash = chain.head.hash.hex()
    (rows,) = store.db.execute("SELECT COUNT(*) FROM blocks").fetchone()
    if rows != top + 1:
        report.fail(f"blocks table: {rows} rows for the {top + 1} heights 0 to {top}")
    for problem in index.finish():
        report.fail(problem)
    _check_state(store, chain, report)


def _check_meta(store: Store, chain_id: str, genesis_hash: bytes, report: VerifyReport) -> None:
    """The node refuses its store, or cannot reopen it, unless these say this chain."""
    try:
        stored_chain = store.get_meta("chain_id")
        stored_genesis = store.get_meta("genesis_hash")
    except RemoteError as exc:
        report.fail(f"meta table: corrupt value: {exc}")
        return
    if stored_chain != chain_id:
        report.fail(f"meta table: chain id is {stored_chain!r}, not {chain_id!r}")
    if stored_genesis != genesis_hash:
        found = stored_genesis.hex() if isinstance(stored_genesis, bytes) else repr(stored_genesis)
        report.fail(
            f"meta table: genesis hash {found} is not {genesis_hash.hex()}"
            " (the genesis of nodes.yaml and the public keys)"
        )


def _check_state(store: Store, chain: Chain, report: VerifyReport) -> None:
    (odd_keys,) = store.db.execute(
        "SELECT COUNT(*) FROM state WHERE typeof(key) != 'text'"
    ).fetchone()
    if odd_keys:
        report.fail(f"state table: keys that are not text: {odd_keys}")
    try:
        stored_state = store.load_state()
    except RemoteError as exc:
        report.fail(f"state table: {exc}")
        return
    if stored_state.root != chain.state.root:
        bad = [k for k, v in chain.state.items() if stored_state.get(k) != v]
        extra = [k for k in stored_state.values if chain.state.get(k) is None]
        report.fail(f"state table differs from re-execution at keys {(bad + extra)[:5]}")
    try:
        accumulator = store.stored_accumulator()
    except RemoteError as exc:
        report.fail(f"meta table: {exc}")
        return
    if accumulator is not None and accumulator != chain.state.accumulator:
        report.fail("meta table: the stored state accumulator differs from re-execution")


# -- the transaction index -------------------------------------------------------------------

_Row = tuple[Any, Any, Any]  # (tx_id, height, position) as read, of whatever type the file holds


def _well_formed(row: _Row) -> bool:
    tx_id, height, position = row
    return type(tx_id) is bytes and type(height) is int and type(position) is int


class _IndexCheck:
    """The index must hold exactly one row per transaction of each block: (its id, the block's
    height, its first position in the block), the rows `Store.append` writes.

    The rows are read in (height, position) order beside the blocks, so memory holds only the rows
    that do not match, not a second index of the whole chain. A row moved to another block or
    position, or given another id, is reported once, as the edit it is."""

    def __init__(self, store: Store) -> None:
        self._rows = store.db.execute(
            "SELECT tx_id, height, position FROM txs ORDER BY height, position, tx_id"
        )
        self._next: _Row | None = self._rows.fetchone()
        self._missing: list[_Row] = []  # expected, not in the index
        self._extra: list[_Row] = []  # in the index, not expected
        self._uncounted = 0  # mismatches beyond the kept ones

    def _keep(self, into: list[_Row], row: _Row) -> None:
        if len(into) < _KEPT_MISMATCHES:
            into.append(row)
        else:
            self._uncounted += 1

    def block(self, height: int, tx_ids: Iterable[bytes]) -> None:
        expected: dict[bytes, int] = {}
        for position, tx_id in enumerate(tx_ids):
            expected.setdefault(tx_id, position)
        # SQLite sorts NULL before numbers and text or blobs after them; none is a block height.
        while self._next is not None and (
            type(self._next[1]) not in (int, float) or self._next[1] <= height
        ):
            row = self._next
            self._next = self._rows.fetchone()
            tx_id, row_height, position = row
            if _well_formed(row) and row_height == height and expected.get(tx_id) == position:
                del expected[tx_id]
            else:
                self._keep(self._extra, row)
        for tx_id, position in expected.items():
            self._keep(self._missing, (tx_id, height, position))

    def finish(self) -> list[str]:
        """Every mismatch, once every block has been seen: the rows left are past the head."""
        while self._next is not None:
            self._keep(self._extra, self._next)
            self._next = self._rows.fetchone()
        problems: list[str] = []
        unmatched = dict(enumerate(self._missing))
        by_id: dict[bytes, list[int]] = {}
        by_place: dict[tuple[int, int], int] = {}
        for i, (tx_id, height, position) in unmatched.items():
            by_id.setdefault(tx_id, []).append(i)
            by_place.setdefault((height, position), i)
        leftover: list[_Row] = []
        for row in self._extra:
            match = self._pair(row, unmatched, by_id, by_place) if _well_formed(row) else None
            if match is None:
                leftover.append(row)
                continue
            tx_id, height, position = row
            want_id, want_height, want_position = match
            if tx_id == want_id:
                problems.append(
                    f"tx index: transaction {want_id.hex()} of block {want_height} position"
                    f" {want_position} is indexed at block {height} position {position}"
                )
            else:
                problems.append(
                    f"tx index: block {height} position {position} is indexed as transaction"
                    f" {tx_id.hex()}, not {want_id.hex()}"
                )
        for tx_id, height, position in unmatched.values():
            problems.append(
                f"tx index: transaction {tx_id.hex()} of block {height} position {position}"
                " has no index row"
            )
        for row in leftover:
            problems.append(f"tx index: row {_describe(row)} matches no transaction in the blocks")
        more = len(problems) - _LISTED_ERRORS + self._uncounted
        if more > 0:
            problems = [*problems[:_LISTED_ERRORS], f"tx index: {more} more rows do not match"]
        return problems

    @staticmethod
    def _pair(
        row: _Row,
        unmatched: dict[int, _Row],
        by_id: dict[bytes, list[int]],
        by_place: dict[tuple[int, int], int],
    ) -> _Row | None:
        """The expected row this one is an edit of: same id (moved), else same place (renamed)."""
        tx_id, height, position = row
        candidates = [i for i in by_id.get(tx_id, []) if i in unmatched]
        if not candidates:
            place = by_place.get((height, position))
            candidates = [place] if place is not None and place in unmatched else []
        if not candidates:
            return None
        return unmatched.pop(candidates[0])


def _describe(row: _Row) -> str:
    tx_id, height, position = row
    shown_id = tx_id.hex() if isinstance(tx_id, bytes) else repr(tx_id)[:80]
    return f"(tx {shown_id}, height {height!r:.40}, position {position!r:.40})"
