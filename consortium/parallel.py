"""Signature verification spread over every core with a process pool.

ed25519 verification dominates block validation, and CPython runs one thread at a time, so the
only way to use both cores is processes. Jobs go out in one large chunk per worker (pickling a
few hundred kilobytes is cheap next to the verification itself), and `start` returns at once so
that the caller can execute the block's contracts while the workers verify; the block is accepted
only if every verdict is true.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from consortium.ledger.signatures import VerifyJob, verify_jobs

SERIAL_BELOW = 64


class PoolVerifier:
    """A `BatchVerifier` backed by one worker process per core."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(max_workers=self.workers)
        # Start the workers now, not inside the first block's validation.
        for future in [self._pool.submit(verify_jobs, []) for _ in range(self.workers)]:
            future.result()

    def start(self, jobs: Sequence[VerifyJob]) -> Callable[[], list[bool]]:
        if len(jobs) < SERIAL_BELOW:
            verdicts = verify_jobs(jobs)
            return lambda: verdicts
        size = -(-len(jobs) // self.workers)
        futures: list[Future[list[bool]]] = [
            self._pool.submit(verify_jobs, list(jobs[i : i + size]))
            for i in range(0, len(jobs), size)
        ]
        return lambda: [ok for future in futures for ok in future.result()]

    def verify_many(self, jobs: Sequence[VerifyJob]) -> list[bool]:
        return self.start(jobs)()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
