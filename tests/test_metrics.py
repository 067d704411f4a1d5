"""A node's Prometheus metrics in process: names, labels, histograms fed from the timeline and the
store, the endpoint on a free port, a taken port, and the `metrics_port` field of nodes.yaml."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from consortium.certificate import CommitCertificate
from consortium.config import parse_config
from consortium.devnet import network_dict
from consortium.errors import ConfigError
from consortium.node.metrics import NodeMetrics, TimedStore
from consortium.node.timeline import ConsensusTimeline
from consortium.pbft.actions import Actions, CommittedBlock, Persist

STATUS = {
    "id": "bank-a",
    "view": 2,
    "primary": "core",
    "changing_view": False,
    "height": 41,
    "business_day": 7,
    "committed_txs": 1234,
    "tx_per_s": 55,
    "mempool": 9,
    "queued_request_bytes": 0,
    "view_changes": 2,
    "relayed_requests": 0,
    "proposals_fetched": 3,
    "rejected_by_reason": {"bad_signature": 3, "stale_nonce": 1},
    "bus": {"received": 500, "published": 400, "reconnects": 1},
}


def _timeline() -> ConsensusTimeline:
    timeline = ConsensusTimeline()
    timeline.observe(Actions(persist=[Persist("pp/000000000041", b"x")]), 1_000, {}, 3)
    timeline.observe(Actions(persist=[Persist("proof/000000000041", b"x")]), 1_030, {}, 3)
    block = CommittedBlock(41, b"", CommitCertificate(0, 41, bytes(32), ()), ())
    timeline.observe(Actions(committed=[block]), 1_080, {}, 3)
    return timeline


def test_metrics_have_the_nodes_figures_under_consortium_names():
    metrics = NodeMetrics()
    timeline = _timeline()
    metrics.update(STATUS, timeline)
    metrics.update(STATUS, timeline)  # the same finished block is observed once
    text = generate_latest(metrics.registry).decode()
    for line in (
        'consortium_height{node="bank-a"} 41.0',
        'consortium_view{node="bank-a"} 2.0',
        'consortium_is_primary{node="bank-a"} 0.0',
        'consortium_primary{primary="core"} 1.0',
        'consortium_view_changes_total{node="bank-a"} 2.0',
        'consortium_committed_transactions_total{node="bank-a"} 1234.0',
        'consortium_mempool_requests{node="bank-a"} 9.0',
        'consortium_proposals_fetched_total{node="bank-a"} 3.0',
        'consortium_rejected_messages_total{node="bank-a",reason="bad_signature"} 3.0',
        'consortium_bus_messages_total{direction="in",node="bank-a"} 500.0',
        'consortium_bus_messages_total{direction="out",node="bank-a"} 400.0',
        'consortium_bus_events_total{event="reconnects",node="bank-a"} 1.0',
        'consortium_phase_latency_seconds_count{phase="pre_prepare_to_executed"} 1.0',
        'consortium_phase_latency_seconds_sum{phase="pre_prepare_to_prepared"} 0.03',
    ):
        assert line in text, line
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert all(name.startswith("consortium_") for name in names if name)


def test_store_writes_are_timed(tmp_path: Path):
    metrics = NodeMetrics()
    store = TimedStore(tmp_path / "ledger.sqlite", metrics, cache_bytes=2**20)
    store.write_consensus_records([("view", b"\x00")])
    store.write_consensus_records([])  # nothing written, nothing timed
    store.sync()
    store.finish_checkpoint()
    store.close()
    text = generate_latest(metrics.registry).decode()
    assert 'consortium_store_write_seconds_count{kind="consensus_records"} 1.0' in text
    assert 'consortium_store_write_seconds_count{kind="sync"} 1.0' in text
    assert 'consortium_store_write_seconds_count{kind="checkpoint"} 1.0' in text


def test_the_endpoint_serves_on_a_free_port_and_survives_a_taken_one():
    metrics = NodeMetrics()
    metrics.update(STATUS, ConsensusTimeline())
    url = metrics.serve(0)
    try:
        assert url is not None and url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert b'consortium_height{node="bank-a"} 41.0' in answer.read()
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        other = NodeMetrics()
        assert other.serve(port) is None and other.url is None
    finally:
        metrics.close()


def test_metrics_port_in_nodes_yaml(tmp_path: Path):
    raw = {k: v for k, v in network_dict().items() if k != "metrics_port"}  # devnets set 0
    config = parse_config(raw, tmp_path / "nodes.yaml")
    assert config.metrics_port == 19100
    assert [config.metrics_port_of(n) for n in config.node_ids] == list(range(19100, 19105))
    assert (
        parse_config({**raw, "metrics_port": 0}, tmp_path / "nodes.yaml").metrics_port_of("core")
        == 0
    )
    for value, message in (
        ("9100", "metrics_port: expected int, got str"),
        (True, "metrics_port: expected int, got bool"),
        (-1, "metrics_port: -1 is not a port"),
        (65534, "metrics_port: 65534 leaves no room for 5 ports up to 65535"),
        (18828, "metrics_port: ports 18828-18832 include the broker's 18830"),
    ):
        with pytest.raises(ConfigError) as refused:
            parse_config({**raw, "metrics_port": value}, tmp_path / "nodes.yaml")
        assert str(refused.value).startswith(message)
        assert "\n" not in str(refused.value)


def test_a_free_port_is_really_free():
    """`metrics_port: 0` relies on the OS choosing; two endpoints never share a port."""
    first, second = NodeMetrics(), NodeMetrics()
    try:
        urls = {first.serve(0), second.serve(0)}
        assert len(urls) == 2 and None not in urls
        with socket.socket() as probe:
            port = int(next(iter(urls)).rsplit(":", 1)[1].split("/")[0])
            with pytest.raises(OSError):
                probe.bind(("127.0.0.1", port))
    finally:
        first.close()
        second.close()
