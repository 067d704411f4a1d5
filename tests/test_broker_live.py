"""Logins and ACL enforced by a real mosquitto running the generated configuration."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from consortium.node.broker import (
    BrokerTls,
    running_broker_pid,
    start_broker,
    stop_running_broker,
    write_broker_config,
)
from consortium.transport import topics
from consortium.transport.credentials import (
    OPERATOR_USERNAME,
    BrokerError,
    client_username,
    node_username,
)
from consortium.transport.mqtt import BrokerRefusedError, MqttTransport
from tests.brokers import (
    CHAIN_ID,
    LiveBroker,
    connected,
    free_port,
    network_config,
    next_message,
    running_broker,
)

pytestmark = pytest.mark.live

# Tests that only start and stop processes are synchronous: every blocking call there has its own
# timeout (ready_timeout_s, timeout_s), which asyncio.timeout could not interrupt anyway.

# How long to keep watching after the marker arrived, in case a denied message came late; mosquitto
# handles one connection's packets in order, so this is only a margin.
DENIED_GRACE_S = 0.15


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """One broker for the module: these tests only connect, publish and watch."""
    with running_broker(tmp_path_factory.mktemp("broker")) as live:
        yield live


async def test_anonymous_login_is_refused(broker: LiveBroker) -> None:
    async with asyncio.timeout(5):
        with pytest.raises(aiomqtt.MqttCodeError) as refused:
            async with aiomqtt.Client("127.0.0.1", broker.files.endpoint.port, timeout=2):
                pass
    assert int(getattr(refused.value.rc, "value", refused.value.rc)) in (5, 0x87)


@pytest.mark.parametrize("username", [node_username("bank-a"), "node-intruder"])
async def test_a_wrong_password_or_unknown_login_is_refused_without_retrying(
    broker: LiveBroker, username: str
) -> None:
    settings = broker.node_settings("bank-a", (topics.chain_filter(CHAIN_ID),))
    wrong = dataclasses.replace(settings, username=username, password="not-it")
    async with asyncio.timeout(5):
        async with MqttTransport(wrong) as transport:
            with pytest.raises(BrokerRefusedError, match="refused the login"):
                await transport.wait_connected(3)
            with pytest.raises(BrokerRefusedError):
                await anext(aiter(transport))
            await asyncio.sleep(0.2)  # several reconnect delays: a retry would count a failure
            assert transport.counters.connect_failures == 0
            assert not transport.connected


def _chain(suffix: str) -> str:
    return f"c/{CHAIN_ID}/{suffix}"


# (login, topic, delivered); the operator watches the whole chain.
PUBLISH_CASES = [
    (node_username("bank-a"), _chain("pbft/bank-a"), True),
    (node_username("bank-a"), _chain("pbft/bank-a/to/core"), True),
    (node_username("bank-a"), _chain("commit/bank-a"), True),
    (node_username("bank-a"), _chain("status/bank-a"), True),
    (node_username("bank-a"), _chain("pbft/bank-b"), False),
    (node_username("bank-a"), _chain("pbft/bank-b/to/core"), False),
    (node_username("bank-a"), _chain("commit/bank-b"), False),
    (node_username("bank-a"), _chain("status/bank-b"), False),
    (node_username("bank-a"), _chain("req/bank-a"), False),
    (node_username("bank-a"), _chain("control/bank-b"), False),
    (client_username("supplier-a"), _chain("req/supplier-a"), True),
    (client_username("supplier-a"), _chain("req/supplier-b"), False),
    (client_username("supplier-a"), _chain("pbft/bank-a"), False),
    (client_username("supplier-a"), _chain("commit/bank-a"), False),
    (client_username("supplier-a"), _chain("control/bank-a"), False),
    (OPERATOR_USERNAME, _chain("control/core"), True),
    (OPERATOR_USERNAME, _chain("pbft/core"), False),
]
OWN_TOPIC = {
    node_username("bank-a"): _chain("pbft/bank-a"),
    client_username("supplier-a"): _chain("req/supplier-a"),
    OPERATOR_USERNAME: _chain("control/bank-a"),
}


@pytest.mark.parametrize(("username", "topic", "delivered"), PUBLISH_CASES)
async def test_each_login_may_publish_only_on_its_own_topics(
    broker: LiveBroker, username: str, topic: str, delivered: bool
) -> None:
    async with asyncio.timeout(8):
        watcher = MqttTransport(
            broker.settings(OPERATOR_USERNAME, (topics.chain_filter(CHAIN_ID),))
        )
        publisher = MqttTransport(broker.settings(username))
        async with watcher, publisher:
            await connected(watcher, publisher)
            publisher.publish(topic, b"probe")
            publisher.publish(OWN_TOPIC[username], b"marker")
            first = await next_message(watcher)
            if delivered:
                assert (first.topic, first.payload) == (topic, b"probe")
                first = await next_message(watcher)
            assert (first.topic, first.payload) == (OWN_TOPIC[username], b"marker")
            await asyncio.sleep(DENIED_GRACE_S)
            assert watcher.counters.received == (2 if delivered else 1)


async def test_clients_read_commits_and_status_but_not_consensus_or_requests(
    broker: LiveBroker,
) -> None:
    async with asyncio.timeout(8):
        client = MqttTransport(
            broker.client_settings("supplier-b", (topics.chain_filter(CHAIN_ID),))
        )
        node = MqttTransport(broker.node_settings("bank-a"))
        other_client = MqttTransport(broker.client_settings("supplier-a"))
        async with client, node, other_client:
            await connected(client, node, other_client)
            other_client.publish(topics.request_topic(CHAIN_ID, "supplier-a"), b"someone's tx")
            node.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"vote")
            node.publish(topics.pbft_direct_topic(CHAIN_ID, "bank-a", "core"), b"state")
            node.publish(topics.commit_topic(CHAIN_ID, "bank-a"), b"receipts")
            node.publish(topics.status_topic(CHAIN_ID, "bank-a"), b"status")
            seen = [await next_message(client), await next_message(client)]
            assert [(m.topic, m.payload) for m in seen] == [
                (topics.commit_topic(CHAIN_ID, "bank-a"), b"receipts"),
                (topics.status_topic(CHAIN_ID, "bank-a"), b"status"),
            ]
            await asyncio.sleep(DENIED_GRACE_S)
            assert client.counters.received == 2


def test_starting_a_second_broker_on_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with running_broker(tmp_path) as live:
        with pytest.raises(BrokerError, match="already running"):
            start_broker(live.files, ready_timeout_s=2)
        live.files.pid_path.unlink()
        with pytest.raises(BrokerError, match="already in use"):
            start_broker(live.files, ready_timeout_s=2)
        assert live.process.is_alive()


def test_down_stops_the_broker_that_up_started_through_its_pid_file(tmp_path: Path) -> None:
    with running_broker(tmp_path) as live:
        assert running_broker_pid(live.config) == live.process.pid
        assert stop_running_broker(live.config, timeout_s=3)
        assert live.process.popen.wait(3) is not None
        assert not live.files.pid_path.exists()
        assert running_broker_pid(live.config) is None
        assert not stop_running_broker(live.config)


def test_a_broker_that_cannot_start_reports_its_log_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    config = network_config(tmp_path, free_port(), tls=True)
    not_a_certificate = tmp_path / "broker.crt"
    not_a_certificate.write_text("not a certificate\n")
    files = write_broker_config(config, tls=BrokerTls(not_a_certificate, not_a_certificate))
    try:
        with pytest.raises(BrokerError, match=r"(?s)exited.*Unable to load server certificate"):
            start_broker(files, ready_timeout_s=5)
    finally:
        stop_running_broker(config, timeout_s=2)
    assert running_broker_pid(config) is None
    assert not files.pid_path.exists()
