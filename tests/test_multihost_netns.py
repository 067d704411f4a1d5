"""Five hosts for real: a broker per organisation and its node in each of five Linux network
namespaces, on one bridge, over TLS, and the primary's host cut off by taking its link down.

Not the transport's emulated partition: the cut-off host's node still talks to its own broker,
but neither reaches anyone else, and the operator's clients (in the root namespace, behind the
bridge) find that broker gone and fail over to the others. The other four elect a new primary and
keep committing; after the link is back the cut-off node catches up, and the ledgers read from
disk hold every acknowledged transaction exactly once, with equal heads, each verified from
genesis.

Skipped where namespaces cannot be made (not root, no `ip`, `ip netns add` refused), except
under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consortium.chaos.checker import check_ledgers, read_ledger, store_heads
from consortium.client.watch import probe_brokers
from consortium.devnet import Devnet, make_devnet
from consortium.ledger.ledger import store_path
from consortium.ledger.verify import verify_store
from consortium.node import broker as mqtt_broker
from tests import netns_hosts
from tests.network_helpers import heads_agree, network_processes, statuses, wait_for
from tests.test_network_live import drafts, submit_from

pytestmark = [pytest.mark.live, pytest.mark.slow]

HOSTS = 5
BROKER_PORT = 8883
FIRST, DURING, LAST = 40, 40, 15
SUBMIT_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 25


def hosts_devnet(directory: Path, made: netns_hosts.Hosts) -> Devnet:
    """The devnet with `brokers: per_node` and each node's broker on its own host's address."""
    return make_devnet(
        directory,
        HOSTS,
        load_signers=8,
        brokers="per_node",
        node_fields=[{"broker": f"mqtts://{host.address}:{BROKER_PORT}"} for host in made.hosts],
    )


def require_namespaces() -> None:
    reason = netns_hosts.unavailable()
    if reason is None:
        return
    message = f"no Linux network namespaces here ({reason}): cannot run hosts as namespaces"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; under CI=true this is a failure, not a skip")
    pytest.skip(message)


def consortium_in(host: netns_hosts.Host | None, net: Devnet, *args: str) -> list[str]:
    """`consortium ARGS --config NET`, inside `host`'s namespace (None: the root namespace)."""
    command = [sys.executable, "-m", "consortium", *args, "--config", str(net.config.path)]
    return command if host is None else host.command(*command)


