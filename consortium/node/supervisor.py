"""Starting and stopping a local network: the broker and one OS process per node.

Each node runs `python -m consortium node run --id ID` in its own session, with its log in
`run_dir/logs/ID.log` and its pid in `run_dir/nodes/ID.pid`. A pid file is trusted only while that
pid is still a node of this network (pids get reused), so `down` never signals a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from consortium.config import NetworkConfig
from consortium.errors import ConfigError
from consortium.keys import init_keys, key_path, load_directory
from consortium.node import broker


@dataclass(frozen=True, slots=True)
class NodeProcess:
    node_id: str
    pid: int


def pid_path(config: NetworkConfig, node_id: str) -> Path:
    return config.run_dir / "nodes" / f"{node_id}.pid"


def log_path(config: NetworkConfig, node_id: str) -> Path:
    return config.run_dir / "logs" / f"{node_id}.log"


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def node_pid(config: NetworkConfig, node_id: str) -> int | None:
    """The pid of this network's running node `node_id`, or None."""
    try:
        pid = int(pid_path(config, node_id).read_text().strip())
    except (OSError, ValueError):
        return None
    args = _cmdline(pid)
    if b"node" in args and node_id.encode() in args and str(config.path).encode() in args:
        return pid
    return None


def ensure_keys(config: NetworkConfig) -> None:
    """Make keys on first use; with some but not all present, refuse rather than guess."""
    if not any(key_path(config, m.id, "member", True).exists() for m in config.members):
        init_keys(config)
    load_directory(config)


def spawn_node(
    config: NetworkConfig, node_id: str, extra_env: dict[str, str] | None = None
) -> NodeProcess:
    if node_id not in config.node_ids:
        raise ConfigError(f"no node {node_id!r} in {config.path}")
    running = node_pid(config, node_id)
    if running is not None:
        raise ConfigError(f"node {node_id} is already running (pid {running})")
    log = log_path(config, node_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_path(config, node_id).parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "consortium",
        "node",
        "run",
        "--id",
        node_id,
        "--config",
        str(config.path),
    ]
    with log.open("ab") as out:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env={**os.environ, **(extra_env or {})},
        )
    pid_path(config, node_id).write_text(f"{popen.pid}\n")
    return NodeProcess(node_id, popen.pid)


def signal_node(config: NetworkConfig, node_id: str, sig: signal.Signals) -> bool:
    pid = node_pid(config, node_id)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    return True


def stop_node(
    config: NetworkConfig, node_id: str, timeout_s: float = 10.0, kill: bool = False
) -> bool:
    """Stop a node: SIGTERM (or SIGKILL with `kill`), then SIGKILL after `timeout_s`."""
    pid = node_pid(config, node_id)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while broker.process_exists(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    with contextlib.suppress(FileNotFoundError):
        pid_path(config, node_id).unlink()
    return True


def start_network(config: NetworkConfig) -> list[NodeProcess]:
    """Keys if missing, broker configuration, broker, then every node."""
    ensure_keys(config)
    files = broker.write_broker_config(config, tls=broker.configured_tls(config))
    broker.start_broker(files)
    return [spawn_node(config, node_id) for node_id in config.node_ids]


def stop_network(config: NetworkConfig) -> list[str]:
    """Stop every node (in parallel: SIGTERM to all, then wait), then the broker."""
    stopped = [n for n in config.node_ids if signal_node(config, n, signal.SIGTERM)]
    for node_id in stopped:
        stop_node(config, node_id)
    broker.stop_running_broker(config)
    return stopped
