"""The fault mix of one run, drawn from its seed before the run starts.

Drawing the whole plan up front keeps a run reproducible from its seed alone and lets the report
count faults per kind. Byzantine behaviours are chosen here as well, for at most f nodes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from consortium.roles import max_faulty

BYZANTINE_BEHAVIOURS = (
    "twins",
    "silent",
    "invalid_blocks",
    "bad_sequence",
    "conflicting_votes",
    "stale_and_future_views",
)


@dataclass(frozen=True, slots=True)
class Partition:
    """During [start, end): symmetric splits the nodes into groups; asymmetric blocks the
    directed links in `blocked` (one node hears nobody, or nobody hears it)."""

    start: int
    end: int
    symmetric: bool
    groups: tuple[tuple[str, ...], ...] = ()
    blocked: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Crash:
    node: str
    at: int
    restart_at: int


@dataclass(frozen=True, slots=True)
class Clog:
    """Messages on src -> dst take `extra_ms` longer during [start, end)."""

    src: str
    dst: str
    start: int
    end: int
    extra_ms: int


@dataclass(frozen=True, slots=True)
class FaultPlan:
    drop_rate: float
    duplicate_rate: float
    delay_min_ms: int
    delay_max_ms: int
    partitions: tuple[Partition, ...]
    crashes: tuple[Crash, ...]
    clogs: tuple[Clog, ...]
    byzantine: dict[str, str] = field(default_factory=dict)
    twin_groups: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())

    def kinds(self) -> dict[str, int]:
        """How many faults of each kind the plan schedules (message faults count as 1 if on)."""
        return {
            "message_drop": int(self.drop_rate > 0),
            "duplication": int(self.duplicate_rate > 0),
            "reordering_delay": int(self.delay_max_ms - self.delay_min_ms >= 20),
            "partition_symmetric": sum(p.symmetric for p in self.partitions),
            "partition_asymmetric": sum(not p.symmetric for p in self.partitions),
            "crash_restart": len(self.crashes),
            "clogged_link": len(self.clogs),
        }


def _split(rng: random.Random, nodes: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    shuffled = nodes[:]
    rng.shuffle(shuffled)
    cut = rng.randint(1, len(shuffled) - 1)
    return tuple(sorted(shuffled[:cut])), tuple(sorted(shuffled[cut:]))


def fault_free_plan() -> FaultPlan:
    """No fault at all, and a fixed delay, so that every message of the normal case is sent
    once and arrives: the counts then compare with the PBFT paper's analysis."""
    return FaultPlan(0.0, 0.0, 5, 5, (), (), ())


def draw_plan(rng: random.Random, nodes: list[str], safety_ms: int, byzantine: bool) -> FaultPlan:
    f = max_faulty(len(nodes))
    chosen: dict[str, str] = {}
    if byzantine and f > 0:
        count = rng.randint(0, f)
        candidates = nodes[:]
        rng.shuffle(candidates)
        if count and rng.random() < 0.5 and nodes[0] not in candidates[:count]:
            candidates.remove(nodes[0])
            candidates.insert(0, nodes[0])  # often make the first primary the liar
        for node in sorted(candidates[:count]):
            chosen[node] = rng.choice(BYZANTINE_BEHAVIOURS)
    honest = [n for n in nodes if n not in chosen]
    twin_groups: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    if "twins" in chosen.values():
        others = [n for n in nodes if chosen.get(n) != "twins"]
        twin_groups = _split(rng, others)

    drop = rng.choice([0.0, 0.0, rng.uniform(0.0, 0.3)])
    duplicate = rng.choice([0.0, rng.uniform(0.0, 0.2)])
    delay_min = rng.randint(1, 10)
    delay_max = delay_min + rng.choice([0, 5, 50, 200])

    partitions = []
    for _ in range(rng.choice([0, 0, 1, 2])):
        start = rng.randint(0, safety_ms - 1000)
        end = min(safety_ms, start + rng.randint(500, 6000))
        if rng.random() < 0.5:
            partitions.append(Partition(start, end, True, groups=_split(rng, nodes)))
        else:
            victim = rng.choice(nodes)
            others = [n for n in nodes if n != victim]
            if rng.random() < 0.5:
                blocked = tuple((o, victim) for o in others)  # victim hears nobody
            else:
                blocked = tuple((victim, o) for o in others)  # nobody hears victim
            partitions.append(Partition(start, end, False, blocked=blocked))

    crashes = []
    for _ in range(rng.choice([0, 0, 1, 2])):
        node = rng.choice(honest)
        at = rng.randint(0, safety_ms - 500)
        crashes.append(Crash(node, at, min(safety_ms, at + rng.randint(200, 8000))))
    if len(honest) > 1 and rng.random() < 0.3:
        # A crash storm: several nodes (possibly more than f) go down close together and come
        # back from their disks, as after a power cut, so that what each one persisted, and
        # not only what the others remember, must carry consensus on.
        victims = rng.sample(honest, rng.randint(2, len(honest)))
        start = rng.randint(0, safety_ms - 3000)
        for node in sorted(victims):
            at = start + rng.randint(0, 1500)
            crashes.append(Crash(node, at, min(safety_ms, at + rng.randint(100, 2500))))

    clogs = []
    for _ in range(rng.choice([0, 1, 2])):
        src, dst = rng.sample(nodes, 2)
        start = rng.randint(0, safety_ms - 500)
        clogs.append(Clog(src, dst, start, start + rng.randint(500, 5000), rng.randint(200, 3000)))

    return FaultPlan(
        drop_rate=drop,
        duplicate_rate=duplicate,
        delay_min_ms=delay_min,
        delay_max_ms=delay_max,
        partitions=tuple(partitions),
        crashes=tuple(crashes),
        clogs=tuple(clogs),
        byzantine=chosen,
        twin_groups=twin_groups,
    )
