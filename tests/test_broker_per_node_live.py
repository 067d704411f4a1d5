"""The network with a broker per organisation, as users start it: `up --broker-per-node`, five
bridged mosquittos over TLS, five node processes, and one organisation's broker killed.

A broker down is one faulty node (its node is cut off; clients move to another broker): with f of
them down the network keeps committing, and nothing acknowledged is lost or duplicated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from consortium.config import load_config, recorded_topology
from consortium.devnet import Devnet, consecutive_free_ports, make_devnet
from consortium.ledger.ledger import store_path
from consortium.ledger.verify import verify_store
from consortium.node import supervisor
from tests.network_helpers import heads_agree, network_processes, run_cli, statuses, wait_for
from tests.test_network_live import drafts, submit_from

pytestmark = [pytest.mark.live, pytest.mark.slow]


def broker_rows(net: Devnet) -> dict[str, dict]:
    done = run_cli(net, "status", "--json")
    assert done.returncode == 0, done.stderr
    return {row["id"]: row for row in json.loads(done.stdout)["brokers"]}


def all_bridged(net: Devnet) -> dict[str, dict] | None:
    rows = broker_rows(net)
    others = len(net.config.node_ids) - 1
    if all(r["alive"] and sum(r["bridges"].values()) == others for r in rows.values()):
        return rows
    return None


def test_one_organisations_broker_down_is_one_faulty_node(tmp_path):
    base = consecutive_free_ports(5)
    net = make_devnet(tmp_path / "net", load_signers=8, broker=f"mqtt://127.0.0.1:{base}")
    try:
        up = run_cli(net, "up", "--detach", "--broker-per-node")
        assert up.returncode == 0, up.stderr
        net = dataclasses.replace(net, config=load_config(net.config.path))
        assert net.config.per_node_brokers and recorded_topology(net.config) == "per_node"
        rows = wait_for(lambda: all_bridged(net), 30)
        assert sorted(rows) == sorted(net.config.node_ids)
        for node_id, row in rows.items():
            assert row["url"] == net.config.broker_of(node_id).url
            assert row["url"].startswith("mqtts://127.0.0.1:")
            assert row["pid"] is not None
        wait_for(lambda: len(statuses(net)) == 5, 30)

        first = asyncio.run(submit_from(net, drafts(net, 100)))
        assert all(o.ok for o in first), [o.reason for o in first if not o.ok][:3]

        # The primary's organisation loses its broker: its node is cut off, the others elect
        # a new primary, and clients whose broker it was move to another one.
        primary = statuses(net)["bank-b"]["primary"]
        killed = run_cli(net, "fault", "kill", primary, "--broker")
        assert killed.returncode == 0, killed.stderr
        assert broker_rows(net)[primary]["alive"] is False
        second = asyncio.run(submit_from(net, drafts(net, 100, start_day=91)))
        assert all(o.ok for o in second), [o.reason for o in second if not o.ok][:3]
        others = [n for n in net.config.node_ids if n != primary]
        after = statuses(net)
        assert all(after[n]["primary"] != primary for n in others)

        restarted = run_cli(net, "fault", "restart", primary, "--broker")
        assert restarted.returncode == 0, restarted.stderr
        wait_for(lambda: all_bridged(net), 30)
        top = max(o.height for o in second)
        agreed = wait_for(lambda: heads_agree(net, min_height=top), 60)
        assert {s["committed_txs"] for s in agreed.values()} == {200}
        acknowledged = {o.tx_id for o in first + second}
        assert len(acknowledged) == 200
    finally:
        down = run_cli(net, "down")
        stopped_config = load_config(net.config.path)
        for node_id in stopped_config.node_ids:
            supervisor.stop_node(stopped_config, node_id, kill=True)
    assert down.returncode == 0, down.stderr
    assert "5 brokers" in down.stderr
    assert network_processes(net) == []
    assert recorded_topology(net.config) is None
    for node_id in net.config.node_ids:
        report = verify_store(net.config, net.keys, store_path(net.config, node_id))
        assert report.ok, (node_id, report.errors)
        assert report.txs_checked == 200
