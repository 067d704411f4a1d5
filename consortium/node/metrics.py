"""A node's Prometheus metrics (`prometheus_client`), served on its own local port.

Nothing here runs on the consensus path except two clock reads per store write: gauges and
counters come from the status snapshot the node builds for its heartbeat anyway (every 0.25 s),
handed over by swapping one reference, so the scrape thread never reads the core's live state;
the phase latency histograms are fed from the consensus timeline at the same moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consortium.ledger.store import Store
from consortium.node.timeline import ConsensusTimeline

log = logging.getLogger("consortium.node")

METRICS_HOST = "127.0.0.1"
PHASE_SPANS: tuple[tuple[str, str], ...] = (
    ("pre_prepare", "prepared"),
    ("prepared", "committed"),
    ("committed", "executed"),
    ("pre_prepare", "executed"),
)
# Milliseconds to seconds: local blocks take a few ms to a few hundred, view changes seconds.
LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STORE_BUCKETS_S = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _StatusCollector(Collector):
    """Gauges and counters of the last status snapshot, built at scrape time."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        status = self.status  # one reference read: the node thread swaps in a new dict
        if not status:
            return
        node = str(status.get("id", ""))
        for name, key, doc in (
            ("consortium_height", "height", "Height of the committed head block."),
            ("consortium_view", "view", "Current PBFT view."),
            ("consortium_business_day", "business_day", "Business day of the head block."),
            ("consortium_mempool_requests", "mempool", "Requests waiting to be ordered."),
            (
                "consortium_queued_request_bytes",
                "queued_request_bytes",
                "Client request batches waiting for admission, in bytes.",
            ),
            (
                "consortium_committed_tx_per_second",
                "tx_per_s",
                "Committed transactions per second over the last 5 s.",
            ),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=["node"])
            gauge.add_metric([node], float(status.get(key) or 0))
            yield gauge
        primary = str(status.get("primary", ""))
        is_primary = GaugeMetricFamily(
            "consortium_is_primary", "1 if this node is the primary of its view.", labels=["node"]
        )
        is_primary.add_metric([node], 1.0 if primary == node else 0.0)
        yield is_primary
        primary_info = GaugeMetricFamily(
            "consortium_primary", "The primary this node follows (value 1).", labels=["primary"]
        )
        primary_info.add_metric([primary], 1.0)
        yield primary_info
        changing = GaugeMetricFamily(
            "consortium_view_change_in_progress", "1 during a view change.", labels=["node"]
        )
        changing.add_metric([node], 1.0 if status.get("changing_view") else 0.0)
        yield changing
        for name, key, doc in (
            ("consortium_view_changes", "view_changes", "View changes since the node started."),
            (
                "consortium_committed_transactions",
                "committed_txs",
                "Transactions in the node's store.",
            ),
            (
                "consortium_relayed_requests",
                "relayed_requests",
                "Client requests relayed to the primary.",
            ),
            (
                "consortium_shed_requests",
                "shed_requests",
                "Requests a backup let go of: the primary left them out of its blocks for a "
                "view-change timeout while making progress.",
            ),
            (
                "consortium_proposals_fetched",
                "proposals_fetched",
                "Blocks a new view re-issued by digest that this node lacked and fetched.",
            ),
        ):
            counter = CounterMetricFamily(name, doc, labels=["node"])
            counter.add_metric([node], float(status.get(key) or 0))
            yield counter
        rejected = CounterMetricFamily(
            "consortium_rejected_messages",
            "Bad input from the bus, by reason.",
            labels=["node", "reason"],
        )
        for reason, count in sorted(status.get("rejected_by_reason", {}).items()):
            rejected.add_metric([node, str(reason)], float(count))
        yield rejected
        bus = status.get("bus", {})
        messages = CounterMetricFamily(
            "consortium_bus_messages",
            "Messages received from and published to the bus.",
            labels=["node", "direction"],
        )
        messages.add_metric([node, "in"], float(bus.get("received", 0)))
        messages.add_metric([node, "out"], float(bus.get("published", 0)))
        yield messages
        problems = CounterMetricFamily(
            "consortium_bus_events",
            "The bus connection's other counters (drops, reconnects, failures).",
            labels=["node", "event"],
        )
        for event, count in sorted(bus.items()):
            if event not in ("received", "published"):
                problems.add_metric([node, str(event)], float(count))
        yield problems


class NodeMetrics:
    """One node's registry and its HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._status = _StatusCollector()
        self.registry.register(self._status)
        self.phase_latency = Histogram(
            "consortium_phase_latency_seconds",
            "Time between two PBFT phases of a block on this node.",
            ["phase"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.store_write = Histogram(
            "consortium_store_write_seconds",
            "Time of one store write on the event loop: a committed block, a batch of consensus"
            " records, a sync, the node's own pass of a WAL checkpoint.",
            ["kind"],
            buckets=STORE_BUCKETS_S,
            registry=self.registry,
        )
        self._timeline_seen = 0
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None
        self.url: str | None = None

    def serve(self, port: int) -> str | None:
        """Start the endpoint on `port` (0: a free one); its URL, or None if the port is taken
        (metrics are worth a warning, never a node that does not run)."""
        try:
            self._server, self._thread = start_http_server(port, METRICS_HOST, self.registry)
        except OSError as exc:
            log.warning("no metrics: cannot listen on %s:%d: %s", METRICS_HOST, port, exc.strerror)
            return None
        self.url = f"http://{METRICS_HOST}:{self._server.server_port}/metrics"
        return self.url

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def update(self, status: dict[str, Any], timeline: ConsensusTimeline) -> None:
        """The latest status for the gauges, and the blocks finished since the last update."""
        self._status.status = status
        for timing in timeline.newly_finished(self._timeline_seen):
            for start, end in PHASE_SPANS:
                ms = timing.latency(start, end)
                if ms is not None:
                    self.phase_latency.labels(f"{start}_to_{end}").observe(ms / 1000)
        self._timeline_seen = timeline.finished_total


class TimedStore(Store):
    """The node's store, timing each write for `consortium_store_write_seconds`."""

    def __init__(self, path: Path, metrics: NodeMetrics, cache_bytes: int) -> None:
        super().__init__(path, cache_bytes=cache_bytes, background_checkpoints=True)
        self._block_write = metrics.store_write.labels("block")
        self._records_write = metrics.store_write.labels("consensus_records")
        self._sync = metrics.store_write.labels("sync")
        self._checkpoint = metrics.store_write.labels("checkpoint")

    def append(self, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        super().append(*args, **kwargs)
        self._block_write.observe(time.perf_counter() - started)

    def write_consensus_records(self, writes: list[tuple[str, bytes | None]]) -> None:
        if not writes:
            return
        started = time.perf_counter()
        super().write_consensus_records(writes)
        self._records_write.observe(time.perf_counter() - started)

    def sync(self) -> None:
        started = time.perf_counter()
        super().sync()
        self._sync.observe(time.perf_counter() - started)

    def finish_checkpoint(self) -> tuple[int, int]:
        started = time.perf_counter()
        result = super().finish_checkpoint()
        self._checkpoint.observe(time.perf_counter() - started)
        return result