def run(command: list[str], timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


def all_bridged(net: Devnet) -> dict | None:
    """probe_brokers' answer if every broker is alive with all its bridges up."""
    brokers = asyncio.run(probe_brokers(net.config))
    peers = HOSTS - 1
    if all(alive and sum(b.values()) == peers for alive, b in brokers.values()):
        return brokers
    return None


def log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after `timeout_s`: the node's exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def stop_brokers(net: Devnet, broker_ids: list[str]) -> dict[str, str]:
    """`consortium broker stop --id X` from the root namespace (by pid file), for all at once:
    what each said."""
    stopping = {
        broker_id: subprocess.Popen(
            consortium_in(None, net, "broker", "stop", "--id", broker_id),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for broker_id in broker_ids
    }
    said = {}
    for broker_id, process in stopping.items():
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            out, err = "", "timed out"
        said[broker_id] = err.strip() or out.strip()
    return said


def submitted(net: Devnet, count: int, start_day: int) -> list:
    outcomes = asyncio.run(
        submit_from(net, drafts(net, count, start_day=start_day), timeout_s=SUBMIT_TIMEOUT_S)
    )
    assert len(outcomes) == count
    assert all(o.ok for o in outcomes), [o.reason for o in outcomes if not o.ok][:3]
    return outcomes


def test_primary_host_cut_off_by_its_link_then_healed(tmp_path):
    require_namespaces()
    started = time.monotonic()
    logs = tmp_path / "logs"
    logs.mkdir()
    nodes: dict[str, subprocess.Popen[bytes]] = {}
    log_paths: dict[str, Path] = {}
    broker_ids: list[str] = []
    stopped_brokers: dict[str, str] = {}
    phases: dict[str, float] = {}

    def reached(phase: str) -> None:
        phases[phase] = round(time.monotonic() - started, 1)

    with netns_hosts.hosts(HOSTS) as made:
        try:
            net = hosts_devnet(tmp_path / "net", made)
            config = net.config
            host_of = dict(zip(config.node_ids, made.hosts, strict=True))
            assert config.per_node_brokers and config.generated_tls
            for node_id, host in host_of.items():
                own = config.broker_of(node_id)
                assert own.url == f"mqtts://{host.address}:{BROKER_PORT}" and own.tls is not None

            # Every host's broker, one after the other (the first call makes the CA and the
            # certificates), each inside its host's namespace; then every node.
            for node_id, host in host_of.items():
                done = run(consortium_in(host, net, "broker", "start", "--id", node_id))
                assert done.returncode == 0, (node_id, done.stderr)
                broker_ids.append(node_id)
                conf = mqtt_broker.broker_files(config, node_id).config_path.read_text()
                assert f"listener {BROKER_PORT} {host.address}" in conf
                assert conf.count("bridge_insecure false") == HOSTS - 1  # TLS on every bridge
            reached("brokers")
            for node_id, host in host_of.items():
                log_paths[node_id] = logs / f"{node_id}.log"
                with log_paths[node_id].open("wb") as log:
                    nodes[node_id] = subprocess.Popen(
                        consortium_in(host, net, "node", "run", "--id", node_id),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )

            # From the root namespace, through the bridge: every node reports, every bridge is up.
            wait_for(lambda: len(statuses(net)) == HOSTS, 30)
            bridged = wait_for(lambda: all_bridged(net), 30)
            assert sorted(bridged) == sorted(config.node_ids)
            reached("up")

            first = submitted(net, FIRST, start_day=90)
            top_first = max(o.height for o in first)
            before = wait_for(lambda: heads_agree(net, min_height=top_first), 30)
            primary = before[config.node_ids[1]]["primary"]
            assert {s["primary"] for s in before.values()} == {primary}
            view_before = before[primary]["view"]
            reached("first batch")

            # The primary's host loses its link: its node and its broker are cut off together.
            netns_hosts.set_link(host_of[primary], up=False)
            others = [n for n in config.node_ids if n != primary]
            second = submitted(net, DURING, start_day=91)
            top_second = max(o.height for o in second)
            during = statuses(net)
            assert all(during[n]["primary"] != primary for n in others), {
                n: (during[n]["view"], during[n]["primary"]) for n in others
            }
            assert all(during[n]["view"] > view_before for n in others)
            # The cut-off broker answers nobody in the root namespace any more. (The others'
            # $SYS state of their bridges to it, as mosquitto 2.0.11 publishes it, stayed 1 for
            # 40-70 s after the cut when tried, so it is not waited for here.)
            alive, _ = asyncio.run(probe_brokers(config))[primary]
            assert not alive, "the cut-off host's broker still answers the root namespace"
            # Its node, still running, committed nothing of what the others did meanwhile.
            assert nodes[primary].poll() is None
            assert store_heads(config)[primary][0] < min(o.height for o in second) <= top_second
            reached("cut off")

            # Heal: the bridges come back, the cut-off node catches up, and all five agree.
            netns_hosts.set_link(host_of[primary], up=True)
            wait_for(lambda: all_bridged(net), 30)
            wait_for(lambda: heads_agree(net, min_height=top_second), 40)
            reached("healed")
            third = submitted(net, LAST, start_day=92)
            top_third = max(o.height for o in third)
            agreed = wait_for(lambda: heads_agree(net, min_height=top_third), 30)
            assert {s["committed_txs"] for s in agreed.values()} == {FIRST + DURING + LAST}
            reached("last batch")

            crashed = {n: p.returncode for n, p in nodes.items() if p.poll() is not None}
            assert not crashed, crashed
            exits = {node_id: stop(process) for node_id, process in nodes.items()}
            assert set(exits.values()) == {0}, exits
            reached("nodes stopped")
        except BaseException:
            for node_id, path in log_paths.items():
                print(f"--- {node_id}'s log ends:\n{log_tail(path)}")
            raise
        finally:
            for process in nodes.values():
                stop(process, timeout_s=5.0)
            if broker_ids:  # then `net` exists
                stopped_brokers.update(stop_brokers(net, broker_ids))
    reached("cleaned up")
    views = {n: (during[n]["view"], during[n]["primary"]) for n in others}
    print(f"cut off {primary}, the primary of view {view_before}; then {views}; at s: {phases}")

    # Everything the test made is gone: processes, namespaces, veths, the bridge.
    assert all(text.endswith("stopped") for text in stopped_brokers.values()), stopped_brokers
    assert netns_hosts.leftovers(made) == []
    assert network_processes(net) == []

    # The chaos checks, from the stores on disk: nothing acknowledged lost or duplicated, the same
    # head everywhere, and every ledger verified from genesis.
    acknowledged = {o.tx_id: o for o in first + second + third}
    assert len(acknowledged) == FIRST + DURING + LAST
    report = check_ledgers(config, net.keys, acknowledged)
    assert report.ok, report.problems
    for node_id in config.node_ids:
        ledger = read_ledger(config, node_id)
        assert all(ledger.tx_counts[tx_id] == 1 for tx_id in acknowledged), node_id
        verified = verify_store(config, net.keys, store_path(config, node_id))
        assert verified.ok, (node_id, verified.errors)
        assert verified.txs_checked == len(acknowledged)
        assert verified.height == top_third
