"""The network as users run it: real mosquitto, one OS process per node, real signatures."""

from __future__ import annotations

import asyncio
import signal

import pytest

from consortium.ledger.ledger import store_path
from consortium.ledger.verify import verify_store
from consortium.node import broker, supervisor
from tests.network_helpers import client, heads_agree, live_network, statuses, wait_for, wallets

pytestmark = [pytest.mark.live, pytest.mark.slow]


def drafts(net, count: int, start_day: int = 90):
    """`count` receivable drafts spread over the load signers."""
    w = wallets(net)
    signers = sorted(m for m in w if m.startswith("load-"))
    return [
        w[signers[i % len(signers)]].sign(
            "receivable.draft", {"debtor": "core", "amount": 1000 + i, "due_day": start_day}
        )
        for i in range(count)
    ]


async def submit_from(net, txs, clients: int = 4, timeout_s: float = 90.0):
    """Submit `txs` from several client connections at once; outcomes in order."""
    chunks = [txs[i::clients] for i in range(clients)]

    async def one(index: int, chunk):
        async with client(net, index) as c:
            return await c.submit(chunk, timeout_s=timeout_s)

    results = await asyncio.gather(*(one(i, chunk) for i, chunk in enumerate(chunks)))
    return [outcome for chunk in results for outcome in chunk]


def test_thousand_transactions_from_several_clients_commit_everywhere(tmp_path):
    with live_network(tmp_path) as net:
        txs = drafts(net, 1000)
        outcomes = asyncio.run(submit_from(net, txs))
        assert len(outcomes) == 1000
        assert all(o.ok for o in outcomes), [o.reason for o in outcomes if not o.ok][:3]
        assert len({o.tx_id for o in outcomes}) == 1000
        top = max(o.height for o in outcomes)
        agreed = wait_for(lambda: heads_agree(net, min_height=top), 30)
        assert sum(1 for s in agreed.values() if s["committed_txs"] >= 1000) == 5
    for node_id in net.config.node_ids:
        report = verify_store(net.config, net.keys, store_path(net.config, node_id))
        assert report.ok, (node_id, report.errors)
        assert report.txs_checked == 1000


def test_killed_primary_is_replaced_and_catches_up_after_restart(tmp_path):
    with live_network(tmp_path) as net:
        first = asyncio.run(submit_from(net, drafts(net, 50), clients=1))
        assert all(o.ok for o in first)
        primary = statuses(net)["bank-a"]["primary"]
        assert supervisor.stop_node(net.config, primary, kill=True)
        others = [n for n in net.config.node_ids if n != primary]
        second = asyncio.run(submit_from(net, drafts(net, 50, start_day=91), clients=1))
        assert all(o.ok for o in second)
        after = statuses(net)
        assert {after[n]["view"] for n in others} != {0}
        assert all(after[n]["primary"] != primary for n in others)
        for node in others:  # each backup's log tells of the view change and the new primary
            log = supervisor.log_path(net.config, node).read_text()
            assert "view change to view" in log and f"primary {after[node]['primary']}" in log
        supervisor.spawn_node(net.config, primary)
        top = max(o.height for o in second)
        wait_for(lambda: heads_agree(net, min_height=top), 60)
        third = asyncio.run(submit_from(net, drafts(net, 20, start_day=92), clients=1))
        assert all(o.ok for o in third)


def test_broker_restart_loses_no_committed_transaction(tmp_path):
    with live_network(tmp_path) as net:
        first = asyncio.run(submit_from(net, drafts(net, 100), clients=2))
        top = max(o.height for o in first)
        wait_for(lambda: heads_agree(net, min_height=top), 30)
        assert broker.stop_running_broker(net.config)
        broker.start_broker(broker.broker_files(net.config))
        second = asyncio.run(submit_from(net, drafts(net, 100, start_day=91), clients=2))
        assert all(o.ok for o in second)
        top = max(o.height for o in second)
        agreed = wait_for(lambda: heads_agree(net, min_height=top), 60)
        assert all(s["committed_txs"] == 200 for s in agreed.values())


def test_node_stopped_cleanly_resumes_from_its_store(tmp_path):
    with live_network(tmp_path) as net:
        asyncio.run(submit_from(net, drafts(net, 30), clients=1))
        assert supervisor.signal_node(net.config, "regulator", signal.SIGTERM)
        supervisor.stop_node(net.config, "regulator")
        asyncio.run(submit_from(net, drafts(net, 30, start_day=91), clients=1))
        supervisor.spawn_node(net.config, "regulator")
        agreed = wait_for(lambda: heads_agree(net, min_height=2), 60)
        assert agreed["regulator"]["committed_txs"] == 60
