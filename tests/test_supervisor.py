"""The node supervisor without a network: its backoff schedule, how it names an exit, and its loop
around stand-in node commands (tiny Python processes), including holds and stop requests."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from consortium.devnet import make_devnet
from consortium.node import supervisor
from consortium.node.supervisor import (
    Backoff,
    NodeFiles,
    NodeSupervisor,
    backoff_delay,
    describe_exit,
    exit_reason,
    fatal_line,
)

FATAL_REASON = (
    "commit of height 12 failed: OSError: disk full (while handling pbft message from bank-b)"
)


def test_backoff_doubles_from_half_a_second_to_a_cap_of_thirty():
    assert [backoff_delay(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_delay(10_000) == 30


def test_backoff_starts_over_after_a_run_of_a_minute():
    backoff = Backoff()
    assert [backoff.next_delay(uptime_s=1.0) for _ in range(4)] == [0.5, 1, 2, 4]
    assert backoff.next_delay(uptime_s=59.0) == 8  # not stable yet: still failing
    assert backoff.next_delay(uptime_s=60.0) == 0.5  # stayed up a minute: a fresh crash
    assert backoff.next_delay(uptime_s=0.1) == 1


def test_an_exit_is_named_by_its_code_or_its_signal():
    assert describe_exit(70) == "exit 70"
    assert describe_exit(0) == "exit 0"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"


def test_the_last_fatal_line_is_the_reason_bare_or_after_the_log_prefix():
    bare = f"2026-11-24 10:00:00,001 core INFO view 0\nFATAL {FATAL_REASON}\n"
    assert fatal_line(bare) == f"FATAL {FATAL_REASON}"
    logged = "2026-11-24 10:00:00,001 core CRITICAL FATAL store gone\n"
    assert fatal_line(logged) == "FATAL store gone"
    assert fatal_line("FATAL first\nsome noise\nFATAL second\ntrailing line\n") == "FATAL second"
    assert fatal_line("2026-11-24 10:00:00,001 core INFO peer says FATAL things\n") is None
    assert fatal_line("FATALISM is not a reason\n") is None


def test_the_reason_comes_from_this_run_of_the_log_only(tmp_path: Path):
    log = tmp_path / "core.log"
    log.write_text(f"FATAL {FATAL_REASON}\n")
    since = log.stat().st_size
    with log.open("a") as f:
        f.write("2026-11-24 10:00:01,000 core INFO core connected\n")
    assert exit_reason(log, since, -9) == "killed by SIGKILL"
    assert exit_reason(log, 0, 70) == f"FATAL {FATAL_REASON}"
    assert exit_reason(tmp_path / "missing.log", 0, 70) == "exit 70"


def _files(tmp_path: Path) -> NodeFiles:
    (tmp_path / "nodes").mkdir(exist_ok=True)
    return NodeFiles(
        log=tmp_path / "node.log",
        pid=tmp_path / "nodes" / "n.pid",
        supervisor_pid=tmp_path / "nodes" / "n.supervisor.pid",
        hold=tmp_path / "nodes" / "n.hold",
        state=tmp_path / "nodes" / "n.state.json",
    )


def _python(code: str, log: Path) -> list[str]:
    """A stand-in node: writes to the log like a node's stderr would, then does `code`."""
    return [sys.executable, "-c", f"import sys, time\nsys.stderr = open({str(log)!r}, 'a')\n{code}"]


def _run_in_thread(runner: NodeSupervisor) -> threading.Thread:
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return thread


def _wait(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met")


def _state(files: NodeFiles) -> dict:
    return supervisor._load_json(files.state) or {}


def test_a_node_that_fails_every_start_is_restarted_with_growing_waits(tmp_path: Path):
    files = _files(tmp_path)
    fail = f"print('FATAL {FATAL_REASON}', file=sys.stderr, flush=True)\nsys.exit(70)"
    runner = NodeSupervisor(
        "n", _python(fail, files.log), files, Backoff(first_s=0.02, cap_s=0.08), poll_s=0.005
    )
    thread = _run_in_thread(runner)
    _wait(lambda: _state(files).get("restarts", 0) >= 4)
    files.hold.touch()
    thread.join(10)
    assert not thread.is_alive()
    state = _state(files)
    assert state["state"] == "stopped"
    assert state["last_exit"] == "exit 70"
    assert state["last_exit_code"] == 70
    assert state["last_exit_reason"] == f"FATAL {FATAL_REASON}"
    assert [h["backoff_s"] for h in state["history"][:4]] == [0.02, 0.04, 0.08, 0.08]
    assert not files.pid.exists()


def test_a_held_node_that_exits_is_not_restarted(tmp_path: Path):
    files = _files(tmp_path)
    runner = NodeSupervisor("n", _python("time.sleep(60)", files.log), files, poll_s=0.01)
    thread = _run_in_thread(runner)
    pid = _wait(lambda: _state(files).get("pid"))
    assert int(files.pid.read_text()) == pid
    files.hold.touch()  # what stop_node writes before it signals the node
    subprocess.run(["kill", "-KILL", str(pid)], check=True)
    thread.join(10)
    assert not thread.is_alive()
    state = _state(files)
    assert state["state"] == "stopped"
    assert state["restarts"] == 0
    assert state["last_exit"] is None  # a requested stop is not a failure


def test_a_stop_request_ends_the_node_and_the_supervisor(tmp_path: Path):
    files = _files(tmp_path)
    runner = NodeSupervisor("n", _python("time.sleep(60)", files.log), files, poll_s=0.01)
    thread = _run_in_thread(runner)
    _wait(lambda: _state(files).get("pid"))
    runner.request_stop()  # what SIGTERM to the supervisor does
    thread.join(10)
    assert not thread.is_alive()
    assert _state(files)["state"] == "stopped"
    assert _state(files)["restarts"] == 0


def test_restarts_carry_over_to_the_next_supervisor_of_the_node(tmp_path: Path):
    files = _files(tmp_path)
    files.state.write_text('{"restarts": 3, "last_exit": "SIGKILL"}')
    files.hold.touch()  # held from the start: it does not even start the node
    NodeSupervisor("n", _python("sys.exit(1)", files.log), files).run()
    state = _state(files)
    assert state["restarts"] == 3
    assert state["last_exit"] == "SIGKILL"
    assert state["state"] == "stopped"


@pytest.fixture
def net(tmp_path: Path):
    return make_devnet(tmp_path / "net", nodes=4)


def test_node_pid_never_answers_with_the_supervisor(net):
    config = net.config
    fake = [
        sys.executable,
        "-c",
        "import time; time.sleep(30)",
        *supervisor.supervisor_command(config, "core")[1:],
    ]
    process = subprocess.Popen(fake)
    try:
        _wait(lambda: Path(f"/proc/{process.pid}/cmdline").read_bytes().count(b"\0") > 3)
        files = supervisor.node_files(config, "core")
        files.pid.parent.mkdir(parents=True, exist_ok=True)
        files.pid.write_text(f"{process.pid}\n")
        files.supervisor_pid.write_text(f"{process.pid}\n")
        assert supervisor.node_pid(config, "core") is None
        assert supervisor.supervisor_pid(config, "core") == process.pid
        assert supervisor.supervisor_pid(config, "bank-a") is None
    finally:
        process.kill()
        process.wait()
