"""The nemesis: seeded faults on the live network, never more than f nodes impaired at once.

Every choice (what, whom, when, how long) comes from one `random.Random(seed)`, so a seed
replays the same schedule; the network's timing still varies from run to run. The current primary
is a favourite target, since that is what forces view changes. Process faults go through the
supervisor (SIGKILL, SIGSTOP/SIGCONT, respawn from the node's own disk); partitions and delays go
through the operator's control topic, which each node obeys for itself. With a broker per
organisation, an organisation's broker SIGKILLed (and later restarted) is one more fault: it cuts
off that organisation's node, so it counts against the same limit of f.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from consortium.client.operator import send_control
from consortium.config import NetworkConfig
from consortium.node import broker, supervisor
from consortium.node.faults import delay_message, heal_message, partition_message
from consortium.roles import max_faulty

PRIMARY_BIAS = 0.5
MIN_DELAY_MS = 100
MAX_DELAY_MS = 2_500


class FaultKind(StrEnum):
    KILL = "kill"  # SIGKILL, held down (not restarted by its supervisor) until the fault ends
    CRASH_RESTART = "crash_restart"  # SIGKILL and respawn at once
    PAUSE = "pause"  # SIGSTOP until SIGCONT
    PARTITION = "partition"  # cut off from every other node
    DELAY = "delay"  # holds back every consensus message it sends
    BROKER_DOWN = "broker_down"  # its organisation's broker SIGKILLed until the fault ends


@dataclass(frozen=True, slots=True)
class NemesisEvent:
    at_s: float
    action: str  # "inject", "recover" or "heal"
    kind: FaultKind | None
    node: str
    detail: str = ""


@dataclass(slots=True)
class NemesisLog:
    injected: Counter[str] = field(default_factory=Counter)
    events: list[NemesisEvent] = field(default_factory=list)
    primary_hits: int = 0


class Nemesis:
    """Injects and lifts faults until stopped; `heal` lifts everything that is still on."""

    def __init__(
        self,
        config: NetworkConfig,
        seed: int,
        primary_of_network: Callable[[], str | None],
        step_s: tuple[float, float] = (1.0, 3.0),
    ) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.primary_of_network = primary_of_network
        self.step_s = step_s
        self.limit = max_faulty(len(config.node_ids))
        self.kinds = [
            k for k in FaultKind if k is not FaultKind.BROKER_DOWN or config.per_node_brokers
        ]
        self.impaired: dict[str, FaultKind] = {}
        self.delays: dict[str, int] = {}
        self.log = NemesisLog()
        self.clock_start = 0.0

    def _record(self, action: str, kind: FaultKind | None, node: str, detail: str = "") -> None:
        now = asyncio.get_running_loop().time() - self.clock_start
        self.log.events.append(NemesisEvent(round(now, 3), action, kind, node, detail))

    # -- single faults ------------------------------------------------------------------

    async def _kill(self, node: str) -> None:
        await asyncio.to_thread(supervisor.stop_node, self.config, node, timeout_s=5.0, kill=True)

    async def _spawn(self, node: str) -> None:
        if supervisor.node_pid(self.config, node) is None:
            await asyncio.to_thread(supervisor.spawn_node, self.config, node)

    def _signal(self, node: str, sig: signal.Signals) -> None:
        supervisor.signal_node(self.config, node, sig)

    async def _kill_broker(self, node: str) -> None:
        await asyncio.to_thread(broker.stop_running_broker, self.config, node, kill=True)

    async def _start_broker(self, node: str) -> None:
        if broker.running_broker_pid(self.config, node) is None:
            await asyncio.to_thread(broker.restart_broker, self.config, node)

    async def _send_partition(self) -> None:
        isolated = sorted(n for n, k in self.impaired.items() if k is FaultKind.PARTITION)
        if isolated:
            rest = [n for n in self.config.node_ids if n not in isolated]
            groups = [[n] for n in isolated] + [rest]
            message = partition_message(groups)
        else:
            message = heal_message()
        await send_control(self.config, {n: message for n in self.config.node_ids})
        if self.delays:  # a heal message also clears delays: send them again
            await send_control(self.config, {n: delay_message(ms) for n, ms in self.delays.items()})

    async def inject(self, kind: FaultKind, node: str) -> None:
        detail = ""
        if kind is FaultKind.KILL:
            await self._kill(node)
        elif kind is FaultKind.CRASH_RESTART:
            await self._kill(node)
            await self._spawn(node)
        elif kind is FaultKind.PAUSE:
            self._signal(node, signal.SIGSTOP)
        elif kind is FaultKind.PARTITION:
            self.impaired[node] = kind
            await self._send_partition()
        elif kind is FaultKind.DELAY:
            ms = self.rng.randint(MIN_DELAY_MS, MAX_DELAY_MS)
            self.delays[node] = ms
            detail = f"{ms} ms"
            await send_control(self.config, {node: delay_message(ms)})
        elif kind is FaultKind.BROKER_DOWN:
            await self._kill_broker(node)
        if kind is not FaultKind.CRASH_RESTART:
            self.impaired[node] = kind
        self.log.injected[kind.value] += 1
        self._record("inject", kind, node, detail)

    async def recover(self, node: str) -> None:
        kind = self.impaired.pop(node)
        if kind is FaultKind.KILL:
            await self._spawn(node)
        elif kind is FaultKind.PAUSE:
            self._signal(node, signal.SIGCONT)
        elif kind is FaultKind.PARTITION:
            await self._send_partition()
        elif kind is FaultKind.DELAY:
            self.delays.pop(node, None)
            await send_control(self.config, {node: delay_message(0)})
        elif kind is FaultKind.BROKER_DOWN:
            await self._start_broker(node)
        self._record("recover", kind, node)

    # -- the schedule -------------------------------------------------------------------

    def _pick_target(self) -> str:
        """The primary half of the time; both draws are always made, so the random sequence
        stays the same for a seed whoever turns out to be primary."""
        healthy = [n for n in self.config.node_ids if n not in self.impaired]
        roll, fallback = self.rng.random(), self.rng.choice(healthy)
        primary = self.primary_of_network()
        if primary in healthy and roll < PRIMARY_BIAS:
            self.log.primary_hits += 1
            return primary
        return fallback

    async def step(self) -> None:
        """Lift a fault or inject one, keeping at most f nodes impaired."""
        must_lift = len(self.impaired) >= self.limit
        if self.impaired and (must_lift or self.rng.random() < 0.5):
            await self.recover(self.rng.choice(sorted(self.impaired)))
        else:
            kind = self.rng.choice(self.kinds)
            await self.inject(kind, self._pick_target())

    async def run(self, stop: asyncio.Event) -> None:
        self.clock_start = asyncio.get_running_loop().time()
        while not stop.is_set():
            pause_s = self.rng.uniform(*self.step_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause_s)
            if stop.is_set():
                return
            await self.step()

    async def heal(self) -> None:
        """Every node running, none paused, every broker it killed running again, no partition
        or delay left."""
        for node, kind in list(self.impaired.items()):
            if kind is FaultKind.PAUSE:
                self._signal(node, signal.SIGCONT)
            elif kind is FaultKind.BROKER_DOWN:
                await self._start_broker(node)
        self.impaired.clear()
        self.delays.clear()
        for node in self.config.node_ids:
            self._signal(node, signal.SIGCONT)
            await self._spawn(node)
        await send_control(self.config, {n: heal_message() for n in self.config.node_ids})
        self._record("heal", None, "*")
