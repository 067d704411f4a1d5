"""Clients always learn outcomes, on the live network: a transaction that committed while its
client heard nothing (not connected, then a broker restart) is answered when the client
retransmits it, and `consortium tx status` tells any transaction's outcome, or that it is unknown."""

from __future__ import annotations

import asyncio
import json

import pytest

from consortium import codec
from consortium.ledger.ledger import store_path
from consortium.ledger.store import Store
from consortium.node import broker
from consortium.transport import credentials, topics
from consortium.transport.mqtt import MqttSettings, MqttTransport
from tests.network_helpers import client, live_network, run_cli, statuses, wait_for, wallets

pytestmark = [pytest.mark.live, pytest.mark.slow]


async def _publish_and_leave(net, client_id: str, payload: bytes) -> None:
    """Publish a request batch with a login that never listens for notices."""
    login = credentials.broker_login(net.config, credentials.client_username(client_id))
    settings = MqttSettings(login.url, login.username, login.password, ())
    async with MqttTransport(settings) as bus:
        await bus.wait_connected(timeout_s=15)
        bus.publish(topics.request_topic(net.config.chain_id, client_id), payload)
        await bus.flush(5)


def _committed_everywhere(net) -> bool:
    current = statuses(net)
    return len(current) == 5 and all(s["committed_txs"] >= 1 for s in current.values())


def test_a_client_that_missed_every_notice_learns_its_outcome_after_a_broker_restart(tmp_path):
    with live_network(tmp_path, load_signers=2) as net:
        stx = wallets(net)["load-0000"].sign(
            "receivable.draft", {"debtor": "core", "amount": 4321, "due_day": 90}
        )
        wait_for(lambda: len(statuses(net)) == 5, 30)  # every node is on the bus
        asyncio.run(_publish_and_leave(net, "load-1", codec.encode_flat([stx.raw])))
        wait_for(lambda: _committed_everywhere(net), 30)  # committed; nobody heard the notices
        assert broker.stop_running_broker(net.config)
        broker.start_broker(broker.broker_files(net.config))
        wait_for(lambda: _committed_everywhere(net), 30)  # the nodes reconnected

        async def retransmit():
            async with client(net, 0) as c:
                return await c.submit_one(stx, timeout_s=20)

        outcome = asyncio.run(retransmit())
        assert outcome.ok and outcome.tx_id == stx.tx_id
        stored = Store(store_path(net.config, "bank-a"), readonly=True)
        try:
            assert stored.tx_locations(stx.tx_id)[0][0] == outcome.height
            assert stored.block(outcome.height).hash == outcome.block_hash
        finally:
            stored.close()


def test_tx_status_reports_committed_and_unknown_transactions(tmp_path):
    with live_network(tmp_path, load_signers=1) as net:
        stx = wallets(net)["load-0000"].sign(
            "receivable.draft", {"debtor": "core", "amount": 99, "due_day": 90}
        )

        async def submit():
            async with client(net, 0) as c:
                return await c.submit_one(stx, timeout_s=30)

        outcome = asyncio.run(submit())
        done = run_cli(net, "tx", "status", stx.tx_id.hex(), "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["known"] is True and report["tx"] == stx.tx_id.hex()
        assert (report["height"], report["block_hash"]) == (
            outcome.height,
            outcome.block_hash.hex(),
        )
        assert report["ok"] is True and report["reason"] == outcome.reason

        missing = "ab" * 32
        done = run_cli(net, "tx", "status", missing, "--json", "--timeout", "5")
        assert done.returncode == 2, done.stderr
        report = json.loads(done.stdout)
        assert report["known"] is False and report["height"] is None
        assert len(report["answered_unknown"]) >= 4  # n - f nodes said so, at their heights

        done = run_cli(net, "tx", "status", "not-hex")
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert "is not a transaction id" in done.stderr
