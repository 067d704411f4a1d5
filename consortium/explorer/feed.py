"""Keeps the explorer's `NetworkHistory` fed from the status heartbeats on the bus.

It reads the same retained heartbeats as `consortium status` (`StatusWatcher`, the operator's
login), subscribes to nothing else and publishes nothing, so the nodes never see it. A broker
that is down or a missing login leaves the store pages working and says so on the Network page.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from consortium.client.watch import StatusWatcher
from consortium.config import NetworkConfig
from consortium.explorer.network import NetworkHistory
from consortium.transport.credentials import BrokerError

POLL_S = 0.25


async def feed_history(config: NetworkConfig, history: NetworkHistory) -> None:
    """Run until cancelled."""
    try:
        watcher = StatusWatcher(config)
    except BrokerError as exc:
        history.bus_problem = f"no status heartbeats: {exc}"
        while True:
            history.observe({}, {}, time.monotonic())
            await asyncio.sleep(POLL_S)
    await watcher.transport.start()
    try:
        while True:
            transport = watcher.transport
            history.bus_problem = (
                None
                if transport.connected
                else f"not connected to the broker at {transport.endpoint.url}: "
                + (transport.last_error or "connecting")
            )
            ages = {node: watcher.age_s(node) for node in config.node_ids}
            history.observe(dict(watcher.latest), ages, time.monotonic())
            await asyncio.sleep(POLL_S)
    finally:
        with contextlib.suppress(Exception):
            await watcher.transport.close()
