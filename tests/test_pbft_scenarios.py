"""Scripted PBFT scenarios with recorded expected output (etcd-raft's datadriven style).

Each file in tests/testdata/pbft holds blocks of `command` lines, a `----` line, and the output
the cluster must print. Run with PBFT_REWRITE=1 to record new output after a deliberate change,
then review the diff like code.

After `trace on` every input a command causes prints a header (`n01 start`, `n00 submit alice 1`,
`n00->n01 PrePrepare(...)`, a lost message marked `(lost: ...)`, `n01 timer progress @1000`) and
then, indented, the actions the replica returned, each kind in its order: `persist <key>` /
`delete <key>`, `send <to|*> <Message(...)>`, `timer set <name> @<ms>` / `timer cancel <name>`,
`commit <height> digest=<hash prefix>`, and `dropped <reason>` for input it refused. `trace off`
stops it. `deliver-only <Kind>` and `drop-from <node>` split a protocol round for a scenario.
"""

from __future__ import annotations

import os
from pathlib import Path

from consortium.sim.cluster import Cluster

DATA = Path(__file__).parent / "testdata" / "pbft"


def _run_command(cluster: Cluster, line: str) -> list[str]:
    """The command's own output, after the trace of the inputs it caused (when tracing)."""
    if line.split() == ["trace", "on"]:
        cluster.trace = []
        return []
    if line.split() == ["trace", "off"]:
        cluster.trace = None
        return []
    out = _run_one(cluster, line)
    if cluster.trace is None:
        return out
    traced, cluster.trace = cluster.trace, []
    if line.split() == ["deliver", "verbose"]:
        return traced  # each delivery's header is the line `deliver verbose` prints
    return traced + out


def _run_one(cluster: Cluster, line: str) -> list[str]:
    words = line.split()
    command, args = words[0], words[1:]
    if command == "cluster":
        raise AssertionError("'cluster' must be the first command of a file")
    if command == "submit":
        node, client, nonce = args
        cluster.submit(node, client, int(nonce))
        return []
    if command == "offer":
        node, client, nonce = args
        cluster.offer(node, client, int(nonce))
        return []
    if command == "deliver":
        if args == ["verbose"]:
            out = []
            while cluster.queue:
                envelope = cluster.deliver(0)
                assert envelope is not None
                out.append(envelope.describe(cluster.cache))
            return out
        return [f"delivered {cluster.deliver_all()} messages"]
    if command == "deliver-only":
        # Deliver messages of one kind (those queued and those they cause) in queue order, and
        # hold every other message back: a way to split one round of the protocol from the next.
        count = 0
        while True:
            kinds = [type(cluster.cache.decode(e.data).body).__name__ for e in cluster.queue]
            if args[0] not in kinds:
                return [f"delivered {count} messages"]
            cluster.deliver(kinds.index(args[0]))
            count += 1
    if command in ("drop-to", "drop-from"):
        before = len(cluster.queue)
        if command == "drop-to":
            cluster.queue = [e for e in cluster.queue if e.dst != args[0]]
        else:
            cluster.queue = [e for e in cluster.queue if e.src != args[0]]
        return [f"dropped {before - len(cluster.queue)} messages"]
    if command == "advance":
        cluster.advance(int(args[0]))
        return []
    if command == "settle":
        cluster.settle()
        return []
    if command == "crash":
        cluster.crash(args[0])
        return []
    if command == "restart":
        cluster.restart(args[0])
        return []
    if command == "isolate":
        cluster.isolate(args[0])
        return []
    if command == "heal":
        cluster.heal()
        return []
    if command == "status":
        return cluster.status()
    if command == "log":
        node = cluster.nodes[args[0]]
        return [
            f"height={h} digest={d.hex()[:8]} requests={len(ids)}" for h, d, ids in node.committed
        ]
    if command == "counters":
        replica = cluster.replica(args[0])
        return [f"{k}={v}" for k, v in sorted(replica.counters.items())] or ["none"]
    if command == "safety":
        return cluster.safety_problems() or ["ok"]
    raise AssertionError(f"unknown command {command!r}")


def run_script(name: str) -> None:
    path = DATA / name
    blocks = path.read_text().split("\n\n")
    cluster: Cluster | None = None
    rewritten = []
    mismatches = []
    for block in blocks:
        if not block.strip():
            continue
        lines = block.strip("\n").split("\n")
        separator = lines.index("----")
        commands, expected = lines[:separator], lines[separator + 1 :]
        actual: list[str] = []
        for line in commands:
            if line.startswith("#") or not line.strip():
                continue
            if line.startswith("cluster"):
                cluster = Cluster(int(line.split()[1]))
                continue
            assert cluster is not None, "a script starts with 'cluster N'"
            actual += _run_command(cluster, line)
        if actual != expected:
            mismatches.append((commands, expected, actual))
        rewritten.append("\n".join([*commands, "----", *actual]))
    if os.environ.get("PBFT_REWRITE"):
        path.write_text("\n\n".join(rewritten) + "\n")
        return
    assert not mismatches, "\n".join(
        f"after {c[-1]!r}:\n  expected {e}\n  actual   {a}" for c, e, a in mismatches
    )


def test_normal_case() -> None:
    """Section 4.2 (normal-case operation): PRE-PREPARE, PREPARE, COMMIT over a batch."""
    run_script("normal_case.txt")


def test_view_change() -> None:
    """Section 4.4 (view changes): the primary crashes, backups time out and elect the next."""
    run_script("view_change.txt")


def test_backups_relay_what_the_primary_missed() -> None:
    """Section 4.1 (the client): a request the primary missed reaches it through the backups,
    without a view change."""
    run_script("relay.txt")


def test_backups_let_go_of_what_the_primary_passes_over_while_it_makes_progress() -> None:
    """A request the primary refused stays out of its blocks; backups holding it shed it after a
    view-change timeout of progress, without relaying it or suspecting the primary."""
    run_script("shed.txt")


def test_checkpoint_and_garbage_collection() -> None:
    """Section 4.3 (garbage collection): stable checkpoints move the low watermark."""
    run_script("checkpoint_gc.txt")


def test_state_transfer() -> None:
    """Sections 4.3 and 5.3.2 (state transfer): an isolated replica catches up from peers."""
    run_script("state_transfer.txt")


def test_restart_keeps_the_log() -> None:
    """Section 4.4 (safety across a crash): a restarted replica resumes from its disk."""
    run_script("restart.txt")


def test_two_backups_crash_during_view_change() -> None:
    """Section 4.4 with crashes: the block only the crashed primary committed survives a view
    change whose quorum includes two replicas that crashed mid-change, because each restarts
    with the prepared certificates it persisted and quotes them in its VIEW-CHANGE again."""
    run_script("two_backups_crash_during_view_change.txt")
