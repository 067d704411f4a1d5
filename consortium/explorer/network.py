"""The network over the last minutes, from the nodes' status heartbeats: what the Network page
shows live, and when each node saw each PBFT phase of recent blocks.

Fed by polling the latest heartbeats with the time (`observe(statuses, ages, now)`), so it does
no I/O and is tested with made-up heartbeats. Everything it keeps is bounded: a sample per second
for `window_s`, the last `MAX_EVENTS` events, the timings of the last `MAX_TIMED_BLOCKS` blocks.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from consortium.node.timeline import PHASES, BlockTiming

WINDOW_S = 300.0
SAMPLE_EVERY_S = 1.0
MAX_EVENTS = 200
MAX_TIMED_BLOCKS = 2_000
STALE_AFTER_S = 3.0
STALL_AFTER_S = 10.0
"""A height unchanged this long while requests wait is a stalled network."""
LAG_BLOCKS = 5
MEMPOOL_GROWTH_WINDOW_S = 20.0
MEMPOOL_ALERT_MIN = 1_000
MEMPOOL_GROWTH_FACTOR = 1.5


@dataclass(slots=True)
class _NodeTrack:
    """What the history remembers about one node between heartbeats."""

    seen: bool = False  # reported at least once since the explorer started
    height: int | None = None
    height_since: float = 0.0
    view: int | None = None
    fresh: bool = False
    pid: int | None = None
    faults: dict[str, Any] = field(default_factory=dict)
    mempool: deque[tuple[float, int]] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # the history's clock (s)
    kind: str  # view_change, node_down, node_up, restart, fault, fault_cleared
    node: str
    text: str


class NetworkHistory:
    def __init__(
        self, roles: dict[str, str], window_s: float = WINDOW_S, wall_offset_s: float = 0.0
    ) -> None:
        """`roles`: node id to role, in `nodes.yaml` order. `wall_offset_s` turns the history's
        clock into Unix time for display (wall time minus `now` when it was made)."""
        self.roles = roles
        self.window_s = window_s
        self.wall_offset_s = wall_offset_s
        self.tracks = {node: _NodeTrack() for node in roles}
        self.latest: dict[str, dict[str, Any]] = {}
        self.ages: dict[str, float | None] = {}
        self.samples: deque[tuple[float, int]] = deque()
        self.events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self.timings: OrderedDict[int, dict[str, dict[str, int]]] = OrderedDict()
        self.now = 0.0
        self.bus_problem: str | None = None

    # -- input --------------------------------------------------------------------------

    def observe(
        self, statuses: dict[str, dict[str, Any]], ages: dict[str, float | None], now: float
    ) -> None:
        self.now = now
        self.latest = {n: s for n, s in statuses.items() if n in self.tracks}
        self.ages = ages
        for node, track in self.tracks.items():
            self._track(node, track, self.latest.get(node), ages.get(node), now)
        if not self.samples or now - self.samples[-1][0] >= SAMPLE_EVERY_S:
            rates = [s.get("tx_per_s") or 0 for n, s in self.latest.items() if self._fresh(n)]
            self.samples.append((now, max(rates, default=0)))
        while self.samples and self.samples[0][0] < now - self.window_s:
            self.samples.popleft()

    def _fresh(self, node: str) -> bool:
        return self.tracks[node].fresh

    def _track(
        self,
        node: str,
        track: _NodeTrack,
        status: dict[str, Any] | None,
        age: float | None,
        now: float,
    ) -> None:
        fresh = (
            status is not None
            and age is not None
            and age < STALE_AFTER_S
            and status.get("alive", True) is not False
        )
        if fresh != track.fresh and track.seen:
            kind, text = ("node_up", "reports again") if fresh else ("node_down", "went silent")
            self._event(now, kind, node, text)
        track.fresh = fresh
        track.seen |= fresh
        if status is None or not fresh:
            return
        pid = status.get("pid")
        if track.pid is not None and pid != track.pid:
            self._event(now, "restart", node, f"restarted (pid {track.pid} -> {pid})")
        track.pid = pid
        view = status.get("view")
        if track.view is not None and isinstance(view, int) and view > track.view:
            self._event(now, "view_change", node, f"view {view}, primary {status.get('primary')}")
        track.view = view
        height = status.get("height")
        if height != track.height:
            track.height, track.height_since = height, now
        faults = status.get("faults") or {}
        if faults != track.faults:
            if faults:
                self._event(now, "fault", node, _describe_faults(faults))
            else:
                self._event(now, "fault_cleared", node, "faults cleared")
            track.faults = dict(faults)
        mempool = status.get("mempool") or 0
        track.mempool.append((now, mempool))
        while track.mempool and track.mempool[0][0] < now - MEMPOOL_GROWTH_WINDOW_S:
            track.mempool.popleft()
        self._timings(node, status)

    def _event(self, now: float, kind: str, node: str, text: str) -> None:
        self.events.append(Event(now, kind, node, text))

    def _timings(self, node: str, status: dict[str, Any]) -> None:
        offset = status.get("clock_offset_ms")
        entries = status.get("timeline")
        if type(offset) is not int or not isinstance(entries, list | tuple):
            return
        for entry in entries:
            timing = BlockTiming.from_wire(entry)
            if timing is None:
                continue
            per_node = self.timings.get(timing.height)
            if per_node is None:
                per_node = self.timings[timing.height] = {}
                while len(self.timings) > MAX_TIMED_BLOCKS:
                    self.timings.popitem(last=False)
            per_node[node] = {phase: t + offset for phase, t in timing.times.items()}

    # -- output -------------------------------------------------------------------------

    def block_timeline(self, height: int) -> dict[str, Any] | None:
        """When each node saw each phase of block `height` (ms after the earliest), drawable."""
        per_node = self.timings.get(height)
        if not per_node:
            return None
        return timeline_geometry(height, per_node, list(self.roles))

    def latest_timeline(self) -> dict[str, Any] | None:
        """The highest block every reporting node has executed, else the highest known."""
        for height in sorted(self.timings, reverse=True):
            nodes = self.timings[height]
            if all("executed" in t for t in nodes.values()) and len(nodes) >= min(
                2, len(self.roles)
            ):
                return self.block_timeline(height)
        return None

    def alerts(self) -> list[dict[str, str]]:
        found = []
        fresh = {n: s for n, s in self.latest.items() if self._fresh(n)}
        if not fresh:
            found.append({"level": "error", "text": "no node reports a status heartbeat"})
            return found
        for node in self.roles:
            if not self._fresh(node):
                found.append({"level": "error", "text": f"{node} is down or silent"})
        views = Counter(s.get("view") for s in fresh.values())
        usual_view = views.most_common(1)[0][0]
        top = max((s.get("height") or 0) for s in fresh.values())
        heads: dict[int, set[str]] = {}
        for s in fresh.values():
            heads.setdefault(s.get("height") or 0, set()).add(s.get("head_hash") or "")
        for node, s in fresh.items():
            height = s.get("height") or 0
            if s.get("view") != usual_view or s.get("changing_view"):
                found.append(
                    {
                        "level": "warning",
                        "text": f"{node} is out of consensus: view {s.get('view')}"
                        f"{' (changing)' if s.get('changing_view') else ''},"
                        f" most nodes are in view {usual_view}",
                    }
                )
            elif top - height > LAG_BLOCKS:
                found.append(
                    {
                        "level": "warning",
                        "text": f"{node} is out of consensus: height {height}, {top - height}"
                        " blocks behind",
                    }
                )
        for height, hashes in heads.items():
            if len(hashes) > 1:
                found.append(
                    {"level": "error", "text": f"nodes disagree on the block at height {height}"}
                )
        waiting = any((s.get("mempool") or 0) > 0 for s in fresh.values())
        stalled_for = min(self.now - self.tracks[n].height_since for n in fresh)
        if waiting and stalled_for >= STALL_AFTER_S:
            found.append(
                {
                    "level": "error",
                    "text": f"height stalled at {top} for {stalled_for:.0f} s while requests wait",
                }
            )
        for node in fresh:
            history = self.tracks[node].mempool
            if not history or history[-1][0] - history[0][0] < MEMPOOL_GROWTH_WINDOW_S / 2:
                continue
            first, last = history[0][1], history[-1][1]
            if last >= MEMPOOL_ALERT_MIN and last > first * MEMPOOL_GROWTH_FACTOR:
                found.append(
                    {
                        "level": "warning",
                        "text": f"{node}'s mempool is growing: {first:,} to {last:,} requests"
                        f" in {history[-1][0] - history[0][0]:.0f} s",
                    }
                )
        return found

    def snapshot(self) -> dict[str, Any]:
        """Everything the Network page draws, JSON-ready."""
        nodes = []
        for node, role in self.roles.items():
            s = self.latest.get(node, {})
            age = self.ages.get(node)
            nodes.append(
                {
                    "id": node,
                    "role": role,
                    "fresh": self._fresh(node),
                    "view": s.get("view"),
                    "primary": s.get("primary"),
                    "changing_view": bool(s.get("changing_view")),
                    "height": s.get("height"),
                    "head_hash": s.get("head_hash"),
                    "tx_per_s": s.get("tx_per_s"),
                    "mempool": s.get("mempool"),
                    "view_changes": s.get("view_changes"),
                    "rejected_msgs": s.get("rejected_msgs"),
                    "metrics_url": s.get("metrics_url"),
                    "heartbeat_age_s": None if age is None else round(age, 1),
                    "health": self._health(node, s),
                }
            )
        return {
            "now": self.now + self.wall_offset_s,
            "window_s": self.window_s,
            "nodes": nodes,
            "tx_per_s": [[round(at + self.wall_offset_s, 1), rate] for at, rate in self.samples],
            "events": [
                {
                    "at": round(e.at + self.wall_offset_s, 1),
                    "kind": e.kind,
                    "node": e.node,
                    "text": e.text,
                }
                for e in self.events
                if e.at >= self.now - self.window_s
            ],
            "alerts": self.alerts(),
            "latest_block": self.latest_timeline(),
            "bus_problem": self.bus_problem,
        }

    def _health(self, node: str, status: dict[str, Any]) -> str:
        if not self._fresh(node):
            return "down"
        if status.get("changing_view"):
            return "view change"
        if status.get("faults"):
            return "faulted"
        return "ok"


def _describe_faults(faults: dict[str, Any]) -> str:
    parts = []
    if "partition" in faults:
        heard = faults["partition"]
        parts.append("hears only " + ", ".join(heard) if heard else "isolated")
    if faults.get("delay_ms"):
        parts.append(f"delayed {faults['delay_ms']} ms")
    return "; ".join(parts) or "fault"


def timeline_geometry(
    height: int, per_node: dict[str, dict[str, int]], order: list[str]
) -> dict[str, Any]:
    """Rows per node of phase times in ms after the earliest time any node saw, plus the
    span: the same numbers drive the block page's SVG and the Network page's script."""
    times = [t for phases in per_node.values() for t in phases.values()]
    start = min(times)
    span = max(1, max(times) - start)
    rows = []
    for node in [n for n in order if n in per_node] + sorted(set(per_node) - set(order)):
        phases = per_node[node]
        marks = [
            {"phase": phase, "ms": phases[phase] - start, "x": (phases[phase] - start) / span}
            for phase in PHASES
            if phase in phases
        ]
        rows.append({"node": node, "marks": marks})
    return {"height": height, "start_ms": start, "span_ms": span, "rows": rows}
