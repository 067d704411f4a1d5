"""Reading the nodes' retained status heartbeats from the bus, for `status` and the dashboard."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from consortium.config import NetworkConfig
from consortium.errors import RemoteError
from consortium.notices import decode_status
from consortium.transport import credentials, topics
from consortium.transport.mqtt import IncomingMessage, MqttSettings, MqttTransport


class StatusWatcher:
    """Keeps the latest heartbeat of every node, with the local time it arrived."""

    def __init__(self, config: NetworkConfig) -> None:
        self.config = config
        self.latest: dict[str, dict[str, Any]] = {}
        self.seen_at: dict[str, float] = {}
        login = credentials.read_credentials(config.run_dir, credentials.OPERATOR_USERNAME)
        settings = MqttSettings(
            config.broker_url,
            login.username,
            login.password,
            (topics.status_filter(config.chain_id),),
            ca_file=credentials.ca_file(config),
        )
        self.transport = MqttTransport(settings, on_message=self._on_message)

    def _on_message(self, message: IncomingMessage) -> None:
        try:
            parsed = topics.parse_topic(self.config.chain_id, message.topic)
            status = decode_status(message.payload)
        except RemoteError:
            return
        if status["id"] == parsed.publisher:
            self.latest[parsed.publisher] = status
            self.seen_at[parsed.publisher] = time.monotonic()

    def age_s(self, node_id: str) -> float | None:
        seen = self.seen_at.get(node_id)
        return None if seen is None else time.monotonic() - seen

    async def __aenter__(self) -> StatusWatcher:
        await self.transport.start()
        await self.transport.wait_connected(timeout_s=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()


async def collect_statuses(config: NetworkConfig, wait_s: float = 1.0) -> dict[str, dict[str, Any]]:
    """The retained heartbeats (and anything newer within `wait_s`)."""
    async with StatusWatcher(config) as watcher:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and len(watcher.latest) < len(config.node_ids):
            await asyncio.sleep(0.05)
        await asyncio.sleep(min(0.3, wait_s))
        return dict(watcher.latest)
