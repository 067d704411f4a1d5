"""Signature verification spread over every core by long-lived worker processes.

ed25519 verification dominates cold block validation, and CPython runs one thread at a time, so
the only way to use both cores is processes. Each worker reads pieces of jobs from its own pipe
and writes back one byte per verdict. The caller writes the pieces itself (no feeder or result
thread that would have to win the GIL from the executing main thread, which is what made a
`ProcessPoolExecutor` leave workers idle), and the pipes are enlarged so that a whole block's
pieces usually fit without the caller waiting on a busy worker, so `start` returns at once:
the caller executes the block's contracts while the workers verify, and the block is accepted
only if every verdict is true.

If a worker dies, its unanswered pieces are verified on the calling thread and a new worker
takes its place: verdicts never depend on which process computed them.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import msgpack

from consortium.ledger.signatures import VerifyJob, verify_jobs

SERIAL_BELOW = 64
PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged pipe


def _serve(jobs_in: Connection, verdicts_out: Connection, inherited: list[Connection]) -> None:
    """A worker's whole life: read a piece, verify it, answer with one byte per job. It first
    closes the caller's ends of every pipe it inherited, so that each worker sees the end of its
    pipe (and exits) as soon as the caller closes it."""
    for conn in inherited:
        conn.close()
    while True:
        try:
            piece = jobs_in.recv_bytes()
        except (EOFError, OSError):
            return
        jobs = msgpack.unpackb(piece, use_list=False)
        verdicts_out.send_bytes(bytes(verify_jobs(jobs)))


def _enlarge(conn: Connection) -> None:
    # A smaller pipe only means that the caller sometimes waits for a worker to read.
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


@dataclass(slots=True)
class _Worker:
    process: multiprocessing.process.BaseProcess
    jobs_out: Connection
    verdicts_in: Connection
    # Pieces sent and not yet answered, oldest first: answers come back in the same order.
    unanswered: list[tuple[int, Sequence[VerifyJob]]] = field(default_factory=list)
    answers: dict[int, list[bool]] = field(default_factory=dict)


class PoolVerifier:
    """A `BatchVerifier` backed by one worker process per core. One caller thread at a time."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        # fork: a worker starts in milliseconds and does not import the caller's main module
        # again (so a script needs no `if __name__ == "__main__"` guard); it only verifies.
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._pool: list[_Worker] = []
        for _ in range(self.workers):
            self._pool.append(self._spawn())
        self._tickets = 0
        # Wait until every worker has imported and answered, not inside the first block.
        for wait in [self._send(index, []) for index in range(self.workers)]:
            wait()

    def _spawn(self) -> _Worker:
        jobs_in, jobs_out = self._context.Pipe(duplex=False)
        verdicts_in, verdicts_out = self._context.Pipe(duplex=False)
        _enlarge(jobs_out)
        _enlarge(verdicts_out)
        inherited = [jobs_out, verdicts_in]
        inherited += [
            end for w in self._pool for end in (w.jobs_out, w.verdicts_in) if not end.closed
        ]
        process = self._context.Process(
            target=_serve,
            args=(jobs_in, verdicts_out, inherited),
            name="signature-worker",
            daemon=True,
        )
        process.start()
        jobs_in.close()
        verdicts_out.close()
        return _Worker(process, jobs_out, verdicts_in)

    def start(self, jobs: Sequence[VerifyJob]) -> Callable[[], list[bool]]:
        if len(jobs) < SERIAL_BELOW:
            verdicts = verify_jobs(jobs)
            return lambda: verdicts
        size = -(-len(jobs) // self.workers)
        waits = [
            self._send(index, jobs[start : start + size])
            for index, start in enumerate(range(0, len(jobs), size))
        ]
        return lambda: [ok for wait in waits for ok in wait()]

    def verify_many(self, jobs: Sequence[VerifyJob]) -> list[bool]:
        return self.start(jobs)()

    def _send(self, index: int, jobs: Sequence[VerifyJob]) -> Callable[[], list[bool]]:
        self._collect(index)
        worker = self._pool[index]
        self._tickets += 1
        ticket = self._tickets
        worker.unanswered.append((ticket, jobs))
        try:
            worker.jobs_out.send_bytes(msgpack.packb(list(jobs)))
        except OSError:
            self._replace(index)
        return lambda: self._answer(index, ticket)

    def _collect(self, index: int) -> None:
        """Take in the answers a worker has written already. Answers nobody waits for (a block
        refused half-way) would otherwise fill its pipe, and a worker stuck writing one while
        the caller is stuck writing it a piece would wait for each other for ever."""
        worker = self._pool[index]
        while worker.unanswered and worker.verdicts_in.poll():
            self._read_answer(index)
            worker = self._pool[index]

    def _answer(self, index: int, ticket: int) -> list[bool]:
        """The verdicts of one piece, reading the worker's earlier answers on the way."""
        while True:
            worker = self._pool[index]
            if ticket in worker.answers:
                verdicts = worker.answers.pop(ticket)
                # Callers wait in the order they started: anything older was abandoned.
                worker.answers = {t: v for t, v in worker.answers.items() if t > ticket}
                return verdicts
            if not any(t == ticket for t, _ in worker.unanswered):
                raise ValueError(f"piece {ticket} was already answered")
            self._read_answer(index)

    def _read_answer(self, index: int) -> None:
        worker = self._pool[index]
        try:
            data = worker.verdicts_in.recv_bytes()
        except (EOFError, OSError):
            self._replace(index)
            return
        answered, _ = worker.unanswered.pop(0)
        worker.answers[answered] = [byte == 1 for byte in data]

    def _replace(self, index: int) -> None:
        """A worker died: verify what it left unanswered here, and start another."""
        dead = self._pool[index]
        for ticket, jobs in dead.unanswered:
            dead.answers[ticket] = verify_jobs(jobs)
        dead.jobs_out.close()
        dead.verdicts_in.close()
        dead.process.join(timeout=1)
        fresh = self._spawn()
        fresh.answers = dead.answers
        self._pool[index] = fresh

    def pending_answers(self) -> int:
        """Pieces sent and not yet waited for (abandoned ones included until cleared)."""
        return sum(len(w.unanswered) + len(w.answers) for w in self._pool)

    def worker_pids(self) -> list[int]:
        return [worker.process.pid or 0 for worker in self._pool]

    def close(self) -> None:
        for worker in self._pool:
            worker.jobs_out.close()
            worker.verdicts_in.close()
        for worker in self._pool:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self._pool = []
