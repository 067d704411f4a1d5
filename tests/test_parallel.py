"""The signature worker pool gives the verdicts the calling thread would, whatever happens to
its workers or to pieces whose caller stopped waiting."""

from __future__ import annotations

import os
import signal

import pytest

from consortium.crypto import KeyPair
from consortium.ledger.signatures import VerifyJob, verify_jobs
from consortium.parallel import SERIAL_BELOW, PoolVerifier


def _jobs(count: int, forged: set[int], salt: bytes = b"") -> list[VerifyJob]:
    keys = [KeyPair.generate() for _ in range(3)]
    jobs = []
    for i in range(count):
        key = keys[i % 3]
        message = salt + i.to_bytes(4, "big")
        signature = key.sign(message)
        if i in forged:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        jobs.append((key.public_key, message, signature))
    return jobs


@pytest.fixture
def pool():
    verifier = PoolVerifier(2)
    yield verifier
    verifier.close()


def test_verdicts_match_the_serial_loop(pool):
    jobs = _jobs(5 * SERIAL_BELOW, forged={0, 7, 200, 5 * SERIAL_BELOW - 1})
    verdicts = pool.verify_many(jobs)
    assert verdicts == verify_jobs(jobs)
    assert verdicts.count(False) == 4


def test_pieces_nobody_waits_for_do_not_leak_into_later_answers(pool):
    pool.start(_jobs(300, forged=set(range(0, 300, 2)), salt=b"abandoned"))
    jobs = _jobs(300, forged={5}, salt=b"awaited")
    assert pool.verify_many(jobs) == verify_jobs(jobs)


def test_a_killed_worker_is_replaced_and_its_pieces_verified_anyway(pool):
    jobs = _jobs(2000, forged={3, 1999})  # about 50 ms of work for each worker
    wait = pool.start(jobs)
    victim = pool.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    assert wait() == verify_jobs(jobs)
    assert victim not in pool.worker_pids()
    again = _jobs(400, forged={10}, salt=b"after")
    assert pool.verify_many(again) == verify_jobs(again)


def test_many_abandoned_pieces_neither_block_nor_pile_up(pool):
    """Blocks refused half-way leave pieces nobody waits for; their answers are taken in as new
    pieces go out, so the pipes never fill and only the awaited answers are kept."""
    jobs = _jobs(2 * SERIAL_BELOW, forged={1})
    for _ in range(200):
        pool.start(jobs)
    last = _jobs(2 * SERIAL_BELOW, forged={2}, salt=b"last")
    assert pool.verify_many(last) == verify_jobs(last)
    assert pool.pending_answers() == 0
