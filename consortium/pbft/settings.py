"""The replica's settings: a plain value, so that PBFT depends on no file format. `nodes.yaml`'s
`consensus:` section is parsed into one (`consortium.config`), and the simulator builds its own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    """PBFT settings (`consensus:` in nodes.yaml).

    `max_inflight_blocks`: blocks proposed but not yet executed. Two is the default: on a
    CPU-bound network (several nodes sharing a machine) requests held back while blocks are in
    flight make the next block bigger, and bigger blocks cost less per transaction; measured
    with `consortium bench consensus` at 2,000 tx/s on 2 cores, two in flight committed more than
    three at a fraction of the latency, and one in flight, about as fast, let the backlog grow
    into a view change in three runs of ten. Raise it when the network's round trip, not the CPU,
    bounds throughput."""

    batch_max_txs: int = 2000
    batch_max_bytes: int = 1024 * 1024
    batch_delay_ms: int = 20
    checkpoint_interval: int = 8
    watermark_window: int = 32
    max_inflight_blocks: int = 2
    view_change_timeout_ms: int = 2000
    view_change_timeout_max_ms: int = 30000
