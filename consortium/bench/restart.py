"""The restart benchmark: how long a node holding a long chain takes to be back in consensus.

Every node's store is given a history of `txs` committed transactions (`bench.history`), the
network starts on it, and under a small load a backup is killed (SIGKILL) and started again the
way `consortium fault restart` does; `restart_s` runs until it has caught up with blocks the
others committed after it came back and votes in their view (`bench.soak.measure_restart`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from consortium.bench.consensus import live_network, load_signer_ids
from consortium.bench.history import History, build_history
from consortium.bench.loadgen import LoadPlan
from consortium.bench.soak import RESTART_RATE, RESTART_SETTLE_S, RestartResult, measure_restart
from consortium.devnet import Devnet


@dataclass(frozen=True, slots=True)
class RestartBench:
    history: History
    network_start_s: float  # from starting every node on the history until all report
    restart: RestartResult

    def as_json(self) -> dict[str, Any]:
        return {
            "history_txs": self.history.txs,
            "history_height": self.history.height,
            "history_build_s": round(self.history.build_s, 1),
            "store_mb": round(self.history.store_mb, 1),
            "network_start_s": round(self.network_start_s, 2),
            **self.restart.as_json(),
        }


def run_restart_bench(
    txs: int = 2_000_000,
    block_txs: int = 2000,
    timeout_s: float = 120.0,
    rate: float = RESTART_RATE,
    progress: Any = None,
) -> RestartBench:
    built: list[tuple[History, float]] = []  # the history, and when it was in every store

    def prepare(net: Devnet) -> None:
        built.append((build_history(net, txs, block_txs, progress), time.monotonic()))

    with live_network(5, block_txs, durable=True, prepare=prepare) as net:
        history, ready_at = built[0]
        network_start_s = time.monotonic() - ready_at
        trickle = LoadPlan(
            str(net.config.path),
            0,
            tuple(load_signer_ids(net)[:10]),
            rate,
            0,
            RESTART_SETTLE_S + timeout_s + 30,
        )
        restart = measure_restart(net.config, trickle, timeout_s)
    return RestartBench(history, network_start_s, restart)
