"""A node's disk in the simulator: the real SQLite store, in memory, that loses what was not synced.

The store's database lives in an in-memory SQLite connection. A sync (after which the node may
send what depends on its writes) takes time, as an `fsync` does: `begin_sync` serializes the
whole database as it is when the sync starts, and `complete_sync` makes that image the durable
one, later. Every COMMIT in between is remembered as an image the OS might have written back on
its own. A crash keeps the last synced image or, sometimes, one of those later commits (never half
of one: SQLite's transactions are atomic on a real disk too), so a crash loses every unsynced write
or some of them; a sync the crash interrupted counts as not done. A restart reopens the real
store from what survived.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field

from consortium.ledger.store import Store

MAX_UNSYNCED_IMAGES = 8


class PowerLoss(Exception):
    """The power failed while the node was writing: nothing after this point happened."""


@dataclass
class SimDisk:
    name: str
    synced: bytes | None = None
    unsynced: list[bytes] = field(default_factory=list)  # the last commits' images, oldest first
    commits: int = 0  # commits so far: the last of `unsynced` is commit number `commits`
    syncs: int = 0
    crashes: int = 0
    lost_writes: int = 0  # crashes that lost at least one committed but unsynced write
    power_fails: bool = False  # the next write or sync does not happen: the node is crashing

    def open(self) -> MemoryStore:
        db = sqlite3.connect(":memory:", isolation_level=None)
        if self.synced is not None:
            db.deserialize(self.synced)
        return MemoryStore(self, db)

    def crash(self, rng: random.Random, keep_some_unsynced: float = 0.3) -> None:
        """What survives a power loss: the synced image, or a later commit that reached the
        disk anyway; the images still pending are gone (and so is a write the power cut)."""
        self.crashes += 1
        if self.power_fails and not self.unsynced:
            self.lost_writes += 1
        self.power_fails = False
        if self.unsynced:
            if rng.random() < keep_some_unsynced:
                kept = rng.randrange(len(self.unsynced))
                self.synced = self.unsynced[kept]
                if kept < len(self.unsynced) - 1:
                    self.lost_writes += 1
            else:
                self.lost_writes += 1
        self.unsynced.clear()

    def complete_sync(self, image: bytes, commits_before: int) -> None:
        """A sync begun after `commits_before` commits, with this image, reached the disk: the
        commits made since it began are still unsynced."""
        self.synced = image
        newer = self.commits - commits_before
        self.unsynced = self.unsynced[-newer:] if newer else []
        self.syncs += 1


class MemoryStore(Store):
    def __init__(self, disk: SimDisk, db: sqlite3.Connection) -> None:
        self.disk = disk
        super().__init__(f"sim:{disk.name}", db=db)
        self._image: bytes | None = None  # the database as last serialized ...
        self._image_changes = -1  # ... when it had made this many row changes

    def _serialized(self) -> bytes:
        """The database's bytes, serialized again only if a row changed since the last time
        (the schema is made at open, before any image)."""
        changes = self.db.total_changes
        if self._image is None or changes != self._image_changes:
            self._image = self.db.serialize()
            self._image_changes = changes
        return self._image

    def write_consensus_records(self, writes: list[tuple[str, bytes | None]]) -> None:
        if self.disk.power_fails:
            raise PowerLoss(self.disk.name)
        super().write_consensus_records(writes)

    def sync(self) -> None:
        self.disk.complete_sync(*self.begin_sync())

    def begin_sync(self) -> tuple[bytes, int]:
        """What a sync starting now will make durable once it completes, and when it began."""
        if self.disk.power_fails:
            raise PowerLoss(self.disk.name)
        return self._serialized(), self.disk.commits

    def _committed(self) -> None:
        self.disk.commits += 1
        unsynced = self.disk.unsynced
        unsynced.append(self._serialized())
        if len(unsynced) > MAX_UNSYNCED_IMAGES:
            del unsynced[0]

    def close(self) -> None:
        self.db.close()
