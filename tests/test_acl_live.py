"""Broker logins on a running network: what the ACL refuses never reaches a node, and what a
compromised login may publish is refused by the nodes and clients themselves (signatures).

The broker-level ACL matrix is in test_broker_live.py; these cases need live nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from consortium.chaos.network import fresh_network
from consortium.client.client import ChainClient, ClientLogin
from consortium.client.watch import collect_statuses
from consortium.crypto import KeyPair
from consortium.devnet import Devnet
from consortium.ledger.block import Receipt
from consortium.ledger.tx import Transaction
from consortium.node.faults import heal_message, partition_message
from consortium.notices import CommitNotice, encode_status
from consortium.pbft.messages import Prepare, sign
from consortium.transport import credentials, topics
from consortium.transport.mqtt import MqttSettings, MqttTransport
from tests.network_helpers import wait_for

pytestmark = [pytest.mark.live, pytest.mark.slow]

NOT_DELIVERED_GRACE_S = 1.5


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with fresh_network(tmp_path_factory.mktemp("acl") / "net", load_signers=2) as running:
        wait_for(lambda: len(statuses(running)) == len(running.config.node_ids), 30)
        yield running


def statuses(net: Devnet) -> dict[str, dict[str, Any]]:
    return asyncio.run(collect_statuses(net.config, wait_s=1.0))


def rejected(net: Devnet) -> dict[str, dict[str, int]]:
    return {n: dict(s.get("rejected_by_reason", {})) for n, s in statuses(net).items()}


def transport(net: Devnet, username: str, *subscriptions: str) -> MqttTransport:
    login = credentials.broker_login(net.config, username)
    return MqttTransport(MqttSettings(login.url, login.username, login.password, subscriptions))


async def _publish(net: Devnet, username: str, topic: str, payload: bytes) -> None:
    async with transport(net, username) as bus:
        await bus.wait_connected(timeout_s=10)
        bus.publish(topic, payload, qos=1)
        await bus.flush(5.0)


def test_a_forged_vote_is_stopped_by_the_acl_and_if_delivered_by_the_signature(
    net: Devnet,
) -> None:
    chain = net.config.chain_id
    # bank-a's key signs a vote that claims to come from bank-b.
    forged = sign(net.node_pairs["bank-a"], chain, "bank-b", Prepare(0, 1, b"\1" * 32)).encode()
    before = rejected(net)

    async def client_tries() -> list[bytes]:
        seen: list[bytes] = []
        login = credentials.broker_login(net.config, credentials.OPERATOR_USERNAME)
        settings = MqttSettings(
            login.url, login.username, login.password, (topics.pbft_topic(chain, "bank-b"),)
        )
        watch = MqttTransport(settings, on_message=lambda m: seen.append(m.payload))
        async with watch:
            await watch.wait_connected(timeout_s=10)
            await _publish(
                net,
                credentials.client_username("load-5"),
                topics.pbft_topic(chain, "bank-b"),
                forged,
            )
            await asyncio.sleep(NOT_DELIVERED_GRACE_S)
        return seen

    assert forged not in asyncio.run(client_tries())
    after_client = rejected(net)
    for node_id in net.config.node_ids:
        grown = {
            r: c - before[node_id].get(r, 0)
            for r, c in after_client[node_id].items()
            if c != before[node_id].get(r, 0)
        }
        assert "bad_signature" not in grown and "own_message" not in grown, (node_id, grown)

    # Delivered through the compromised node's own topic: refused by every honest node.
    asyncio.run(
        _publish(
            net, credentials.node_username("bank-a"), topics.pbft_topic(chain, "bank-a"), forged
        )
    )

    def counted() -> bool:
        now = rejected(net)
        grew = {
            n: {r for r, c in now[n].items() if c > after_client[n].get(r, 0)}
            for n in net.config.node_ids
        }
        others = [n for n in net.config.node_ids if n not in ("bank-a", "bank-b")]
        return all("bad_signature" in grew[n] for n in others) and "own_message" in grew["bank-b"]

    wait_for(counted, 10)
    assert all(s["view"] == 0 for s in statuses(net).values())


def test_a_client_login_cannot_inject_faults_but_the_operator_can(net: Devnet) -> None:
    chain = net.config.chain_id
    command = partition_message([["core"], [n for n in net.config.node_ids if n != "core"]])
    asyncio.run(
        _publish(
            net, credentials.client_username("load-5"), topics.control_topic(chain, "core"), command
        )
    )
    asyncio.run(asyncio.sleep(NOT_DELIVERED_GRACE_S))
    assert statuses(net)["core"]["faults"] == {}
    asyncio.run(
        _publish(net, credentials.OPERATOR_USERNAME, topics.control_topic(chain, "core"), command)
    )
    try:
        wait_for(lambda: "partition" in statuses(net)["core"]["faults"], 10)
    finally:
        asyncio.run(
            _publish(
                net,
                credentials.OPERATOR_USERNAME,
                topics.control_topic(chain, "core"),
                heal_message(),
            )
        )
    wait_for(lambda: statuses(net)["core"]["faults"] == {}, 10)


def _fake_notice(node: str, tx_id: bytes) -> CommitNotice:
    receipt = Receipt(tx_id, True, "", {"receivable": "rcv-forged"})
    return CommitNotice(node, 10**6, b"\7" * 32, 1, (receipt,))


async def _outcome_under_forged_notices(net: Devnet, publishers: dict[str, KeyPair]) -> bool:
    """Whether a client accepts an outcome for a transaction no node ever admitted, when each
    `publishers` node publishes on its own commit topic a notice signed with the given key."""
    chain = net.config.chain_id
    ghost = Transaction(chain, "mallory", 1, "receivable.draft", {"amount": 1}).sign(
        KeyPair.generate()
    )
    async with ChainClient(net.config, net.keys, ClientLogin.local(net.config, "load-4")) as client:
        waiting = asyncio.create_task(client.submit_one(ghost, timeout_s=4.0))
        await asyncio.sleep(0.5)
        for node, key in publishers.items():
            claimed = "core" if key is not net.node_pairs[node] else node
            notice = _fake_notice(claimed, ghost.tx_id).signed(chain, key)
            await _publish(
                net, credentials.node_username(node), topics.commit_topic(chain, node), notice
            )
        try:
            await waiting
        except TimeoutError:
            return False
        return True


def test_forged_commit_notices_never_make_an_outcome(net: Devnet) -> None:
    pairs = net.node_pairs
    # One honest-looking notice (bank-a's own) and one claiming core but signed by bank-a.
    impostor = {"bank-a": pairs["bank-a"], "bank-b": pairs["bank-a"]}
    assert not asyncio.run(_outcome_under_forged_notices(net, impostor))
    # f + 1 = 2 distinct node keys agreeing is what a client trusts: the threshold, not less.
    colluding = {"bank-a": pairs["bank-a"], "bank-b": pairs["bank-b"]}
    assert asyncio.run(_outcome_under_forged_notices(net, colluding))


def test_a_node_cannot_speak_for_another_in_the_status_heartbeats(net: Devnet) -> None:
    chain = net.config.chain_id
    fake = encode_status({**statuses(net)["core"], "id": "core", "height": 10**9})

    async def spoof() -> list[bytes]:
        seen: list[bytes] = []
        login = credentials.broker_login(net.config, credentials.OPERATOR_USERNAME)
        settings = MqttSettings(
            login.url, login.username, login.password, (topics.status_topic(chain, "bank-a"),)
        )
        async with MqttTransport(settings, on_message=lambda m: seen.append(m.payload)) as watch:
            await watch.wait_connected(timeout_s=10)
            await _publish(
                net, credentials.node_username("bank-a"), topics.status_topic(chain, "bank-a"), fake
            )
            await asyncio.sleep(0.5)
        return seen

    assert fake in asyncio.run(spoof())  # delivered: bank-a may publish there
    seen = statuses(net)
    assert seen["core"]["height"] < 10**9
    assert seen["bank-a"]["id"] == "bank-a"
