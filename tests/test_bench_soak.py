"""The soak benchmark's arithmetic on samples made by hand, and one short soak on a live network."""

from __future__ import annotations

import json

import pytest

from consortium.bench.consensus import ProcessSample, memory_json, rss_growth_per_tx
from consortium.bench.loadgen import LoadReport
from consortium.bench.soak import (
    caught_up,
    pick_backup,
    ratio,
    window_bounds,
    window_stats,
)

NODES = ("a", "b", "c")


def _sample(
    at_s: float,
    rss: dict[str, int | None],
    committed: dict[str, int],
    view_changes: dict[str, int] | None = None,
) -> ProcessSample:
    return ProcessSample(
        at_s=at_s,
        rss_bytes=rss,
        committed_txs=committed,
        view_changes=view_changes or {n: 0 for n in committed},
    )


def test_growth_is_the_least_squares_slope_of_rss_against_committed_txs() -> None:
    # x = 0, 1000, 2000 tx; y = 10, 12, 11 MB: mean (1000, 11 MB), sum of dx*dy = 1000 * 1e6 * 1
    # + 0 + 1000 * 0 = 1e9, sum of dx^2 = 2e6, so 500 bytes per transaction.
    samples = [
        _sample(0, {"a": 10_000_000}, {"a": 0}),
        _sample(5, {"a": 12_000_000}, {"a": 1000}),
        _sample(10, {"a": 11_000_000}, {"a": 2000}),
    ]
    assert rss_growth_per_tx(samples, "a") == pytest.approx(500.0)


def test_growth_needs_three_samples_of_a_node_that_committed() -> None:
    two = [_sample(0, {"a": 1}, {"a": 0}), _sample(5, {"a": 2}, {"a": 10})]
    assert rss_growth_per_tx(two, "a") is None
    idle = [_sample(t, {"a": 100 + t}, {"a": 7}) for t in (0, 5, 10)]
    assert rss_growth_per_tx(idle, "a") is None
    gone = [*two, _sample(10, {"a": None}, {"a": 20})]  # the process had exited
    assert rss_growth_per_tx(gone, "a") is None
    assert rss_growth_per_tx(two, "nobody") is None


def test_memory_keys_keep_nodes_apart_from_the_other_processes() -> None:
    samples = [
        _sample(0.0, {"a": 53_249_999, "mosquitto": 9_100_000}, {"a": 0}),
        _sample(2.004, {"a": None, "mosquitto": 9_150_001}, {"a": 10}),
    ]
    figures = memory_json(samples, ["a"], 2.0)
    assert figures == {
        "rss_mb": {"a": [53.2, None]},
        "rss_mb_other": {"mosquitto": [9.1, 9.2]},
        "rss_sample_s": 2.0,
        "rss_at_s": [0.0, 2.0],
        "rss_growth_bytes_per_tx": {"a": None},
    }


