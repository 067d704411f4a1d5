"""A throw-away live network on a free port, for `--fresh` runs and tests: always torn down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from consortium.client.watch import collect_statuses
from consortium.devnet import Devnet, local_brokers, make_devnet
from consortium.errors import ConfigError
from consortium.node import supervisor

READY_TIMEOUT_S = 60.0


def wait_until_ready(net: Devnet, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Every node process alive and its heartbeat on the bus, or a clear error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        heard = asyncio.run(collect_statuses(net.config, wait_s=1.0))
        alive = all(supervisor.node_pid(net.config, n) is not None for n in net.config.node_ids)
        if alive and all(n in heard for n in net.config.node_ids):
            return
    raise ConfigError(f"the network in {net.config.path.parent} did not come up in {timeout_s:g} s")


@contextlib.contextmanager
def fresh_network(
    directory: Path, nodes: int = 5, load_signers: int = 32, broker_per_node: bool = False
) -> Iterator[Devnet]:
    """Brokers and node processes of a new devnet (one broker, or one per organisation); every
    process is stopped on the way out, whatever happened inside (a paused node is killed, not
    left frozen)."""
    net = make_devnet(
        directory,
        nodes=nodes,
        load_signers=load_signers,
        **local_brokers(nodes, broker_per_node),
    )
    try:
        supervisor.start_network(net.config)
        wait_until_ready(net)
        yield net
    finally:
        for node_id in net.config.node_ids:
            supervisor.stop_node(net.config, node_id, timeout_s=2.0, kill=True)
        supervisor.stop_network(net.config)
