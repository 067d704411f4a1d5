"""What the explorer derives without I/O: a node's per-block phase times from replica steps, and
the Network page's history, events and alerts from made-up heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from consortium.certificate import CommitCertificate
from consortium.explorer.feed import feed_history
from consortium.explorer.network import STALL_AFTER_S, NetworkHistory
from consortium.node.timeline import BlockTiming, ConsensusTimeline
from consortium.pbft.actions import Actions, CommittedBlock, Persist
from tests.ledger_helpers import devnet

ROLES = {"a": "bank", "b": "bank", "c": "core_enterprise", "d": "regulator"}


def _committed(height: int) -> CommittedBlock:
    return CommittedBlock(height, b"", CommitCertificate(0, height, bytes(32), ()), ())


def test_timeline_takes_each_phase_from_what_the_step_returned():
    timeline = ConsensusTimeline(keep=4)
    votes: dict[int, dict[int, dict[str, object]]] = {}
    timeline.observe(Actions(persist=[Persist("pp/000000000007", b"x")]), 100, votes, 3)
    timeline.observe(Actions(persist=[Persist("proof/000000000007", b"x")]), 112, votes, 3)
    votes[7] = {0: {"a": 1, "b": 1}}
    timeline.observe(Actions(), 115, votes, 3)  # two commits of three: not yet committed
    votes[7][0]["c"] = 1
    timeline.observe(Actions(), 120, votes, 3)
    timeline.observe(Actions(committed=[_committed(7)]), 121, votes, 3)
    assert [t.to_wire() for t in timeline.recent()] == [[7, 100, 112, 120, 121]]
    assert timeline.finished_total == 1 and not timeline.open
    # A deletion (garbage collection) is no phase; a block installed by state transfer only
    # has its execution.
    timeline.observe(Actions(persist=[Persist("pp/000000000007", None)]), 130, votes, 3)
    timeline.observe(Actions(committed=[_committed(8)]), 140, votes, 3)
    assert timeline.recent()[-1].to_wire() == [8, None, None, 140, 140]
    assert [t.height for t in timeline.newly_finished(1)] == [8]


def test_timeline_memory_is_bounded():
    timeline = ConsensusTimeline(keep=4)
    for height in range(1, 50):
        timeline.observe(Actions(persist=[Persist(f"pp/{height:012d}", b"x")]), height, {}, 3)
    assert len(timeline.open) == 4
    for height in range(46, 50):
        timeline.observe(Actions(committed=[_committed(height)]), 100, {}, 3)
    for height in range(50, 60):
        timeline.observe(Actions(committed=[_committed(height)]), 100, {}, 3)
    assert len(timeline.finished) == 4 and timeline.finished_total == 14
    assert len(list(timeline.newly_finished(0))) == 4  # a reader that lagged loses the oldest


def test_published_timings_that_are_not_well_formed_are_ignored():
    assert BlockTiming.from_wire([3, 1, 2, 3, 4]) == BlockTiming(
        3, {"pre_prepare": 1, "prepared": 2, "committed": 3, "executed": 4}
    )
    for bad in ([3, 1, 2, 3], "x", [None, 1, 2, 3, 4], [3, "1", 2, 3, 4], [3, True, 2, 3, 4]):
        assert BlockTiming.from_wire(bad) is None


def _status(node: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": node,
        "view": 0,
        "primary": "a",
        "height": 10,
        "head_hash": "aa",
        "tx_per_s": 100,
        "mempool": 0,
        "clock_offset_ms": 0,
        **fields,
    }


def _observe(history: NetworkHistory, now: float, **per_node: dict[str, Any]) -> None:
    statuses = {n: _status(n, **per_node.get(n, {})) for n in ROLES if per_node.get(n) != {}}
    history.observe(statuses, {n: 0.1 for n in statuses}, now)


def test_history_records_view_changes_faults_and_nodes_going_silent():
    history = NetworkHistory(ROLES)
    _observe(history, 0.0)
    assert history.snapshot()["events"] == [] and history.alerts() == []
    changed = {"b": {"view": 1, "primary": "b"}, "c": {"faults": {"delay_ms": 300}}}
    _observe(history, 1.0, **changed)
    _observe(history, 2.0, **changed, d={})
    kinds = [(e["kind"], e["node"]) for e in history.snapshot()["events"]]
    assert kinds == [("view_change", "b"), ("fault", "c"), ("node_down", "d")]
    alerts = [a["text"] for a in history.alerts()]
    assert "d is down or silent" in alerts
    assert "b is out of consensus: view 1, most nodes are in view 0" in alerts
    assert [n["health"] for n in history.snapshot()["nodes"]] == ["ok", "ok", "faulted", "down"]


def test_history_alerts_on_a_stalled_height_a_lagging_node_and_a_growing_mempool():
    history = NetworkHistory(ROLES)
    now = 0.0
    while now <= STALL_AFTER_S + 1:
        mempool = int(1000 + 200 * now)
        _observe(history, now, **{n: {"mempool": mempool} for n in "abc"}, d={"height": 2})
        now += 0.5
    alerts = " | ".join(a["text"] for a in history.alerts())
    assert "height stalled at 10" in alerts
    assert "d is out of consensus: height 2, 8 blocks behind" in alerts
    assert "a's mempool is growing" in alerts


def test_history_keeps_a_bounded_window_of_samples_and_the_nodes_block_timings():
    history = NetworkHistory(ROLES, window_s=10.0)
    for second in range(30):
        timings = {n: {"timeline": [[5, 100 + i, 110 + i, 120, 121]]} for i, n in enumerate(ROLES)}
        _observe(history, float(second), **timings)
    assert len(history.samples) == 11
    drawn = history.block_timeline(5)
    assert drawn is not None and drawn["span_ms"] == 21
    assert [row["node"] for row in drawn["rows"]] == list(ROLES)
    assert drawn["rows"][0]["marks"][0] == {"phase": "pre_prepare", "ms": 0, "x": 0.0}
    assert history.latest_timeline()["height"] == 5
    assert history.block_timeline(6) is None


async def test_without_a_broker_login_the_history_says_why(tmp_path: Path):
    net = devnet(tmp_path)
    history = NetworkHistory({n.id: n.role for n in net.config.nodes})
    task = asyncio.create_task(feed_history(net.config, history))
    await asyncio.sleep(0.1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert history.bus_problem is not None
    assert history.bus_problem.startswith("no status heartbeats: no broker credentials at")
    assert history.snapshot()["alerts"] == [
        {"level": "error", "text": "no node reports a status heartbeat"}
    ]