def test_windows_split_the_duration_and_the_last_may_be_shorter() -> None:
    assert window_bounds(20, 10) == [(0, 10), (10, 20)]
    assert window_bounds(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert window_bounds(10, 30) == [(0, 10)]
    with pytest.raises(ValueError):
        window_bounds(20, 0)


def _soak_samples() -> list[ProcessSample]:
    committed = {
        "a": (0, 5000, 10000, 16000, 22000),
        "b": (0, 4000, 9000, 15000, 21000),
        "c": (0, 6000, 11000, 14000, 20000),
    }
    view_changes = {"a": (0, 0, 1, 1, 3), "b": (0, 0, 0, 2, 2), "c": (0, 0, 0, 0, 0)}
    rss = {
        "a": (100_000_000, 101_000_000, 102_000_000, 103_000_000, 104_000_000),
        "b": (50_000_000,) * 5,
        "c": (70_000_000, None, 70_100_000, 70_200_000, 70_300_000),
    }
    return [
        _sample(
            5.0 * i,
            {n: rss[n][i] for n in NODES},
            {n: committed[n][i] for n in NODES},
            {n: view_changes[n][i] for n in NODES},
        )
        for i in range(5)
    ]


def _soak_reports(started_at: float) -> list[LoadReport]:
    early = LoadReport(0, latencies_ms=[999, 10, 20, 30, 40], accepted_at=[-1, 1, 2, 3, 4])
    late = LoadReport(1, latencies_ms=[100, 300, 200, 999], accepted_at=[11, 12, 20, 21])
    for report in (early, late):
        report.accepted_at = [started_at + at for at in report.accepted_at]
    return [early, late]


def test_window_stats_from_samples_and_latencies() -> None:
    first, last = window_stats(_soak_samples(), NODES, _soak_reports(1000.0), 1000.0, 20, 10)
    # Committed: (10000, 9000, 11000) in 10 s, median 1000 tx/s; then (12000, 12000, 9000).
    assert first.committed_tx_per_s == 1000 and last.committed_tx_per_s == 1200
    # Most view changes of any node: 0 at 0 s, 1 at 10 s, 3 at 20 s; per minute of 10 s windows.
    assert first.view_changes_per_min == pytest.approx(6.0)
    assert last.view_changes_per_min == pytest.approx(12.0)
    # Latencies accepted in [0, 10) and [10, 20]; warm-up (-1 s) and the tail (21 s) left out.
    # Ranks int(q * n) of the sorted values: (10, 20, 30, 40) and (100, 200, 300).
    assert (first.accepted, last.accepted) == (4, 3)
    assert first.latency_ms == {"p50": 30, "p99": 40}
    assert last.latency_ms == {"p50": 200, "p99": 300}
    # RSS: a gains 1 MB per 5000 then per 6000 transactions; b stays flat; c misses the 5 s
    # sample, so its first window has two points only.
    assert first.rss_growth_bytes_per_tx["a"] == pytest.approx(200.0)
    assert last.rss_growth_bytes_per_tx["a"] == pytest.approx(1_000_000 / 6000)
    assert first.rss_growth_bytes_per_tx["b"] == 0 and last.rss_growth_bytes_per_tx["b"] == 0
    assert first.rss_growth_bytes_per_tx["c"] is None
    # c then: dx = -4000, -1000, 5000 around 15000 tx; dy = -0.1, 0, 0.1 MB around 70.2 MB;
    # sum dx*dy = 9e8, sum dx^2 = 42e6.
    assert last.rss_growth_bytes_per_tx["c"] == pytest.approx(9e8 / 42e6)
    assert first.rss_mb_end == {"a": 102.0, "b": 50.0, "c": 70.1}
    assert last.rss_mb_end == {"a": 104.0, "b": 50.0, "c": 70.3}
    assert ratio(last.latency_ms["p99"], first.latency_ms["p99"]) == pytest.approx(7.5)
    assert ratio(last.view_changes_per_min, first.view_changes_per_min) == pytest.approx(2.0)


def test_a_window_without_samples_or_transactions_has_no_figures() -> None:
    (window,) = window_stats([], NODES, [], 0.0, 10, 10)
    assert window.committed_tx_per_s is None and window.view_changes_per_min is None
    assert window.latency_ms == {"p50": None, "p99": None} and window.accepted == 0
    assert window.rss_mb_end == {n: None for n in NODES}


def test_a_ratio_needs_both_values_and_a_first_that_is_not_zero() -> None:
    assert ratio(3.0, 0.0) is None and ratio(0.0, 0.0) is None
    assert ratio(None, 2.0) is None and ratio(2.0, None) is None
    assert ratio(1.0, 4.0) == 0.25


def _status(height: int, view: int = 2, changing: bool = False, pid: int = 7) -> dict:
    return {"height": height, "view": view, "changing_view": changing, "pid": pid}


def test_a_restarted_node_is_back_when_it_keeps_up_with_the_others_in_their_view() -> None:
    others = {"a": _status(100), "b": _status(102)}
    assert caught_up(_status(100, pid=42), others, pid=42, floor_height=99)
    assert caught_up(_status(103, pid=42), others, pid=42, floor_height=99)
    assert not caught_up(None, others, pid=42, floor_height=99)
    assert not caught_up(_status(100, pid=41), others, pid=42, floor_height=99)  # old heartbeat
    assert not caught_up(_status(100, pid=42, changing=True), others, pid=42, floor_height=99)
    assert not caught_up(_status(100, view=1, pid=42), others, pid=42, floor_height=99)
    assert not caught_up(_status(99, pid=42), others, pid=42, floor_height=90)  # behind a
    assert not caught_up(_status(100, pid=42), others, pid=42, floor_height=101)  # nothing new
    assert not caught_up(_status(100, pid=42), {}, pid=42, floor_height=0)


def test_the_node_restarted_is_a_backup() -> None:
    statuses = {
        n: {"primary": "bank-b", "changing_view": False} for n in ("bank-a", "bank-b", "core")
    }
    assert pick_backup(statuses, ("bank-b", "bank-a", "core")) == "bank-a"
    statuses = {n: {"primary": "bank-a", "changing_view": False} for n in ("bank-a", "core")}
    assert pick_backup(statuses, ("bank-a", "bank-b", "core")) == "core"  # bank-b is silent


@pytest.mark.live
@pytest.mark.slow
def test_a_short_soak_reports_memory_windows_and_a_restart() -> None:
    """`consortium bench soak --json` as scripts call it, a few seconds long (figures not judged)."""
    from click.testing import CliRunner

    from consortium.cli.bench_cmd import bench

    args = ["soak", "--rate", "200", "--duration", "20", "--window-s", "10"]
    args += ["--sample-s", "2", "--warmup", "2", "--restart-timeout", "30", "--json"]
    result = CliRunner().invoke(bench, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    for key in (
        "committed_fraction",
        "p99_ratio_last_first",
        "view_changes_per_min_ratio_last_first",
        "rss_sample_s",
        "rss_at_s",
        "rss_growth_bytes_per_tx",
        "restart",
        "restart_committed_txs",
        "presign_s",
    ):
        assert key in figures, key
    assert [w["end_s"] for w in figures["windows"]] == [10, 20]
    for window in figures["windows"]:
        assert window["committed_tx_per_s"] > 0 and window["latency_ms"]["p99"] > 0
        assert all(mb > 0 for mb in window["rss_mb_end"].values())
    assert figures["committed_fraction"] > 0.95
    assert len(figures["rss_mb"]) == 5
    samples = len(figures["rss_at_s"])
    assert samples >= 10
    for series in figures["rss_mb"].values():
        assert len(series) == samples and all(mb > 0 for mb in series)
    assert set(figures["rss_mb_other"]) == {"mosquitto", "loadgen-0"}
    restart = figures["restart"]
    assert restart["caught_up"] and figures["restart_s"] > 0
    assert restart["height"] >= restart["others_min_height"] > 0
    assert figures["restart_committed_txs"] == restart["committed_txs"] > 0
    at_end = restart["at_end"]
    assert set(at_end) == {"agency", "bank-a", "bank-b", "core", "regulator"}
    assert at_end[restart["node"]]["height"] >= restart["height"]
    assert all(s["view"] is not None and s["mempool"] is not None for s in at_end.values())
