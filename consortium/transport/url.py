"""The broker address from `nodes.yaml` (`mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from consortium.errors import ConfigError

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
_URL_PATTERN = re.compile(r"^(mqtts?)://([^/:\s]+)(?::(\d{1,5}))?$")


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerEndpoint:
    """Split a broker URL; the port defaults to MQTT's registered 1883 (8883 with TLS)."""
    match = _URL_PATTERN.match(url)
    if not match:
        raise ConfigError(f"broker: {url!r} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    scheme, host, port_text = match.groups()
    tls = scheme == "mqtts"
    port = int(port_text) if port_text else (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
    if not 0 < port < 65536:
        raise ConfigError(f"broker: port {port} is out of range")
    return BrokerEndpoint(host, port, tls)
