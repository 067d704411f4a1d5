"""One node's SQLite store (WAL): blocks with receipts and commit certificates, the committed
state, and an index of transactions.

A block, its receipts, its certificate, its transactions' index rows and its state writes go in
one SQLite transaction, so after a crash the store holds each block whole or not at all, and the
state table always matches the head. Every stored value is msgpack.

Where the write time goes (`benchmarks/store_bench.py`): tx ids and state keys are random, so a
block of 2,000 transactions dirties about one B-tree page per tx index row and per state write,
5,000 or so pages, and each costs a WAL frame at COMMIT (a checksum and two `pwrite` calls) and a
copy into the database file at a checkpoint (a `pread`, a `pwrite` and its share of the
`fdatasync` calls). That is most of the time; Python, statement preparation and the BEGIN/COMMIT
of each call are small next to it. Hence:

- `cache_size` (the store's share of the node's cache budget, `consortium.budget`): room for the tx index and state B-trees, so that inserts find their
  pages in memory instead of reading them back from the WAL or the file, and a block's transaction
  does not spill dirty pages into the WAL before COMMIT (the default 2 MiB does both once the
  tables grow). SQLite allocates the pages only as it uses them.
- `wal_autocheckpoint` (`_CHECKPOINT_PAGES`): the default of 1,000 frames checkpoints after every
  block, so every page a block dirties is also copied to the file and `fdatasync`-ed at once. Every
  few blocks instead, a page rewritten by several blocks (the small tables at first, then the tree
  interiors and hot keys) is copied once, and the syncs are rarer. The price is a WAL of up to about
  `_CHECKPOINT_PAGES` pages plus one block on disk (bounded after a checkpoint by
  `journal_size_limit`), more WAL to read back when opening after a crash (about 0.2 s), and a
  checkpoint of that size on the COMMIT that crosses the mark (about as long as the slowest block
  COMMIT was before).
- Rows are inserted in key order: neighbouring inserts then hit the same pages while hot (about
  10 % less time in the inserts; the pages dirtied are the same).
- Consensus records: one `executemany` for the deletes and one for the writes, after keeping the
  last write of each key.

Layouts measured and left alone: a rowid `txs` table with an index on the id dirties as many pages
(the index is as random) in a file twice the size; larger pages (8 or 16 KiB) help while the tables
are small and cost more per block once they are large; `mmap_size` and UPSERT instead of
`INSERT OR REPLACE` made no measurable difference.

A node checkpoints in the background instead (`consortium.ledger.wal`, `background_checkpoints`):
a second connection on a worker thread copies the WAL into the file while the node goes on
committing, and the node's own connection then copies the few frames added meanwhile, so the
next write starts the WAL again. A checkpoint of a large store writes pages all over its file and
syncs it, which took 0.3-3.6 s inside a COMMIT at 800,000 transactions: long enough to stall the
node's event loop past its peers' view-change timers. The connection's own automatic checkpoint
stays, at `_SAFETY_CHECKPOINT_PAGES`, so the WAL stays bounded if the background one falls behind.

Durability: WAL with `synchronous=NORMAL`, so COMMIT returns once its WAL frames are in the OS
page cache: a commit survives the process being killed (`kill -9`), never half of one. What must
survive a power loss or an OS crash is made durable by `sync`, one `fsync` of the WAL that covers
every commit before it (blocks and consensus records alike). The node calls it once per turn of
its event loop, after the turn's steps and before anything they send leaves (`durable: false` in
nodes.yaml skips it, unsafe under power loss). The page cache and the checkpoint interval change how
much work a COMMIT does, not when it is durable. The schema is the one earlier versions wrote.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consortium import codec
from consortium.certificate import CommitCertificate
from consortium.errors import CodecError, RemoteError
from consortium.ledger.block import BlockHeader, Receipt, encode_receipts
from consortium.ledger.state import ACCUMULATOR_BYTES, Layer, State

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    header BLOB NOT NULL,
    txs BLOB NOT NULL,
    receipts BLOB NOT NULL,
    certificate BLOB
);
CREATE TABLE IF NOT EXISTS txs (
    tx_id BLOB NOT NULL,
    height INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (tx_id, height)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consensus (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
"""

