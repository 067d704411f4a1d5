"""The nemesis schedule without a network: a seed replays the same faults, never more than f
nodes are impaired at once, the primary is a frequent target, and heal lifts everything."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from consortium.chaos import nemesis as nemesis_module
from consortium.chaos.nemesis import FaultKind, Nemesis
from consortium.config import NetworkConfig
from consortium.devnet import make_devnet
from consortium.node.faults import heal_message
from consortium.roles import max_faulty


class FakeNetwork:
    """Records what the nemesis does to processes and sends on the control topics."""

    def __init__(self, config: NetworkConfig) -> None:
        self.running = set(config.node_ids)
        self.paused: set[str] = set()
        self.controls: list[dict[str, bytes]] = []
        self.brokers = {b.id for b in config.brokers}

    def running_broker_pid(self, config: NetworkConfig, broker_id: str) -> int | None:
        return 1 if broker_id in self.brokers else None

    def stop_running_broker(self, config: NetworkConfig, broker_id: str, kill: bool) -> bool:
        assert kill, "a broker fault is a crash"
        found = broker_id in self.brokers
        self.brokers.discard(broker_id)
        return found

    def restart_broker(self, config: NetworkConfig, broker_id: str) -> None:
        self.brokers.add(broker_id)

    def node_pid(self, config: NetworkConfig, node: str) -> int | None:
        return 1 if node in self.running else None

    def stop_node(self, config: NetworkConfig, node: str, timeout_s: float, kill: bool) -> bool:
        self.running.discard(node)
        self.paused.discard(node)
        return True

    def spawn_node(self, config: NetworkConfig, node: str) -> None:
        self.running.add(node)

    def signal_node(self, config: NetworkConfig, node: str, sig: signal.Signals) -> bool:
        if node in self.running:
            (self.paused.add if sig is signal.SIGSTOP else self.paused.discard)(node)
        return node in self.running

    async def send_control(self, config: NetworkConfig, messages: dict[str, bytes]) -> None:
        self.controls.append(messages)


@pytest.fixture(params=["shared", "per_node"])
def config(tmp_path: Path, request: pytest.FixtureRequest) -> NetworkConfig:
    return make_devnet(tmp_path / "net", nodes=7, brokers=request.param).config


def _run_steps(
    config: NetworkConfig, monkeypatch: pytest.MonkeyPatch, seed: int, steps: int
) -> tuple[Nemesis, FakeNetwork, list[int]]:
    fake = FakeNetwork(config)
    for name in ("node_pid", "stop_node", "spawn_node", "signal_node"):
        monkeypatch.setattr(nemesis_module.supervisor, name, getattr(fake, name))
    for name in ("running_broker_pid", "stop_running_broker", "restart_broker"):
        monkeypatch.setattr(nemesis_module.broker, name, getattr(fake, name))
    monkeypatch.setattr(nemesis_module, "send_control", fake.send_control)
    primary = config.node_ids[0]
    nemesis = Nemesis(config, seed, lambda: primary)
    impaired_counts = []

    async def drive() -> None:
        for _ in range(steps):
            await nemesis.step()
            down = set(config.node_ids) - fake.running
            cut_off = set(config.node_ids) - fake.brokers if config.per_node_brokers else set()
            impaired_counts.append(len(set(nemesis.impaired) | down | fake.paused | cut_off))
        await nemesis.heal()

    asyncio.run(drive())
    return nemesis, fake, impaired_counts


def test_a_seed_replays_the_same_schedule(
    config: NetworkConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, _ = _run_steps(config, monkeypatch, seed=5, steps=100)
    again, _, _ = _run_steps(config, monkeypatch, seed=5, steps=100)
    other, _, _ = _run_steps(config, monkeypatch, seed=6, steps=100)
    plan = [(e.action, e.kind, e.node, e.detail) for e in first.log.events]
    assert plan == [(e.action, e.kind, e.node, e.detail) for e in again.log.events]
    assert plan != [(e.action, e.kind, e.node, e.detail) for e in other.log.events]


def test_never_more_than_f_nodes_impaired_and_heal_lifts_everything(
    config: NetworkConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    nemesis, fake, counts = _run_steps(config, monkeypatch, seed=9, steps=300)
    f = max_faulty(len(config.node_ids))
    assert max(counts) == f
    kinds = {k.value for k in FaultKind}
    if not config.per_node_brokers:  # one shared broker is not one organisation's to kill
        kinds.discard(FaultKind.BROKER_DOWN.value)
    assert set(nemesis.log.injected) == kinds
    assert nemesis.log.primary_hits > nemesis.log.injected.total() // 4
    assert fake.running == set(config.node_ids) and not fake.paused
    assert fake.brokers == {b.id for b in config.brokers}
    assert not nemesis.impaired
    assert fake.controls[-1] == {n: heal_message() for n in config.node_ids}
