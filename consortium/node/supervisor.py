"""Starting, supervising and stopping a local network: the broker and one OS process per node.

Each node runs `python -m consortium node run --id ID` under a supervisor of its own,
`python -m consortium.node.supervisor --id ID --config PATH`, a small process in its own session
that outlives the command that started it (`up --detach` returns to the shell) and starts the node
again, with exponential backoff, whenever it exits without having been asked to. One supervisor per
node rather than one per network keeps each node's life separate: `fault kill`, `fault restart`
and the chaos nemesis stop and start one node and its supervisor together, and a supervisor that
dies takes no other node's supervision with it (its node keeps running and `down` still stops it).

Files, in `run_dir`:

- `logs/ID.log`: the node's output, and the supervisor's own lines about exits and restarts;
- `nodes/ID.pid`: the pid of the node process itself (written by its supervisor), so that
  `node_pid`, `fault pause` and the memory probes act on the node, never on its supervisor;
- `nodes/ID.supervisor.pid`: the supervisor's pid;
- `nodes/ID.hold`: a requested stop. It is written before the node is signalled, so a supervisor
  that sees its node exit checks it and, finding it, exits instead of restarting: `down`, Ctrl-C of
  `up`, `fault kill` and the nemesis's kills keep a node down until `spawn_node` starts it again;
- `nodes/ID.state.json`: restarts, the last exit and its reason, for `consortium status`. JSON,
  not msgpack: a local run file read by people as much as by programs, never wire or store bytes.

A pid file is trusted only while that pid still runs the expected command for this network (pids
get reused), so `down` never signals a stranger.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consortium.config import NetworkConfig, load_config
from consortium.errors import ConfigError
from consortium.keys import init_keys, key_path, load_directory
from consortium.node import broker, local_tls

log = logging.getLogger("consortium.supervisor")

FIRST_BACKOFF_S = 0.5  # a node that crashed once is back within about a second
MAX_BACKOFF_S = 30.0  # a fault every start hits costs one attempt per 30 s, not a busy loop
STABLE_AFTER_S = 60.0  # a run this long proves the last fault gone: back to FIRST_BACKOFF_S
STOP_GRACE_S = 10.0  # a stopping supervisor's SIGTERM to its node, then SIGKILL
SPAWN_TIMEOUT_S = 20.0  # a new supervisor has started its node (two Python start-ups)
POLL_S = 0.1
IDLE_CHECK_S = 5.0  # a running node is looked at on every signal, and this often regardless
HISTORY = 20  # recent exits kept in the state file
TAIL_BYTES = 64 * 1024  # how much of the log end to search for the FATAL line
TERMINATING = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGQUIT})
_FATAL = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[,.]\d+)? \S+ [A-Z]+ )?(FATAL .*\S)\s*$")


@dataclass(frozen=True, slots=True)
class NodeProcess:
    node_id: str
    pid: int


@dataclass(frozen=True, slots=True)
class NodeFiles:
    """Where one node's log, pids, hold and supervision state live."""

    log: Path
    pid: Path
    supervisor_pid: Path
    hold: Path
    state: Path


def pid_path(config: NetworkConfig, node_id: str) -> Path:
    return config.run_dir / "nodes" / f"{node_id}.pid"


def log_path(config: NetworkConfig, node_id: str) -> Path:
    return config.run_dir / "logs" / f"{node_id}.log"


def node_files(config: NetworkConfig, node_id: str) -> NodeFiles:
    nodes = config.run_dir / "nodes"
    return NodeFiles(
        log=log_path(config, node_id),
        pid=pid_path(config, node_id),
        supervisor_pid=nodes / f"{node_id}.supervisor.pid",
        hold=nodes / f"{node_id}.hold",
        state=nodes / f"{node_id}.state.json",
    )


