"""Carrying out a node step: the one place that orders persist, sync, publish, timers and reports.

Every shell (the node process, the simulator) gives its own disk, bus and timers; the order is the
same for all: the step's consensus records are written, then synced if the step asks (the sync
also covers blocks the step committed), and only then does anything leave, because what a node
sends, its disk must back.
"""

from __future__ import annotations

import logging
from typing import Protocol

from consortium.node.core import NodeStep, Publish
from consortium.pbft.actions import SetTimer


class Disk(Protocol):
    def write_consensus_records(self, writes: list[tuple[str, bytes | None]]) -> None: ...

    def sync(self) -> None: ...


class Bus(Protocol):
    def publish(self, item: Publish) -> None: ...


class Timers(Protocol):
    def set_timer(self, name: str, at_ms: int) -> None: ...

    def cancel_timer(self, name: str) -> None: ...


def carry_out(
    step: NodeStep, disk: Disk, bus: Bus, timers: Timers, log: logging.Logger | None = None
) -> None:
    if step.records:
        disk.write_consensus_records([(p.key, p.value) for p in step.records])
    if step.sync:
        disk.sync()
    for item in step.publish:
        bus.publish(item)
    for timer in step.timers:
        if isinstance(timer, SetTimer):
            timers.set_timer(timer.name, timer.at_ms)
        else:
            timers.cancel_timer(timer.name)
    if log is not None:
        for level, line in step.log:
            log.log(level, line)
