"""A broker per organisation, bridged over TLS: real mosquittos, real bridges, real certificates.

What the topology must give: every message reaches every broker exactly once (no loop, no
duplicate), a bridge can speak only for its own organisation, a node can log in only at its own
broker, and a client that loses its broker moves on to another one.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from consortium.config import NetworkConfig, parse_config
from consortium.node import broker as mqtt_broker
from consortium.node.supervisor import start_brokers
from consortium.transport import credentials, topics
from consortium.transport.mqtt import BrokerRefusedError, IncomingMessage, MqttTransport
from consortium.transport.url import parse_broker_url
from tests.brokers import _NODE_ROLES, CHAIN_ID, MEMBER_IDS, NODE_IDS, free_port

pytestmark = pytest.mark.live


def per_node_config(directory: Path) -> NetworkConfig:
    raw = {
        "chain_id": CHAIN_ID,
        "brokers": "per_node",
        "nodes": [
            {"id": n, "role": _NODE_ROLES[n], "broker": f"mqtts://127.0.0.1:{free_port()}"}
            for n in NODE_IDS
        ],
        "members": [{"id": member_id, "role": "supplier"} for member_id in MEMBER_IDS],
    }
    return parse_config(raw, directory / "nodes.yaml")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetworkConfig]:
    """One mesh for the module; a test that kills a broker starts it again before it ends."""
    config = per_node_config(tmp_path_factory.mktemp("mesh"))
    start_brokers(config)
    try:
        yield config
    finally:
        for each in config.brokers:
            mqtt_broker.stop_running_broker(config, each.id)


def fast(settings, **options):
    return dataclasses.replace(
        settings,
        connect_timeout_s=2.0,
        reconnect_initial_delay_s=0.05,
        reconnect_max_delay_s=0.3,
        **options,
    )


def transport_for(
    config: NetworkConfig,
    username: str,
    url: str,
    subscriptions: tuple[str, ...] = (),
    sink: list[IncomingMessage] | None = None,
    fallback_urls: tuple[str, ...] = (),
) -> MqttTransport:
    login = credentials.broker_login(config, username, url)
    login = dataclasses.replace(login, url=url, fallback_urls=fallback_urls)
    settings = fast(credentials.mqtt_settings(login, subscriptions))
    return MqttTransport(settings, on_message=None if sink is None else sink.append)


async def bridges_up(config: NetworkConfig, timeout_s: float = 15.0) -> None:
    """Until every broker reports every bridge connected."""
    from consortium.client.watch import probe_brokers

    async with asyncio.timeout(timeout_s):
        while True:
            probed = await probe_brokers(config)
            wanted = len(config.brokers) - 1
            if all(alive and sum(b.values()) == wanted for alive, b in probed.values()):
                return
            await asyncio.sleep(0.2)


async def test_every_message_reaches_every_node_once_from_wherever_it_entered(
    mesh: NetworkConfig,
) -> None:
    config = mesh
    await bridges_up(config)
    received: dict[str, list[IncomingMessage]] = {n: [] for n in config.node_ids}
    nodes = {
        n: transport_for(
            config,
            credentials.node_username(n),
            config.broker_of(n).url,
            topics.node_subscriptions(CHAIN_ID, n),
            received[n],
        )
        for n in config.node_ids
    }
    # A client at core's broker and one at bank-b's; bank-a speaks on its own broker.
    supplier = transport_for(
        config, credentials.client_username("supplier-a"), config.broker_of("core").url
    )
    other = transport_for(
        config, credentials.client_username("supplier-b"), config.broker_of("bank-b").url
    )
    everyone = [*nodes.values(), supplier, other]
    async with asyncio.timeout(20):
        for transport in everyone:
            await transport.start()
        for transport in everyone:
            await transport.wait_connected(5)
        await asyncio.sleep(0.3)  # let every subscription settle
        supplier.publish(topics.request_topic(CHAIN_ID, "supplier-a"), b"tx-1", qos=1)
        other.publish(topics.ask_topic(CHAIN_ID, "supplier-b"), b"ask-1", qos=1)
        nodes["bank-a"].publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"prepare", qos=1)
        nodes["bank-a"].publish(
            topics.pbft_direct_topic(CHAIN_ID, "bank-a", "regulator"), b"state", qos=1
        )
        await asyncio.sleep(1.5)  # long enough for a loop to show itself many times over
        for transport in everyone:
            await transport.close()
    for node_id, messages in received.items():
        payloads = collections.Counter(
            (topics.parse_topic(CHAIN_ID, m.topic).kind, m.payload) for m in messages
        )
        expected = {
            (topics.TopicKind.REQUEST, b"tx-1"): 1,
            (topics.TopicKind.ASK, b"ask-1"): 1,
            (topics.TopicKind.PBFT, b"prepare"): 1,
        }
        if node_id == "regulator":
            expected[topics.TopicKind.PBFT, b"state"] = 1
        assert payloads == expected, node_id
    # What entered elsewhere arrives under via/<where it entered>/, with the client's own name.
    at_bank_a = {m.payload: m.topic for m in received["bank-a"]}
    assert at_bank_a[b"tx-1"] == f"c/{CHAIN_ID}/via/core/req/supplier-a"
    assert at_bank_a[b"ask-1"] == f"c/{CHAIN_ID}/via/bank-b/ask/supplier-b"
    assert at_bank_a[b"prepare"] == f"c/{CHAIN_ID}/pbft/bank-a"
    assert topics.parse_topic(CHAIN_ID, at_bank_a[b"tx-1"]) == topics.ParsedTopic(
        topics.TopicKind.REQUEST, "supplier-a"
    )


async def test_a_bridge_speaks_only_for_its_own_organisation(mesh: NetworkConfig) -> None:
    """With bank-a's bridge login at core's broker, someone who stole it (or a dishonest
    bank-a) cannot publish bank-b's consensus topics or a client's request as if it came from
    core's own clients: the broker drops it. What bank-a's bridge may carry still arrives."""
    config = mesh
    seen: list[IncomingMessage] = []
    watcher = transport_for(
        config,
        credentials.OPERATOR_USERNAME,
        config.broker_of("core").url,
        (topics.chain_filter(CHAIN_ID),),
        seen,
    )
    forger = transport_for(
        config, credentials.bridge_username("bank-a", "core"), config.broker_of("core").url
    )
    async with asyncio.timeout(15):
        for transport in (watcher, forger):
            await transport.start()
            await transport.wait_connected(5)
        await asyncio.sleep(0.2)
        forger.publish(topics.pbft_topic(CHAIN_ID, "bank-b"), b"forged", qos=1)
        forger.publish(topics.request_topic(CHAIN_ID, "supplier-a"), b"forged", qos=1)
        forger.publish(f"c/{CHAIN_ID}/via/bank-b/req/supplier-a", b"forged", qos=1)
        forger.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"allowed", qos=1)
        forger.publish(f"c/{CHAIN_ID}/via/bank-a/req/supplier-a", b"allowed", qos=1)
        await asyncio.sleep(0.8)
        for transport in (watcher, forger):
            await transport.close()
    assert sorted((m.topic, m.payload) for m in seen) == [
        (f"c/{CHAIN_ID}/pbft/bank-a", b"allowed"),
        (f"c/{CHAIN_ID}/via/bank-a/req/supplier-a", b"allowed"),
    ]


async def test_a_node_can_log_in_only_at_its_own_organisations_broker(
    mesh: NetworkConfig,
) -> None:
    config = mesh
    elsewhere = transport_for(
        config, credentials.node_username("bank-a"), config.broker_of("core").url
    )
    async with elsewhere:
        with pytest.raises(BrokerRefusedError):
            await elsewhere.wait_connected(5)
    home = transport_for(
        config, credentials.node_username("bank-a"), config.broker_of("bank-a").url
    )
    async with home:
        await home.wait_connected(5)


async def test_brokers_speak_only_tls_checked_against_the_consortium_ca(
    mesh: NetworkConfig,
) -> None:
    endpoint = parse_broker_url(mesh.broker_of("core").url)
    ca = credentials.ca_file(mesh)
    assert ca is not None and Path(ca).is_file()
    context = ssl.create_default_context(cafile=ca)
    _, writer = await asyncio.open_connection(
        endpoint.host, endpoint.port, ssl=context, server_hostname=endpoint.host
    )
    writer.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=ssl.create_default_context()
        )


async def test_a_client_moves_to_another_broker_when_its_own_dies(mesh: NetworkConfig) -> None:
    config = mesh
    await bridges_up(config)
    seen: list[IncomingMessage] = []
    node = transport_for(
        config,
        credentials.node_username("regulator"),
        config.broker_of("regulator").url,
        topics.node_subscriptions(CHAIN_ID, "regulator"),
        seen,
    )
    urls = credentials.client_broker_urls(config, "bank-a")
    assert urls[0] == config.broker_of("bank-a").url and len(urls) == len(NODE_IDS)
    client = transport_for(
        config, credentials.client_username("supplier-a"), urls[0], fallback_urls=urls[1:]
    )
    async with asyncio.timeout(30):
        for transport in (node, client):
            await transport.start()
            await transport.wait_connected(5)
        assert client.endpoint.url == urls[0]
        assert mqtt_broker.stop_running_broker(config, "bank-a", kill=True)
        try:
            while not client.connected or client.endpoint.url == urls[0]:
                await asyncio.sleep(0.05)
            assert client.endpoint.url == urls[1]
            await asyncio.sleep(0.3)
            client.publish(topics.request_topic(CHAIN_ID, "supplier-a"), b"after failover", qos=1)
            while not any(m.payload == b"after failover" for m in seen):
                await asyncio.sleep(0.05)
            for transport in (node, client):
                await transport.close()
        finally:
            mqtt_broker.restart_broker(config, "bank-a")
    assert client.counters.reconnects == 1
    assert [m.payload for m in seen].count(b"after failover") == 1
