"""Reading the nodes' retained status heartbeats from the bus, for `status` and the dashboard."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from consortium.config import NetworkConfig
from consortium.errors import RemoteError
from consortium.notices import decode_status
from consortium.transport import credentials, topics
from consortium.transport.mqtt import IncomingMessage, MqttTransport, TransportError


def heartbeat_age_s(status: dict[str, Any], now_s: float) -> float | None:
    """How old a heartbeat is by the wall clock it was made with (`sent_at_ms`): a retained
    one arrives at once however long ago its node sent it. None if it does not say."""
    sent_at = status.get("sent_at_ms")
    if not isinstance(sent_at, int) or isinstance(sent_at, bool):
        return None
    return max(0.0, now_s - sent_at / 1000)


class StatusWatcher:
    """Keeps the latest heartbeat of every node, with the local time it was made (its arrival,
    less how old it says it is)."""

    def __init__(self, config: NetworkConfig) -> None:
        self.config = config
        self.latest: dict[str, dict[str, Any]] = {}
        self.seen_at: dict[str, float] = {}
        login = credentials.broker_login(config, credentials.OPERATOR_USERNAME)
        settings = credentials.mqtt_settings(login, (topics.status_filter(config.chain_id),))
        self.transport = MqttTransport(settings, on_message=self._on_message)

    def _on_message(self, message: IncomingMessage) -> None:
        try:
            parsed = topics.parse_topic(self.config.chain_id, message.topic)
            status = decode_status(message.payload)
        except RemoteError:
            return
        if status["id"] == parsed.publisher:
            self.latest[parsed.publisher] = status
            age = heartbeat_age_s(status, time.time()) or 0.0
            self.seen_at[parsed.publisher] = time.monotonic() - age

    def age_s(self, node_id: str) -> float | None:
        seen = self.seen_at.get(node_id)
        return None if seen is None else time.monotonic() - seen

    async def __aenter__(self) -> StatusWatcher:
        await self.transport.start()
        await self.transport.wait_connected(timeout_s=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()


async def probe_broker(
    config: NetworkConfig, broker_id: str, wait_s: float = 0.4
) -> tuple[bool, dict[str, bool]]:
    """Whether broker `broker_id` lets the operator in, and the state of each of its bridges
    (peer broker -> up), as mosquitto reports it."""
    login = credentials.broker_login(config, credentials.OPERATOR_USERNAME)
    login = dataclasses.replace(login, url=config.broker(broker_id).url, fallback_urls=())
    bridges: dict[str, bool] = {}

    def on_message(message: IncomingMessage) -> None:
        peer = topics.bridge_state_peer(message.topic, broker_id)
        if peer is not None:
            bridges[peer] = message.payload.strip() == b"1"

    settings = credentials.mqtt_settings(
        login, (topics.BRIDGE_STATE_FILTER,), connect_timeout_s=1.0
    )
    async with MqttTransport(settings, on_message=on_message) as transport:
        try:
            await transport.wait_connected(timeout_s=1.5)
        except TransportError:
            return False, {}
        await asyncio.sleep(wait_s)
    return True, dict(sorted(bridges.items()))


async def probe_brokers(config: NetworkConfig) -> dict[str, tuple[bool, dict[str, bool]]]:
    """`probe_broker` of every broker of the network, at once."""
    results = await asyncio.gather(*(probe_broker(config, b.id) for b in config.brokers))
    return {b.id: result for b, result in zip(config.brokers, results, strict=True)}


async def collect_statuses(config: NetworkConfig, wait_s: float = 1.0) -> dict[str, dict[str, Any]]:
    """The retained heartbeats (and anything newer within `wait_s`)."""
    async with StatusWatcher(config) as watcher:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and len(watcher.latest) < len(config.node_ids):
            await asyncio.sleep(0.05)
        await asyncio.sleep(min(0.3, wait_s))
        return dict(watcher.latest)