_CACHE_KIB = 128 * 1024
_CHECKPOINT_PAGES = 16_000
_SAFETY_CHECKPOINT_PAGES = 2 * _CHECKPOINT_PAGES
_WAL_LIMIT_BYTES = 128 * 1024 * 1024

_ACCUMULATOR = "state_accumulator"
_KEYS_PER_READ = 500  # well below SQLite's limit on a statement's parameters

_INSERT_TX = "INSERT OR IGNORE INTO txs (tx_id, height, position) VALUES (?, ?, ?)"
_UPSERT_STATE = "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)"
_DELETE_STATE = "DELETE FROM state WHERE key = ?"
_UPSERT_RECORD = "INSERT OR REPLACE INTO consensus (key, value) VALUES (?, ?)"
_DELETE_RECORD = "DELETE FROM consensus WHERE key = ?"


class StoreError(RemoteError):
    """The store on disk is not what this node wrote: corrupt, foreign or truncated."""


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """A block as stored, in raw form: `ledger verify` re-derives everything from these bytes."""

    height: int
    hash: bytes
    header: bytes
    txs: tuple[bytes, ...]
    receipts: bytes
    certificate: bytes | None

    def decoded_header(self) -> BlockHeader:
        return BlockHeader.from_wire(codec.decode(self.header))

    def decoded_receipts(self) -> tuple[Receipt, ...]:
        value = codec.expect_type(codec.decode(self.receipts), tuple, "receipts")
        return tuple(Receipt.from_wire(r) for r in value)

    def decoded_certificate(self) -> CommitCertificate | None:
        if self.certificate is None:
            return None
        return CommitCertificate.from_wire(codec.decode(self.certificate))


