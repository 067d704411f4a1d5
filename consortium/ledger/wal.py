"""Checkpoints of a store's WAL that its writer does not wait for: the copying runs on a worker
thread, on a second connection.

A checkpoint copies the pages the WAL holds into the database file and syncs the file. In a large
store those pages lie all over the file, so the copy costs hundreds of milliseconds to seconds;
run inside a COMMIT (SQLite's automatic checkpoint), it stalls everything the node does. Here a
second connection does the copying on a worker thread (SQLite releases the GIL while it works)
in PASSIVE mode, which never blocks the node's writes; the node's own connection then copies the
few frames written meanwhile (`Store.finish_checkpoint`), and its next write starts the WAL again.

Nothing here changes what is durable or when: committed transactions are in the WAL, synced by
the node before it sends; a checkpoint only moves them into the file, and SQLite makes that safe
to interrupt at any point.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from consortium.ledger.store import Store

CHECKPOINT_ROWS = 16_000
"""Rows written since the last checkpoint that start the next one: about as many WAL pages once
the tables are large (a random key dirties a page per row), so the WAL stays near the size the
store's own automatic checkpoint allowed."""

QUIET_FRAMES = 256
"""A background pass that copied fewer frames than this leaves little for the node's own pass."""

MAX_PASSES = 4


class WalCheckpointer:
    """A second connection to a store's file, used only to checkpoint: `copy_until_quiet` runs on
    a worker thread, `due`, `start` and `finish` on the thread that writes the store."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._rows_at_last = 0

    def close(self) -> None:
        self.db.close()

    def due(self, store: Store) -> bool:
        return store.rows_written - self._rows_at_last >= CHECKPOINT_ROWS

    def copy(self) -> tuple[int, int]:
        """One PASSIVE pass: the WAL's frames and how many of them are now copied."""
        _, frames, copied = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return frames, copied

    def start(self, store: Store) -> None:
        """A checkpoint begins (on the node's thread): rows from now on count towards the next."""
        self._rows_at_last = store.rows_written

    def copy_until_quiet(self) -> tuple[int, int]:
        """On a worker thread: passes until one finds little new (at most `MAX_PASSES`). Returns
        the passes made and the frames copied."""
        copied_before = total = passes = 0
        while passes < MAX_PASSES:
            _, copied = self.copy()
            passes += 1
            # Fewer copied than before: the WAL started again in between, all of it was copied.
            new = copied - copied_before if copied >= copied_before else copied
            total += new
            copied_before = copied
            if new < QUIET_FRAMES:
                break
        return passes, total

    def finish(self, store: Store) -> int:
        """On the node's thread, between its writes: copy what the passes left. Returns the
        frames still not copied (0 unless a reader's snapshot holds them back)."""
        frames, done = store.finish_checkpoint()
        return max(0, frames - done)
