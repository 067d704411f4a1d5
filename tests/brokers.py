"""A real mosquitto for tests: configured by `consortium.node.broker` on a free loopback port.

`running_broker` always stops the broker it started, whatever the test did. There is no skip when
mosquitto is missing: `start_broker` fails with the install hint (scripts/test installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consortium.config import NetworkConfig, parse_config
from consortium.node.broker import (
    BrokerFiles,
    BrokerProcess,
    BrokerTls,
    start_broker,
    stop_broker,
    write_broker_config,
)
from consortium.transport.credentials import (
    Credentials,
    client_username,
    node_username,
    read_credentials,
)
from consortium.transport.mqtt import IncomingMessage, MqttSettings, MqttTransport

CHAIN_ID = "test-chain"
NODE_IDS = ("bank-a", "bank-b", "core", "regulator")
MEMBER_IDS = ("supplier-a", "supplier-b")
_NODE_ROLES = {
    "bank-a": "bank",
    "bank-b": "bank",
    "core": "core_enterprise",
    "regulator": "regulator",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def network_config(
    directory: Path, port: int, member_ids: tuple[str, ...] = MEMBER_IDS, *, tls: bool = False
) -> NetworkConfig:
    raw = {
        "chain_id": CHAIN_ID,
        "broker": f"{'mqtts' if tls else 'mqtt'}://127.0.0.1:{port}",
        "nodes": [{"id": node_id, "role": _NODE_ROLES[node_id]} for node_id in NODE_IDS],
        "members": [{"id": member_id, "role": "supplier"} for member_id in member_ids],
    }
    return parse_config(raw, directory / "nodes.yaml")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    broker: BrokerTls


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it (EC keys: fast to make)."""
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests need openssl: apt-get install openssl"
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, request, cert = (
        directory / name for name in ("ca.key", "ca.crt", "broker.key", "broker.csr", "broker.crt")
    )
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    extensions = directory / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    commands = [
        [
            "req",
            "-x509",
            *ec_key,
            "-keyout",
            ca_key,
            "-out",
            ca,
            "-days",
            "1",
            "-subj",
            "/CN=test CA",
        ],
        ["req", *ec_key, "-keyout", key, "-out", request, "-subj", "/CN=127.0.0.1"],
        [
            *("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"),
            *("-out", cert, "-days", "1", "-extfile", extensions),
        ],
    ]
    for command in commands:
        subprocess.run([openssl, *map(str, command)], check=True, capture_output=True, timeout=20)
    return TlsFiles(ca, BrokerTls(cert, key))


@dataclass(slots=True)
class LiveBroker:
    config: NetworkConfig
    files: BrokerFiles
    process: BrokerProcess
    tls: TlsFiles | None = None

    @property
    def url(self) -> str:
        return self.config.broker_url

    def credentials(self, username: str) -> Credentials:
        return read_credentials(self.config.run_dir, username)

    def settings(
        self, username: str, subscriptions: tuple[str, ...] = (), **options: Any
    ) -> MqttSettings:
        """Transport settings for a login, with fast reconnects so tests stay short."""
        login = self.credentials(username)
        fast = MqttSettings(
            self.url,
            login.username,
            login.password,
            subscriptions,
            connect_timeout_s=2.0,
            reconnect_initial_delay_s=0.05,
            reconnect_max_delay_s=0.3,
            ca_file=self.tls.ca_file if self.tls else None,
        )
        return dataclasses.replace(fast, **options)

    def node_settings(
        self, node_id: str, subscriptions: tuple[str, ...] = (), **options: Any
    ) -> MqttSettings:
        return self.settings(node_username(node_id), subscriptions, **options)

    def client_settings(
        self, client_id: str, subscriptions: tuple[str, ...] = (), **options: Any
    ) -> MqttSettings:
        return self.settings(client_username(client_id), subscriptions, **options)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye to the connected clients."""
        self.process.popen.kill()
        self.process.popen.wait(5)
        stop_broker(self.process)

    def restart(self) -> None:
        """Start again on the same port with the configuration rewritten (logins kept)."""
        stop_broker(self.process)
        self.files = write_broker_config(self.config, tls=self.tls.broker if self.tls else None)
        self.process = start_broker(self.files)


@contextlib.contextmanager
def running_broker(directory: Path, *, tls: bool = False) -> Iterator[LiveBroker]:
    """A broker for `directory`, on `mqtts://` with a fresh CA when `tls`; always stopped."""
    tls_files = make_tls_files(directory / "tls") if tls else None
    config = network_config(directory, free_port(), tls=tls)
    files = write_broker_config(config, tls=tls_files.broker if tls_files else None)
    process = start_broker(files)
    broker = LiveBroker(config, files, process, tls_files)
    try:
        yield broker
    finally:
        stop_broker(broker.process)


async def next_message(transport: MqttTransport, timeout_s: float = 3.0) -> IncomingMessage:
    """The next message a transport delivers, or a test failure after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        return await anext(aiter(transport))


async def connected(*transports: MqttTransport, timeout_s: float = 3.0) -> None:
    for transport in transports:
        await transport.start()
    for transport in transports:
        await transport.wait_connected(timeout_s)
