"""Supervision on a real network: a node that dies on its own comes back (and `status` says why),
a deliberate kill stays down until restarted, a node that cannot start backs off instead of
spinning, and `down` or Ctrl-C of `up` leave no process behind, supervisors included."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consortium.chaos.network import wait_until_ready
from consortium.devnet import Devnet, free_port, make_devnet
from consortium.keys import key_path
from consortium.node import supervisor
from tests.network_helpers import (
    client,
    heads_agree,
    live_network,
    network_processes,
    run_cli,
    status_rows,
    wait_for,
    wallets,
)

pytestmark = [pytest.mark.live, pytest.mark.slow]

NODE = "agency"


def commit_drafts(net: Devnet, count: int, day: int) -> int:
    """Commit `count` receivable drafts; the highest height they landed at."""
    w = wallets(net)
    signers = sorted(m for m in w if m.startswith("load-"))
    txs = [
        w[signers[i % len(signers)]].sign(
            "receivable.draft", {"debtor": "core", "amount": 1000 + i, "due_day": day}
        )
        for i in range(count)
    ]

    async def submit():
        async with client(net) as c:
            return await c.submit(txs, timeout_s=60)

    outcomes = asyncio.run(submit())
    assert all(o.ok for o in outcomes), [o.reason for o in outcomes if not o.ok][:3]
    return max(o.height for o in outcomes)


def new_pid(net: Devnet, old: int | None) -> int | None:
    pid = supervisor.node_pid(net.config, NODE)
    return pid if pid is not None and pid != old else None


def test_a_node_killed_behind_the_supervisors_back_is_restarted_and_rejoins(tmp_path: Path):
    with live_network(tmp_path) as net:
        wait_until_ready(net)
        commit_drafts(net, 10, day=90)
        old = supervisor.node_pid(net.config, NODE)
        assert old is not None
        os.kill(old, signal.SIGKILL)  # not through `fault kill`: an exit nobody asked for
        pid = wait_for(lambda: new_pid(net, old), 15, interval_s=0.1)
        row = status_rows(net)[NODE]
        assert row["pid"] == pid and row["alive"] and row["supervised"]
        assert row["restarts"] >= 1
        assert "SIGKILL" in row["last_exit_reason"], row
        assert row["last_exit"] == "SIGKILL"
        for other in status_rows(net).values():  # the contract keys are all still there
            assert {"id", "role", "pid", "alive", "view", "primary", "height", "head_hash"} <= set(
                other
            )
            assert {"committed_txs", "rejected_msgs", "restarts", "last_exit_reason"} <= set(other)
        top = commit_drafts(net, 10, day=91)
        agreed = wait_for(lambda: heads_agree(net, min_height=top), 30)
        assert agreed[NODE]["pid"] == pid  # the new process caught up, not a stale heartbeat


def test_fault_kill_holds_a_node_down_until_fault_restart(tmp_path: Path):
    with live_network(tmp_path) as net:
        wait_until_ready(net)
        killed = run_cli(net, "fault", "kill", NODE)
        assert killed.returncode == 0, killed.stderr
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:  # well past the first backoff (0.5 s)
            assert supervisor.node_pid(net.config, NODE) is None
            assert supervisor.supervisor_pid(net.config, NODE) is None
            time.sleep(0.2)
        row = status_rows(net)[NODE]
        assert not row["alive"] and row["pid"] is None and not row["supervised"]
        assert row["restarts"] == 0  # a deliberate kill is not a restart
        restarted = run_cli(net, "fault", "restart", NODE)
        assert restarted.returncode == 0, restarted.stderr
        pid = wait_for(lambda: supervisor.node_pid(net.config, NODE), 10, interval_s=0.1)
        top = commit_drafts(net, 5, day=90)
        agreed = wait_for(lambda: heads_agree(net, min_height=top), 30)
        assert agreed[NODE]["pid"] == pid
        # ... and it is supervised again: an exit on its own is restarted.
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: new_pid(net, pid), 15, interval_s=0.1)


def test_a_node_that_cannot_start_is_retried_with_growing_waits(tmp_path: Path):
    with live_network(tmp_path) as net:
        wait_until_ready(net)
        config = net.config
        supervisor.stop_node(config, NODE)
        key_file = key_path(config, NODE, "node", True)
        good_key = key_file.read_bytes()
        key_file.write_text("not a key\n")  # every start of this node fails at once
        started = time.monotonic()
        supervisor.spawn_node(config, NODE)
        time.sleep(max(0.0, started + 10.0 - time.monotonic()))
        state = supervisor.read_state(config, NODE)
        assert state is not None
        # Without backoff, starts of about a second each would have made nine or ten restarts.
        assert 1 <= state["restarts"] <= 5, state
        state = wait_for(
            lambda: (s := supervisor.read_state(config, NODE)) and len(s["history"]) >= 3 and s,
            20,
        )
        history = state["history"]
        assert [h["backoff_s"] for h in history[:3]] == [0.5, 1.0, 2.0]
        for before, after in itertools.pairwise(history):
            assert after["at"] - before["at"] >= before["backoff_s"]  # it did wait
        assert state["last_exit"].startswith("exit ") and state["last_exit_code"] != 0, state
        assert status_rows(net)[NODE]["last_exit_reason"] == state["last_exit_reason"]
        key_file.write_bytes(good_key)
        restarted = run_cli(net, "fault", "restart", NODE)  # no need to wait out the backoff
        assert restarted.returncode == 0, restarted.stderr
        top = commit_drafts(net, 5, day=90)
        wait_for(lambda: heads_agree(net, min_height=top), 30)


def _devnet(tmp_path: Path) -> Devnet:
    return make_devnet(
        tmp_path / "net", nodes=5, load_signers=4, broker=f"mqtt://127.0.0.1:{free_port()}"
    )


def _cleanup(net: Devnet) -> None:
    supervisor.stop_network(net.config)
    for node_id in net.config.node_ids:
        supervisor.stop_node(net.config, node_id, kill=True)


def test_up_detach_keeps_supervising_and_down_leaves_no_process(tmp_path: Path):
    net = _devnet(tmp_path)
    try:
        up = run_cli(net, "up", "--detach")
        assert up.returncode == 0, up.stderr
        wait_until_ready(net)
        # `up` has returned: the supervisors live on without it.
        old = supervisor.node_pid(net.config, NODE)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        pid = wait_for(lambda: new_pid(net, old), 15, interval_s=0.1)
        os.kill(pid, signal.SIGKILL)  # `down` while its supervisor waits out a backoff
        wait_for(lambda: (supervisor.read_state(net.config, NODE) or {}).get("restarts") == 1, 5)
        down = run_cli(net, "down")
        assert down.returncode == 0, down.stderr
        assert network_processes(net) == []
        assert not any((net.config.run_dir / "nodes").glob("*.pid"))
    finally:
        _cleanup(net)


def test_ctrl_c_of_up_stops_supervisors_and_nodes(tmp_path: Path):
    net = _devnet(tmp_path)
    command = [sys.executable, "-m", "consortium", "up", "--config", str(net.config.path)]
    with (tmp_path / "up.err").open("wb") as err:
        up = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        wait_for(lambda: all(supervisor.node_pid(net.config, n) for n in net.config.node_ids), 30)
        wait_until_ready(net)
        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0, (tmp_path / "up.err").read_text()
        assert network_processes(net) == []
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        _cleanup(net)
