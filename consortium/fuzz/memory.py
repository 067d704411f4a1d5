"""Resident memory of node processes, from /proc: the fuzzer reports it before and after."""

from __future__ import annotations

from pathlib import Path

from consortium.config import NetworkConfig
from consortium.node import supervisor


def rss_kib(pid: int) -> int | None:
    """VmRSS of `pid` in KiB, or None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def nodes_rss_kib(config: NetworkConfig) -> dict[str, int | None]:
    result: dict[str, int | None] = {}
    for node_id in config.node_ids:
        pid = supervisor.node_pid(config, node_id)
        result[node_id] = None if pid is None else rss_kib(pid)
    return result
