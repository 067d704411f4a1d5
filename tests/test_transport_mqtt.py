"""`MqttTransport` against a real mosquitto: delivery, reconnect, size limits, bounded queues."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from consortium.errors import LocalError
from consortium.transport import topics
from consortium.transport.mqtt import IncomingMessage, MqttSettings, MqttTransport, TransportError
from tests.brokers import CHAIN_ID, LiveBroker, connected, free_port, next_message, running_broker

pytestmark = pytest.mark.live


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LiveBroker]:
    with running_broker(tmp_path) as live:
        yield live


def _node(broker: LiveBroker, node_id: str, **options: object) -> MqttTransport:
    return MqttTransport(
        broker.node_settings(node_id, topics.node_subscriptions(CHAIN_ID, node_id), **options)
    )


async def test_a_broadcast_reaches_the_other_nodes_and_a_direct_message_only_its_destination(
    broker: LiveBroker,
) -> None:
    async with asyncio.timeout(8):
        bank_a, bank_b, core = (
            _node(broker, "bank-a"),
            _node(broker, "bank-b"),
            _node(broker, "core"),
        )
        async with bank_a, bank_b, core:
            await connected(bank_a, bank_b, core)
            assert bank_a.publish(topics.pbft_direct_topic(CHAIN_ID, "bank-a", "core"), b"for core")
            assert bank_a.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"for all", qos=1)
            core_got = [await next_message(core), await next_message(core)]
            assert [(m.topic, m.payload) for m in core_got] == [
                (topics.pbft_direct_topic(CHAIN_ID, "bank-a", "core"), b"for core"),
                (topics.pbft_topic(CHAIN_ID, "bank-a"), b"for all"),
            ]
            assert await next_message(bank_b) == IncomingMessage(
                topics.pbft_topic(CHAIN_ID, "bank-a"), b"for all"
            )
            assert await next_message(bank_a) == IncomingMessage(
                topics.pbft_topic(CHAIN_ID, "bank-a"), b"for all"
            )
            assert await bank_a.flush(2)
            assert bank_a.counters.published == 2
            assert bank_b.counters.received == 1


async def test_the_transport_reconnects_and_resubscribes_after_the_broker_is_killed_and_restarted(
    broker: LiveBroker,
) -> None:
    async with asyncio.timeout(15):
        sender = _node(broker, "bank-a")
        watching = (*topics.node_subscriptions(CHAIN_ID, "bank-b"), topics.status_filter(CHAIN_ID))
        receiver = MqttTransport(broker.node_settings("bank-b", watching))
        async with sender, receiver:
            await connected(sender, receiver)
            sender.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"before")
            assert (await next_message(receiver)).payload == b"before"

            broker.kill()
            while sender.connected or receiver.connected:
                await asyncio.sleep(0.01)
            # Queued while the broker is down; retained, so it reaches the receiver whichever of the
            # two reconnects first.
            sender.publish(topics.status_topic(CHAIN_ID, "bank-a"), b"while down", retain=True)
            await asyncio.sleep(0.4)  # a few failed attempts, so the backoff is exercised
            assert receiver.counters.connect_failures >= 1
            assert "refused" in (receiver.last_error or "").lower()
            broker.restart()

            await connected(sender, receiver, timeout_s=5)
            assert (await next_message(receiver)).payload == b"while down"
            sender.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"after")
            assert (await next_message(receiver)).payload == b"after"
            assert sender.counters.reconnects == 1
            assert receiver.counters.reconnects == 1


async def test_an_incoming_payload_over_the_limit_is_dropped_and_counted(
    broker: LiveBroker,
) -> None:
    async with asyncio.timeout(8):
        sender = _node(broker, "bank-a")
        receiver = _node(broker, "bank-b", max_payload_bytes=1024)
        async with sender, receiver:
            await connected(sender, receiver)
            topic = topics.pbft_topic(CHAIN_ID, "bank-a")
            sender.publish(topic, b"x" * 1025)
            sender.publish(topic, b"y" * 1024)
            # Same publisher, same topic: in order, so the large one was handled first.
            assert (await next_message(receiver)).payload == b"y" * 1024
            assert receiver.counters.dropped_oversize == 1
            assert receiver.counters.received == 1


async def test_an_outgoing_payload_over_the_limit_is_refused_before_the_broker(
    broker: LiveBroker,
) -> None:
    async with asyncio.timeout(5):
        sender = _node(broker, "bank-a", max_payload_bytes=100)
        async with sender:
            await connected(sender)
            assert not sender.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"z" * 101)
            assert sender.counters.rejected_oversize == 1
            assert await sender.flush(1)
            assert sender.counters.published == 0
            assert sender.connected


async def test_a_failing_callback_stops_the_transport_for_good(broker: LiveBroker) -> None:
    """A handler that raises is its owner's bug: nothing more is delivered or sent, and the
    owner learns it from `wait_failed` (the node then stops and restarts from its disk)."""
    async with asyncio.timeout(8):
        seen: list[bytes] = []

        def handle(message: IncomingMessage) -> None:
            seen.append(message.payload)
            if message.payload == b"bad":
                raise ValueError("handler bug")

        settings = broker.node_settings("bank-b", topics.node_subscriptions(CHAIN_ID, "bank-b"))
        sender = _node(broker, "bank-a")
        async with sender, MqttTransport(settings, on_message=handle) as receiver:
            await connected(sender, receiver)
            sender.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"bad")
            error = await receiver.wait_failed()
            assert "handler bug" in str(error)
            sender.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"good")
            await sender.flush(2)
            await asyncio.sleep(0.3)
            assert seen == [b"bad"]
            assert receiver.counters.handler_errors == 1
            assert receiver.publish(topics.pbft_topic(CHAIN_ID, "bank-b"), b"x") is False
            with pytest.raises(LocalError):
                aiter(receiver)


async def test_closing_ends_the_message_iterator(broker: LiveBroker) -> None:
    async with asyncio.timeout(5):
        receiver = _node(broker, "bank-b")
        await connected(receiver)
        received: list[IncomingMessage] = []

        async def read_all() -> None:
            async for message in receiver:
                received.append(message)

        reader = asyncio.create_task(read_all())
        await asyncio.sleep(0.05)
        await receiver.close()
        await reader
        assert received == []
        assert not receiver.publish(topics.pbft_topic(CHAIN_ID, "bank-b"), b"late")


async def test_publishes_while_the_broker_is_unreachable_are_bounded_and_counted() -> None:
    settings = MqttSettings(
        f"mqtt://127.0.0.1:{free_port()}",
        "node-bank-a",
        "secret",
        outbox_limit=3,
        connect_timeout_s=1,
        reconnect_initial_delay_s=0.05,
        reconnect_max_delay_s=0.1,
    )
    async with asyncio.timeout(5):
        async with MqttTransport(settings) as transport:
            for index in range(5):
                assert transport.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), bytes([index]))
            assert transport.counters.dropped_outbox_full == 2
            with pytest.raises(TransportError, match="not connected"):
                await transport.wait_connected(0.3)
            assert not await transport.flush(0.1)
            assert transport.counters.connect_failures >= 1
            assert transport.counters.published == 0


def test_publishing_on_a_wildcard_topic_is_our_bug_not_a_dropped_message() -> None:
    transport = MqttTransport(MqttSettings("mqtt://127.0.0.1:1", "node-bank-a", "secret"))
    for topic in ("c/x/pbft/+", "c/x/#", ""):
        with pytest.raises(LocalError):
            transport.publish(topic, b"payload")
    with pytest.raises(LocalError):
        transport.publish("c/x/pbft/a", b"payload", qos=3)


async def test_mqtts_delivers_with_the_ca_and_refuses_an_unknown_certificate(
    tmp_path: Path,
) -> None:
    with running_broker(tmp_path, tls=True) as broker:
        async with asyncio.timeout(10):
            sender, receiver = _node(broker, "bank-a"), _node(broker, "bank-b")
            untrusting = MqttTransport(broker.node_settings("core", ca_file=None))
            async with sender, receiver, untrusting:
                await connected(sender, receiver)
                sender.publish(topics.pbft_topic(CHAIN_ID, "bank-a"), b"over tls")
                assert (await next_message(receiver)).payload == b"over tls"
                with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
                    await untrusting.wait_connected(0.5)