class Store:
    """`db`: an open connection to use instead of the file at `path` (the simulator's disk keeps
    each node's database in memory and overrides `sync` and `_committed`)."""

    def __init__(
        self,
        path: Path | str,
        readonly: bool = False,
        db: sqlite3.Connection | None = None,
        cache_bytes: int = _CACHE_KIB * 1024,
        background_checkpoints: bool = False,
    ) -> None:
        self.path = Path(path)
        self.rows_written = 0  # rows inserted, replaced or deleted: what a checkpoint copies
        if db is not None:
            self.db = db
            self.db.executescript(_SCHEMA)
        elif readonly:
            if not self.path.exists():
                raise StoreError(f"no store at {self.path}")
            uri = f"file:{self.path}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(f"PRAGMA cache_size=-{max(1, cache_bytes // 1024)}")
            mark = _SAFETY_CHECKPOINT_PAGES if background_checkpoints else _CHECKPOINT_PAGES
            self.db.execute(f"PRAGMA wal_autocheckpoint={mark}")
            self.db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
            self.db.executescript(_SCHEMA)
        self._wal_fd: int | None = None

    def close(self) -> None:
        self.db.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

    def sync(self) -> None:
        """Make every commit so far durable: `fsync` the WAL, which holds them all in WAL mode
        (a checkpoint syncs what it copies into the database file itself)."""
        if self._wal_fd is None:
            wal = self.path.with_name(self.path.name + "-wal")
            try:
                self._wal_fd = os.open(wal, os.O_RDONLY)
            except FileNotFoundError:  # nothing written since the last checkpoint truncated it
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the WAL's directory entry, once
            finally:
                os.close(directory)
        os.fsync(self._wal_fd)

    def finish_checkpoint(self) -> tuple[int, int]:
        """Copy what the WAL holds beyond the last checkpoint into the file, from this connection,
        between its writes: once every frame is copied, the next write starts the WAL again.
        Returns the WAL's frames and how many of them are copied (PASSIVE: readers are not
        waited for, so a reader's snapshot may keep some back)."""
        _, frames, copied = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return frames, copied

    # -- meta ------------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else codec.decode(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, codec.encode(value))
        )

    # -- consensus records -----------------------------------------------------------------

    def consensus_records(self) -> dict[str, bytes]:
        """What the replica persisted (its view, votes, prepared proofs), to resume after a crash."""
        return dict(self.db.execute("SELECT key, value FROM consensus"))

    def write_consensus_records(self, writes: list[tuple[str, bytes | None]]) -> None:
        """Apply the replica's writes (None deletes) in one transaction; `sync` then makes them
        durable before anything that depends on them is sent.

        Writes to one key within a call: the last one wins, as if applied in order."""
        if not writes:
            return
        last = dict(writes)
        upserts = [(k, v) for k, v in last.items() if v is not None]
        deletes = [(k,) for k, v in last.items() if v is None]
        with self._transaction():
            if deletes:
                self.db.executemany(_DELETE_RECORD, deletes)
            if upserts:
                self.db.executemany(_UPSERT_RECORD, upserts)
        self.rows_written += len(last)

    # -- blocks ----------------------------------------------------------------------------

    def initialise(self, chain_id: str, genesis: BlockHeader, state: State) -> None:
        """Write genesis (header and full state) once; refuse a store of another chain."""
        known = self.get_meta("genesis_hash")
        if known is not None:
            if known != genesis.hash:
                raise StoreError(f"{self.path} holds another chain (genesis {known.hex()[:16]})")
            return
        with self._transaction():
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES ('chain_id', ?), ('genesis_hash', ?)",
                (codec.encode(chain_id), codec.encode(genesis.hash)),
            )
            self._insert_block(0, genesis.hash, genesis.encode(), (), codec.encode(()), None)
            self.db.executemany(
                "INSERT INTO state (key, value) VALUES (?, ?)",
                [(k, codec.encode(v)) for k, v in state.items()],
            )
            self._set_accumulator(state.accumulator)

    def append(
        self,
        header: BlockHeader,
        raws: tuple[bytes, ...],
        tx_ids: list[bytes],
        receipts: tuple[Receipt, ...],
        certificate: CommitCertificate,
        layer: Layer,
    ) -> None:
        """Store a committed block and its state writes atomically."""
        with self._transaction():
            self._insert_block(
                header.height,
                header.hash,
                header.encode(),
                raws,
                encode_receipts(receipts),
                codec.encode(certificate.to_wire()),
            )
            height = header.height
            # Sorted rows are the same rows (a repeated id keeps its first position, as before).
            self.db.executemany(
                _INSERT_TX, sorted([(tx_id, height, i) for i, tx_id in enumerate(tx_ids)])
            )
            self.db.executemany(_UPSERT_STATE, sorted(layer.encoded.items()))
            deletes = [(k,) for k, v in layer.values.items() if v is None]
            if deletes:
                self.db.executemany(_DELETE_STATE, deletes)
            self._set_accumulator(layer.accumulator)
        self.rows_written += 1 + len(tx_ids) + len(layer.encoded) + len(deletes)

    # -- state -----------------------------------------------------------------------------

    def state_value(self, key: str) -> bytes | None:
        """The encoded value of one committed state entry, or None when absent."""
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def state_values(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The encoded values of those of `keys` present, read in a few statements: one lookup
        from Python costs several microseconds, most of it the call, not the B-tree."""
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), _KEYS_PER_READ):
            chunk = keys[start : start + _KEYS_PER_READ]
            marks = ",".join("?" * len(chunk))
            found.update(
                self.db.execute(f"SELECT key, value FROM state WHERE key IN ({marks})", chunk)
            )
        return found

    def state_keys_with_prefix(self, prefix: str) -> list[str]:
        """The committed state's keys that start with `prefix`, in order: a range of the index."""
        if not prefix:
            return [key for (key,) in self.db.execute("SELECT key FROM state ORDER BY key")]
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self.db.execute(
            "SELECT key FROM state WHERE key >= ? AND key < ? ORDER BY key", (prefix, upper)
        )
        return [key for (key,) in rows]

    def state_rows(self) -> Iterator[tuple[str, bytes]]:
        """Every committed state entry, encoded, in key order, read as the caller goes."""
        return iter(self.db.execute("SELECT key, value FROM state ORDER BY key"))

    def stored_accumulator(self) -> int | None:
        """The state's accumulator as of the head, written with every block (None in a store
        written before it was kept: then it is computed once from the state table)."""
        value = self.get_meta(_ACCUMULATOR)
        if value is None:
            return None
        if type(value) is not bytes or len(value) != ACCUMULATOR_BYTES:
            raise StoreError(f"{self.path}: the stored state accumulator is damaged")
        return int.from_bytes(value, "little")

    def keep_accumulator(self, accumulator: int) -> None:
        """Persist an accumulator computed from the state table, so the next start reads it."""
        with self._transaction():
            self._set_accumulator(accumulator)

    def _set_accumulator(self, accumulator: int) -> None:
        self.set_meta(_ACCUMULATOR, accumulator.to_bytes(ACCUMULATOR_BYTES, "little"))

    def _insert_block(
        self,
        height: int,
        block_hash: bytes,
        header: bytes,
        raws: tuple[bytes, ...],
        receipts: bytes,
        certificate: bytes | None,
    ) -> None:
        self.db.execute(
            "INSERT INTO blocks (height, hash, header, txs, receipts, certificate)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (height, block_hash, header, codec.encode_flat(list(raws)), receipts, certificate),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db, self._committed)

    def _committed(self) -> None:
        """Called after every COMMIT: a point the database may be found at after a crash."""

    def height(self) -> int:
        row = self.db.execute("SELECT MAX(height) FROM blocks").fetchone()
        return -1 if row[0] is None else row[0]

    def block(self, height: int) -> StoredBlock | None:
        row = self.db.execute(
            "SELECT height, hash, header, txs, receipts, certificate FROM blocks WHERE height = ?",
            (height,),
        ).fetchone()
        return None if row is None else _stored(row)

    def blocks(self, start: int = 0) -> Iterator[StoredBlock]:
        cursor = self.db.execute(
            "SELECT height, hash, header, txs, receipts, certificate FROM blocks"
            " WHERE height >= ? ORDER BY height",
            (start,),
        )
        for row in cursor:
            yield _stored(row)

    def tx_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM txs").fetchone()[0]

    def tx_locations(self, tx_id: bytes) -> list[tuple[int, int]]:
        rows = self.db.execute(
            "SELECT height, position FROM txs WHERE tx_id = ? ORDER BY height", (tx_id,)
        )
        return [(h, p) for h, p in rows]

    def load_state(self) -> State:
        """The whole committed state in memory: for checks that compare it entry by entry."""
        state = State()
        writes = {}
        for key, value in self.state_rows():
            try:
                writes[key] = codec.decode(value)
            except CodecError as exc:
                raise StoreError(f"state entry {key!r} is corrupt: {exc}") from None
        state.apply(writes)
        return state


def _stored(row: tuple) -> StoredBlock:
    height, block_hash, header, txs, receipts, certificate = row
    try:
        raws = codec.expect_type(codec.decode(txs), tuple, "stored txs")
    except CodecError as exc:
        raise StoreError(f"block {height}: transaction list is corrupt: {exc}") from None
    return StoredBlock(height, block_hash, header, raws, receipts, certificate)


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` on any exception."""

    def __init__(self, db: sqlite3.Connection, committed: Callable[[], None]) -> None:
        self.db = db
        self.committed = committed

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type:
            self.db.execute("ROLLBACK")
            return
        self.db.execute("COMMIT")
        self.committed()
