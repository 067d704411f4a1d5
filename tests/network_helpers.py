"""A real local network for live tests: mosquitto on a free port and one OS process per node."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from consortium.client.client import ChainClient, ClientLogin
from consortium.client.wallet import Wallet
from consortium.client.watch import collect_statuses
from consortium.devnet import Devnet, free_port, make_devnet
from consortium.node import supervisor


@contextlib.contextmanager
def live_network(
    tmp: Path, nodes: int = 5, load_signers: int = 8, **overrides: Any
) -> Iterator[Devnet]:
    """Start broker and nodes; always stop every process, whatever the test did."""
    net = make_devnet(
        tmp / "net",
        nodes=nodes,
        load_signers=load_signers,
        broker=f"mqtt://127.0.0.1:{free_port()}",
        **overrides,
    )
    try:
        supervisor.start_network(net.config)
        yield net
    finally:
        supervisor.stop_network(net.config)
        for node_id in net.config.node_ids:
            supervisor.stop_node(net.config, node_id, kill=True)


def wallets(net: Devnet) -> dict[str, Wallet]:
    return {m: Wallet(net.config.chain_id, m, pair) for m, pair in net.member_pairs.items()}


def client(net: Devnet, index: int = 0) -> ChainClient:
    return ChainClient(net.config, net.keys, ClientLogin.local(net.config, f"load-{index}"))


def statuses(net: Devnet) -> dict[str, dict[str, Any]]:
    return asyncio.run(collect_statuses(net.config, wait_s=1.0))


def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.5) -> Any:
    """Poll `predicate` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s; last value {value!r}")


def heads_agree(net: Devnet, node_ids: list[str] | None = None, min_height: int = 1) -> dict | None:
    """The statuses if every listed node reports the same head at `min_height` or above."""
    current = statuses(net)
    ids = node_ids or list(net.config.node_ids)
    if any(n not in current for n in ids):
        return None
    heads = {current[n]["head_hash"] for n in ids}
    heights = {current[n]["height"] for n in ids}
    if len(heads) == 1 and min(heights) >= min_height:
        return current
    return None


def network_processes(net: Devnet) -> list[str]:
    """Every process whose command line names this network's directory (nodes, supervisors,
    mosquitto): what `down` must leave none of. Zombies have no command line and do not count."""
    marker = str(net.config.path.parent).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in args:
            shown = args.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {shown}")
    return found


def run_cli(net: Devnet, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`consortium ARGS --config NET` as a user runs it, in a process of its own."""
    command = [sys.executable, "-m", "consortium", *args, "--config", str(net.config.path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


def status_rows(net: Devnet) -> dict[str, dict[str, Any]]:
    """`consortium status --json`, by node id."""
    done = run_cli(net, "status", "--json")
    assert done.returncode == 0, done.stderr
    return {row["id"]: row for row in json.loads(done.stdout)["nodes"]}
