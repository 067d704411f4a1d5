"""Group commit: what a node sends waits for the sync that makes its disk back it, and the node
does not wait for the sync.

A sync covers every write made before it started. `sync` starts one at once when none is running,
or asks for the next; every publish from then on waits, in order, until a sync started after that
request has finished. Syncs never overlap, so while one waits for the disk the node goes on with
the next messages, and the next sync covers every step gathered meanwhile. Publishes leave in the
order they were made, whether or not their own step asked for a sync: anything a node sends may
depend on what it wrote before.

The outbox is the `Disk` and the `Bus` that `effects.carry_out` is given; the shell gives it a way
to start a sync (a worker thread in the node process, a timed event in the simulator) and tells it
when one has finished (`synced`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from consortium.node.core import Publish
from consortium.node.effects import Disk

Waiting = Publish | Callable[[], None]


class Outbox:
    def __init__(
        self, disk: Disk, start_sync: Callable[[int], None], send: Callable[[Publish], None]
    ) -> None:
        self.disk = disk
        self.start_sync = start_sync  # start sync number N; the shell calls `synced(N)` after
        self.send = send
        self.started = 0
        self.finished = 0
        self.required = 0  # the sync that what is published from now on waits for
        self.waiting: deque[tuple[int, Waiting]] = deque()

    @property
    def idle(self) -> bool:
        """No sync running and nothing waiting: everything published has been sent."""
        return self.started == self.finished and not self.waiting

    def write_consensus_records(self, writes: list[tuple[str, bytes | None]]) -> None:
        self.disk.write_consensus_records(writes)

    def sync(self) -> None:
        # Idle: the sync started now covers these writes. Running: it may have begun before
        # them, so the next one, started when it finishes, covers them.
        self.required = self.started + 1
        if self.started == self.finished:
            self._start_next()

    def publish(self, item: Publish) -> None:
        self._enqueue(item)

    def after_sent(self, then: Callable[[], None]) -> None:
        """Run `then` once everything published so far has been sent."""
        self._enqueue(then)

    def synced(self, number: int) -> None:
        """Sync `number` finished: send what waited for it, and start the next sync if asked."""
        if number != self.started or number != self.finished + 1:
            raise RuntimeError(f"sync {number} finished, but sync {self.started} is running")
        self.finished = number
        while self.waiting and self.waiting[0][0] <= self.finished:
            self._release(self.waiting.popleft()[1])
        if self.required > self.started:
            self._start_next()

    def _start_next(self) -> None:
        self.started += 1
        self.start_sync(self.started)

    def _enqueue(self, item: Waiting) -> None:
        if self.waiting or self.required > self.finished:
            self.waiting.append((self.required, item))
        else:
            self._release(item)

    def _release(self, item: Waiting) -> None:
        if isinstance(item, Publish):
            self.send(item)
        else:
            item()
