"""The load generator's books: a transaction refused by f+1 nodes may still commit (another node
took it), so a refusal is final only once it stayed uncommitted for the grace period."""

from __future__ import annotations

from consortium.bench.loadgen import LoadAccounting, LoadReport
from consortium.client.protocol import ClientStep, Outcome, Refused


class Forgetful:
    def __init__(self) -> None:
        self.forgotten: list[bytes] = []

    def forget(self, tx_ids: list[bytes]) -> None:
        self.forgotten += tx_ids


def outcome(tx_id: bytes) -> Outcome:
    return Outcome(tx_id, 3, b"h" * 32, 0, True, "", None)


def test_a_refused_transaction_that_commits_later_is_accepted_with_its_first_send_latency() -> None:
    report, core = LoadReport(0), Forgetful()
    books = LoadAccounting(report, core)  # type: ignore[arg-type]
    books.sent([b"a", b"b", b"c"], now=10.0)
    books.carry(ClientStep(refused=[Refused(b"a", 500), Refused(b"b", 500)]), now=10.1, wall=1.0)
    assert books.outstanding == 1  # a closed loop may send two more
    books.carry(ClientStep(decided=[outcome(b"a"), outcome(b"c")]), now=12.0, wall=2.0)
    books.expire(now=10.1 + 29.0)
    assert report.refused == 0 and core.forgotten == []
    books.expire(now=10.1 + 30.0)
    assert report.accepted == 2
    assert report.committed_after_refusal == 1
    assert report.refused == 1 and core.forgotten == [b"b"]
    assert report.latencies_ms == [2000.0, 2000.0]
    assert books.outstanding == 0 and not books.refused_at and not books.sent_at


def test_what_is_still_refused_at_the_end_counts_as_refused_once() -> None:
    report, core = LoadReport(0), Forgetful()
    books = LoadAccounting(report, core)  # type: ignore[arg-type]
    books.sent([b"a"], now=0.0)
    refusal = ClientStep(refused=[Refused(b"a", 500)])
    books.carry(refusal, now=1.0, wall=1.0)
    books.carry(refusal, now=2.0, wall=2.0)  # refused again: still one transaction
    books.finish()
    assert (report.sent, report.accepted, report.refused) == (1, 0, 1)
    assert books.outstanding == 0 and core.forgotten == [b"a"]