def node_command(config: NetworkConfig, node_id: str) -> list[str]:
    return [
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


def supervisor_command(config: NetworkConfig, node_id: str) -> list[str]:
    """A module of its own rather than a `consortium` subcommand: it starts in a quarter of the
    time and memory of the whole command line, and restarts wait for it."""
    return [
        sys.executable,
        "-m",
        "consortium.node.supervisor",
        "--id",
        node_id,
        "--config",
        str(config.path),
    ]


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _has_run(args: list[bytes], *run: bytes) -> bool:
    return any(args[i : i + len(run)] == list(run) for i in range(len(args)))


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def node_pid(config: NetworkConfig, node_id: str) -> int | None:
    """The pid of this network's running node process `node_id` (never its supervisor), or None."""
    pid = _read_pid(pid_path(config, node_id))
    if pid is None:
        return None
    args = _cmdline(pid)
    if (
        _has_run(args, b"node", b"run")
        and _has_run(args, b"--id", node_id.encode())
        and _has_run(args, b"--config", str(config.path).encode())
    ):
        return pid
    return None


def supervisor_pid(config: NetworkConfig, node_id: str) -> int | None:
    """The pid of the running supervisor of this network's node `node_id`, or None."""
    pid = _read_pid(node_files(config, node_id).supervisor_pid)
    if pid is None:
        return None
    args = _cmdline(pid)
    if (
        _has_run(args, b"-m", b"consortium.node.supervisor")
        and _has_run(args, b"--id", node_id.encode())
        and _has_run(args, b"--config", str(config.path).encode())
    ):
        return pid
    return None


def read_state(config: NetworkConfig, node_id: str) -> dict[str, Any] | None:
    """What the node's supervisor last recorded (restarts, last exit and reason), or None."""
    return _load_json(node_files(config, node_id).state)


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_atomic(path: Path, text: str) -> None:
    """Readers never see half a file: write aside, then rename over."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _unlink_if(path: Path, pid: int | None = None) -> None:
    """Remove `path`; with `pid`, only while it still names that pid."""
    with contextlib.suppress(OSError):
        if pid is None or _read_pid(path) == pid:
            path.unlink()


# -- why a node exited -------------------------------------------------------------------------


def describe_exit(returncode: int) -> str:
    """`exit 70`, or `killed by SIGKILL` for a process ended by a signal."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit {returncode}"


def fatal_line(text: str) -> str | None:
    """The last `FATAL ...` line of a node's log text (bare, or after the logging prefix)."""
    for line in reversed(text.splitlines()):
        match = _FATAL.match(line)
        if match:
            return match.group(1)
    return None


def exit_reason(log_file: Path, since: int, returncode: int) -> str:
    """The FATAL line the node wrote during this run, else how it exited."""
    try:
        with log_file.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(since, size - TAIL_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    return fatal_line(text) or describe_exit(returncode)


# -- backoff -------------------------------------------------------------------------------------


def backoff_delay(
    failures: int, first_s: float = FIRST_BACKOFF_S, cap_s: float = MAX_BACKOFF_S
) -> float:
    """The wait before start number `failures + 1` of a run of quick failures."""
    return min(cap_s, first_s * 2 ** min(failures, 62))


@dataclass(slots=True)
class Backoff:
    """Doubling waits while the node keeps failing, so a fault every start hits (a bad disk, a
    corrupt key, a bug on replay) settles at one attempt per `cap_s` instead of a busy loop; once a
    run lasted `stable_s` the fault is taken as gone and the next crash is retried at once again."""

    first_s: float = FIRST_BACKOFF_S
    cap_s: float = MAX_BACKOFF_S
    stable_s: float = STABLE_AFTER_S
    failures: int = 0

    def next_delay(self, uptime_s: float) -> float:
        if uptime_s >= self.stable_s:
            self.failures = 0
        delay = backoff_delay(self.failures, self.first_s, self.cap_s)
        self.failures += 1
        return delay


# -- the supervisor process ------------------------------------------------------------------------


@dataclass(slots=True)
class NodeSupervisor:
    """Runs one node until asked to stop: restarts it after every exit it was not asked for."""

    node_id: str
    command: list[str]
    files: NodeFiles
    backoff: Backoff = field(default_factory=Backoff)
    stop_grace_s: float = STOP_GRACE_S
    poll_s: float = POLL_S  # how often to look without a wakeup fd (not the main thread)
    wakeup_fd: int | None = None  # readable after any signal: SIGCHLD, SIGTERM, ...
    stop_requested: bool = False
    state: dict[str, Any] = field(default_factory=dict)

    def request_stop(self, *_: object) -> None:
        """Signal handler: stop the node (SIGTERM, SIGKILL after the grace) and exit."""
        self.stop_requested = True

    def install_signals(self) -> None:
        """Sleep until something happens rather than poll: every signal (the node's SIGCHLD, a
        stop request) makes the wakeup fd readable. Main thread only."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd)
        self.wakeup_fd = read_fd
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.request_stop)

    def _pause(self, timeout_s: float) -> None:
        """Until a signal arrives or `timeout_s` passed."""
        if self.wakeup_fd is None:
            time.sleep(max(0.0, min(timeout_s, self.poll_s)))
            return
        readable, _, _ = select.select([self.wakeup_fd], [], [], max(0.0, timeout_s))
        if readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.wakeup_fd, 512):
                    pass

    def held(self) -> bool:
        return self.stop_requested or self.files.hold.exists()

    def _save(self, **changes: Any) -> None:
        self.state.update(changes, updated_at=round(time.time(), 3))
        _write_atomic(self.files.state, json.dumps(self.state, sort_keys=True, indent=1) + "\n")

    def run(self) -> None:
        previous = _load_json(self.files.state) or {}
        self.state = {
            "node": self.node_id,
            "restarts": int(previous.get("restarts", 0)),
            "last_exit": previous.get("last_exit"),
            "last_exit_code": previous.get("last_exit_code"),
            "last_exit_reason": previous.get("last_exit_reason"),
            "last_exit_at": previous.get("last_exit_at"),
            "history": list(previous.get("history", []))[-HISTORY:],
        }
        self._save(supervisor_pid=os.getpid(), pid=None, state="starting", restart_in_s=None)
        first = True
        while not self.held():
            if not first:
                self.state["restarts"] += 1
            first = False
            since, started = self._log_size(), time.monotonic()
            try:
                popen = self._start()
            except OSError as exc:
                returncode, reason = 127, f"could not start: {exc}"
            else:
                returncode = self._wait(popen)
                _unlink_if(self.files.pid, popen.pid)
                if self.held():
                    log.info("node stopped on request (%s)", describe_exit(returncode))
                    break
                reason = exit_reason(self.files.log, since, returncode)
            uptime_s = time.monotonic() - started
            delay = self.backoff.next_delay(uptime_s)
            exit_text = describe_exit(returncode).removeprefix("killed by ")
            history = [
                *self.state["history"],
                {
                    "at": round(time.time(), 3),
                    "exit": exit_text,
                    "uptime_s": round(uptime_s, 3),
                    "backoff_s": delay,
                },
            ][-HISTORY:]
            self._save(
                pid=None,
                state="restarting",
                last_exit=exit_text,
                last_exit_code=returncode,
                last_exit_reason=reason,
                last_exit_at=round(time.time(), 3),
                restart_in_s=delay,
                history=history,
            )
            log.warning(
                "node exited after %.1f s (%s); restart %d in %g s",
                uptime_s,
                reason,
                self.state["restarts"] + 1,
                delay,
            )
            self._sleep(delay)
        # The supervisor pid file stays: whoever stops us waits on it until this process is gone.
        self._save(pid=None, state="stopped", restart_in_s=None)

    def _log_size(self) -> int:
        try:
            return self.files.log.stat().st_size
        except OSError:
            return 0

    def _start(self) -> subprocess.Popen[bytes]:
        # Its own session, like the supervisor's: signals meant for one never reach the other.
        popen = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, start_new_session=True)
        _write_atomic(self.files.pid, f"{popen.pid}\n")
        self._save(
            pid=popen.pid,
            last_pid=popen.pid,
            state="running",
            started_at=round(time.time(), 3),
            restart_in_s=None,
        )
        return popen

    def _wait(self, popen: subprocess.Popen[bytes]) -> int:
        """The node's exit status; on a stop request, SIGTERM it, then SIGKILL after the grace.
        A signal between `poll` and `_pause` is not lost: it stays readable on the wakeup fd."""
        stop_sent: float | None = None
        while True:
            returncode = popen.poll()
            if returncode is not None:
                return returncode
            if self.stop_requested and stop_sent is None:
                popen.send_signal(signal.SIGTERM)
                stop_sent = time.monotonic()
            elif stop_sent is not None and time.monotonic() - stop_sent > self.stop_grace_s:
                popen.kill()
            self._pause(self.stop_grace_s if stop_sent is not None else IDLE_CHECK_S)

    def _sleep(self, delay_s: float) -> None:
        deadline = time.monotonic() + delay_s
        while not self.held() and time.monotonic() < deadline:
            self._pause(deadline - time.monotonic())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consortium.node.supervisor",
        description="Run one node and start it again, with backoff, whenever it exits on its own.",
    )
    parser.add_argument("--id", dest="node_id", required=True)
    parser.add_argument("--config", dest="config_path", required=True)
    args = parser.parse_args(argv)
    config = load_config(args.config_path)
    if args.node_id not in config.node_ids:
        parser.error(f"no node {args.node_id!r} in {config.path}")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {args.node_id} %(levelname)s supervisor: %(message)s",
    )
    runner = NodeSupervisor(
        args.node_id, node_command(config, args.node_id), node_files(config, args.node_id)
    )
    runner.install_signals()
    runner.run()
    return 0


# -- what the commands call ----------------------------------------------------------------------


def ensure_keys(config: NetworkConfig) -> None:
    """Make keys on first use; with some but not all present, refuse rather than guess."""
    if not any(key_path(config, m.id, "member", True).exists() for m in config.members):
        init_keys(config)
    load_directory(config)


def _launch(
    config: NetworkConfig, node_id: str, extra_env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    """Start the supervisor of `node_id` (which starts the node); returns at once."""
    if node_id not in config.node_ids:
        raise ConfigError(f"no node {node_id!r} in {config.path}")
    running = node_pid(config, node_id)
    if running is not None:
        raise ConfigError(f"node {node_id} is already running (pid {running})")
    if supervisor_pid(config, node_id) is not None:
        # Waiting out a backoff: an explicit start replaces it and starts the node now.
        stop_node(config, node_id)
    files = node_files(config, node_id)
    files.log.parent.mkdir(parents=True, exist_ok=True)
    files.pid.parent.mkdir(parents=True, exist_ok=True)
    _unlink_if(files.hold)
    with files.log.open("ab") as out:
        popen = subprocess.Popen(
            supervisor_command(config, node_id),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # outlives `up --detach`; Ctrl-C of `up` stops it in order
            env={**os.environ, **(extra_env or {})},
        )
    _write_atomic(files.supervisor_pid, f"{popen.pid}\n")
    return popen


def _first_start(config: NetworkConfig, node_id: str, popen: subprocess.Popen[bytes]) -> int:
    """Wait until the new supervisor has started the node; its pid (even if it died at once)."""
    files = node_files(config, node_id)
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = _load_json(files.state) or {}
        if state.get("supervisor_pid") == popen.pid and state.get("last_pid"):
            return int(state["last_pid"])
        if popen.poll() is not None:
            raise ConfigError(
                f"the supervisor of {node_id} exited with status {popen.returncode}; see {files.log}"
            )
        time.sleep(0.02)
    raise ConfigError(f"the supervisor of {node_id} did not start it within {SPAWN_TIMEOUT_S:g} s")


def spawn_node(
    config: NetworkConfig, node_id: str, extra_env: dict[str, str] | None = None
) -> NodeProcess:
    """Start a node under a new supervisor, lifting any hold; the node's pid, once it started."""
    popen = _launch(config, node_id, extra_env)
    return NodeProcess(node_id, _first_start(config, node_id, popen))


def _hold(config: NetworkConfig, node_id: str) -> None:
    path = node_files(config, node_id).hold
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def signal_node(config: NetworkConfig, node_id: str, sig: signal.Signals) -> bool:
    """Send `sig` to the node process; a terminating signal is a requested stop (held down)."""
    pid = node_pid(config, node_id)
    if pid is None:
        return False
    if sig in TERMINATING:
        _hold(config, node_id)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    return True


def _wait_gone(pid: int, timeout_s: float) -> None:
    """Until `pid` is gone (reaped if it is our child), SIGKILL after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while broker.process_exists(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_node(
    config: NetworkConfig, node_id: str, timeout_s: float = 10.0, kill: bool = False
) -> bool:
    """Stop a node on request, and its supervisor, so nothing restarts it until `spawn_node`:
    SIGTERM the node (SIGKILL with `kill`: no goodbye), SIGKILL after `timeout_s`. Returns whether
    a node or a supervisor was running."""
    files = node_files(config, node_id)
    supervisor = supervisor_pid(config, node_id)
    pid = node_pid(config, node_id)
    if supervisor is None and pid is None:
        _unlink_if(files.pid)  # stale, naming processes long gone
        _unlink_if(files.supervisor_pid)
        return False
    _hold(config, node_id)  # before any signal: the supervisor must see it when the node exits
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        _wait_gone(pid, timeout_s)
    if supervisor is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGTERM)
        _wait_gone(supervisor, timeout_s)
        _unlink_if(files.supervisor_pid, supervisor)
    late = node_pid(config, node_id)  # started by the supervisor just before it saw the hold
    if late is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(late, signal.SIGKILL)
        _wait_gone(late, 0.0)
    _unlink_if(files.pid)
    return True


def start_brokers(config: NetworkConfig) -> list[broker.BrokerProcess]:
    """Configure and start every broker of the network (one, or one per organisation, bridged);
    if one cannot start, stop those already started."""
    local_tls.ensure_local_certificates(config)
    started: list[broker.BrokerProcess] = []
    try:
        for each in config.brokers:
            started.append(broker.start_configured(config, each.id))
    except BaseException:
        for process in started:
            broker.stop_broker(process)
        raise
    return started


def start_network(config: NetworkConfig) -> list[NodeProcess]:
    """Keys if missing, the brokers' configuration, the brokers, then every node under its
    supervisor (restart counts start again from zero)."""
    ensure_keys(config)
    start_brokers(config)
    for node_id in config.node_ids:
        if node_pid(config, node_id) is None and supervisor_pid(config, node_id) is None:
            _unlink_if(node_files(config, node_id).state)
    launched = [(node_id, _launch(config, node_id, None)) for node_id in config.node_ids]
    return [NodeProcess(n, _first_start(config, n, popen)) for n, popen in launched]


def stop_network(config: NetworkConfig) -> list[str]:
    """Stop every node and supervisor (SIGTERM to all nodes at once, then wait), then the broker."""
    running = [
        n
        for n in config.node_ids
        if node_pid(config, n) is not None or supervisor_pid(config, n) is not None
    ]
    for node_id in running:
        signal_node(config, node_id, signal.SIGTERM)
    for node_id in running:
        stop_node(config, node_id)
    for each in config.brokers:
        broker.stop_running_broker(config, each.id)
    return running


if __name__ == "__main__":
    sys.exit(main())
