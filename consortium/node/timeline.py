"""When this node saw each PBFT phase of a block: the picture of one block's consensus per node.

Derived only from what the node core already has after a replica step: the records the step
asks to persist (`pp/<height>` when a pre-prepare is accepted, or proposed by the primary;
`proof/<height>` when the block is prepared), the replica's commit votes (a quorum in one view
means committed), and the blocks the step executed. Times are the core's `now` (ms), so the
recorder reads no clock and works alike in the node process and the simulator.

Memory is bounded: at most `keep` blocks in progress and `keep` finished ones; older ones go.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from consortium.pbft.actions import Actions

PHASES: tuple[str, ...] = ("pre_prepare", "prepared", "committed", "executed")
DEFAULT_KEEP = 256
PUBLISHED_BLOCKS = 32
_PRE_PREPARE_RECORD = "pp/"
_PREPARED_RECORD = "proof/"


@dataclass(slots=True)
class BlockTiming:
    """The first time this node saw each phase of one height; a phase it skipped (a block
    installed by state transfer has no pre-prepare) stays absent."""

    height: int
    times: dict[str, int] = field(default_factory=dict)

    def mark(self, phase: str, now: int) -> None:
        self.times.setdefault(phase, now)

    def to_wire(self) -> list[int | None]:
        """`[height, pre_prepare, prepared, committed, executed]`, None for a missing phase."""
        return [self.height, *(self.times.get(phase) for phase in PHASES)]

    @staticmethod
    def from_wire(value: object) -> BlockTiming | None:
        """A published entry, or None when it is not one (heartbeats are not trusted input)."""
        if not isinstance(value, list | tuple) or len(value) != 1 + len(PHASES):
            return None
        if not all(v is None or (type(v) is int) for v in value) or value[0] is None:
            return None
        times = {p: t for p, t in zip(PHASES, value[1:], strict=True) if t is not None}
        return BlockTiming(value[0], times)

    def latency(self, start: str, end: str) -> int | None:
        if start in self.times and end in self.times:
            return max(0, self.times[end] - self.times[start])
        return None


class ConsensusTimeline:
    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self.keep = keep
        self.open: OrderedDict[int, BlockTiming] = OrderedDict()
        self.finished: deque[BlockTiming] = deque(maxlen=keep)
        self.finished_total = 0
        """Blocks finished since the node started: a reader that remembers how many it has
        seen takes the rest from the end of `finished` (some are lost if it lags `keep`)."""

    def observe(
        self,
        actions: Actions,
        now: int,
        commit_votes: Mapping[int, Mapping[int, Mapping[str, object]]],
        quorum: int,
    ) -> None:
        """One replica step's output, and its votes afterwards (`commit_votes[height][view]`)."""
        for record in actions.persist:
            if record.value is None:
                continue
            if record.key.startswith(_PRE_PREPARE_RECORD):
                self._timing(int(record.key[len(_PRE_PREPARE_RECORD) :])).mark("pre_prepare", now)
            elif record.key.startswith(_PREPARED_RECORD):
                self._timing(int(record.key[len(_PREPARED_RECORD) :])).mark("prepared", now)
        for height, timing in self.open.items():
            if "committed" not in timing.times and any(
                len(votes) >= quorum for votes in commit_votes.get(height, {}).values()
            ):
                timing.mark("committed", now)
        for block in actions.committed:
            timing = self._timing(block.height)
            timing.mark("committed", now)
            timing.mark("executed", now)
            del self.open[block.height]
            self.finished.append(timing)
            self.finished_total += 1

    def _timing(self, height: int) -> BlockTiming:
        timing = self.open.get(height)
        if timing is None:
            timing = self.open[height] = BlockTiming(height)
            while len(self.open) > self.keep:
                self.open.popitem(last=False)
        return timing

    def recent(self, count: int = PUBLISHED_BLOCKS) -> list[BlockTiming]:
        """The last `count` finished blocks and those in progress, by height."""
        finished = list(self.finished)[-count:]
        return sorted([*finished, *self.open.values()], key=lambda t: t.height)[-count:]

    def newly_finished(self, seen_total: int) -> Iterable[BlockTiming]:
        """The blocks finished after the first `seen_total` (as many as are still kept)."""
        missing = min(self.finished_total - seen_total, len(self.finished))
        return list(self.finished)[len(self.finished) - missing :] if missing > 0 else []
