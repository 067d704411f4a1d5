"""The operator's control channel: fault-injection messages to nodes over the bus."""

from __future__ import annotations

from consortium.config import NetworkConfig
from consortium.transport import credentials, topics
from consortium.transport.mqtt import MqttTransport


async def send_control(config: NetworkConfig, messages: dict[str, bytes]) -> None:
    """Publish one control message per node (QoS 1) and wait until the broker has them."""
    login = credentials.broker_login(config, credentials.OPERATOR_USERNAME)
    async with MqttTransport(credentials.mqtt_settings(login)) as transport:
        await transport.wait_connected(timeout_s=10)
        for node_id, payload in messages.items():
            transport.publish(topics.control_topic(config.chain_id, node_id), payload, qos=1)
        await transport.flush(5.0)
