"""The simulator's network and clock: one event queue and the seed's link faults.

Events are ordered by (virtual time, insertion counter) and everything random comes from the one
`random.Random` of the run, so a seed replays the same trace. Links between endpoints suffer what
the fault plan says while the run is unhealed: partitions (symmetric or not), the twins' split,
drops, duplicates, delays that reorder, and clogged links.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from typing import Any, Protocol

from consortium.sim.faults import FaultPlan


class Endpoint(Protocol):
    """A simulated host: a node id, and which twin it is ("" unless its node is twinned)."""

    node_id: str
    twin: str


class SimNetwork:
    def __init__(self, rng: random.Random, plan: FaultPlan) -> None:
        self.rng = rng
        self.plan = plan
        self.now = 0
        self.healed = False
        self.events: list[tuple[int, int, str, Any]] = []
        self.counter = 0
        self.trace = hashlib.blake2b(digest_size=16)
        self.messages = 0
        self.bytes = 0
        self.messages_by_kind: dict[str, int] = {}
        self.fault_counts = dict.fromkeys(
            ("messages_dropped", "messages_duplicated", "messages_clogged"), 0
        )

    def push(self, at: int, kind: str, payload: Any) -> None:
        self.counter += 1
        heapq.heappush(self.events, (at, self.counter, kind, payload))

    def pop(self) -> tuple[int, str, Any] | None:
        if not self.events:
            return None
        at, _, kind, payload = heapq.heappop(self.events)
        self.now = at
        return at, kind, payload

    def link_ok(self, src: Endpoint, dst: Endpoint) -> bool:
        if self.healed:
            return True
        if src.twin or dst.twin:
            if src.twin and dst.twin:
                return False
            twin, other = (src, dst) if src.twin else (dst, src)
            group = self.plan.twin_groups[0 if twin.twin == "a" else 1]
            if other.node_id not in group:
                return False
        for part in self.plan.partitions:
            if not part.start <= self.now < part.end:
                continue
            if part.symmetric:
                side = [src.node_id in g for g in part.groups]
                if side != [dst.node_id in g for g in part.groups]:
                    return False
            elif (src.node_id, dst.node_id) in part.blocked:
                return False
        return True

    def delay(self, src_node: str, dst_node: str) -> int:
        delay = self.rng.randint(self.plan.delay_min_ms, self.plan.delay_max_ms)
        if not self.healed:
            for clog in self.plan.clogs:
                if (clog.src, clog.dst) == (
                    src_node,
                    dst_node,
                ) and clog.start <= self.now < clog.end:
                    self.fault_counts["messages_clogged"] += 1
                    delay += clog.extra_ms
        return delay

    def is_dropped(self) -> bool:
        """One draw of the plan's drop rate (never after the heal)."""
        return (
            not self.healed
            and bool(self.plan.drop_rate)
            and self.rng.random() < self.plan.drop_rate
        )

    def transmit(
        self, src: Endpoint, dst: Endpoint, kind: str, payload: Any, size: int, label: str = ""
    ) -> None:
        """Send `payload` over the src -> dst link as event `kind`: maybe lost, maybe twice.
        It is counted as one point-to-point message under `label` (default: `kind`)."""
        self.messages += 1
        self.bytes += size
        label = label or kind
        self.messages_by_kind[label] = self.messages_by_kind.get(label, 0) + 1
        if not self.link_ok(src, dst):
            return
        if self.is_dropped():
            self.fault_counts["messages_dropped"] += 1
            return
        self.push(self.now + self.delay(src.node_id, dst.node_id), kind, payload)
        if (
            not self.healed
            and self.plan.duplicate_rate
            and self.rng.random() < self.plan.duplicate_rate
        ):
            self.fault_counts["messages_duplicated"] += 1
            self.push(self.now + self.delay(src.node_id, dst.node_id), kind, payload)
