"""The generated mosquitto configuration, without starting mosquitto."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import stat
from pathlib import Path

import pytest

from consortium import codec
from consortium.errors import ConfigError
from consortium.node import broker
from consortium.node.broker import BrokerTls, write_broker_config
from consortium.transport.credentials import (
    OPERATOR_USERNAME,
    BrokerError,
    client_username,
    node_username,
    read_credentials,
)
from tests.brokers import CHAIN_ID, MEMBER_IDS, NODE_IDS, network_config


def _acl_blocks(text: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("user "):
            current = blocks.setdefault(line.removeprefix("user "), [])
        elif line and not line.startswith("#"):
            current.append(line)
    return blocks


def test_every_login_has_a_password_that_mosquittos_hash_format_verifies(tmp_path: Path) -> None:
    config = network_config(tmp_path, 18830)
    files = write_broker_config(config, load_clients=2)
    expected_users = (
        {node_username(n) for n in NODE_IDS}
        | {client_username(m) for m in (*NODE_IDS, *MEMBER_IDS, "load-0", "load-1")}
        | {OPERATOR_USERNAME}
    )
    hashes = dict(line.split(":", 1) for line in files.password_path.read_text().splitlines())
    assert set(hashes) == expected_users
    for username, entry in hashes.items():
        _, kind, iterations, salt, digest = entry.split("$")
        password = read_credentials(config.run_dir, username).password
        assert kind == "7"
        recomputed = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations)
        )
        assert base64.b64encode(recomputed).decode() == digest


def test_passwords_are_random_private_and_reused(tmp_path: Path) -> None:
    config = network_config(tmp_path, 18830)
    files = write_broker_config(config)
    first = codec.decode(files.credentials_path.read_bytes())["users"]
    assert len(set(first.values())) == len(first)
    for path in (files.credentials_path, files.password_path, files.acl_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    files.credentials_path.chmod(0o644)
    write_broker_config(config)
    assert codec.decode(files.credentials_path.read_bytes())["users"] == first
    assert stat.S_IMODE(files.credentials_path.stat().st_mode) == 0o600


def test_acl_lets_each_login_write_only_its_own_topics(tmp_path: Path) -> None:
    config = network_config(tmp_path, 18830)
    blocks = _acl_blocks(write_broker_config(config, load_clients=1).acl_path.read_text())
    chain = f"c/{CHAIN_ID}"
    assert blocks[node_username("bank-a")] == [
        f"topic write {chain}/pbft/bank-a/#",
        f"topic write {chain}/commit/bank-a/#",
        f"topic write {chain}/status/bank-a",
        f"topic read {chain}/#",
    ]
    assert blocks[client_username("supplier-a")] == [
        f"topic write {chain}/req/supplier-a",
        f"topic write {chain}/ask/supplier-a",
        f"topic read {chain}/commit/+",
        f"topic read {chain}/commit/+/to/supplier-a",
        f"topic read {chain}/status/+",
    ]
    assert blocks[client_username("load-0")][0] == f"topic write {chain}/req/load-0"
    assert blocks[OPERATOR_USERNAME] == [f"topic write {chain}/control/+", f"topic read {chain}/#"]
    assert not any(line.startswith("pattern") for lines in blocks.values() for line in lines)


def test_broker_config_refuses_anonymous_logins_and_bounds_packets(tmp_path: Path) -> None:
    config = network_config(tmp_path, 18831)
    lines = write_broker_config(config).config_path.read_text().splitlines()
    assert "allow_anonymous false" in lines
    assert "persistence false" in lines
    assert f"message_size_limit {codec.MAX_MESSAGE_BYTES}" in lines
    assert lines[-1] == "listener 18831 127.0.0.1"


def test_a_member_named_like_a_load_generator_is_refused(tmp_path: Path) -> None:
    config = network_config(tmp_path, 18830, member_ids=("load-0",))
    with pytest.raises(ConfigError, match="load-0"):
        write_broker_config(config, load_clients=1)
    write_broker_config(config, load_clients=0)


def test_tls_needs_certificates_exactly_for_mqtts(tmp_path: Path) -> None:
    plain = network_config(tmp_path, 18830)
    cert, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    cert.write_text("cert")
    key.write_text("key")
    with pytest.raises(BrokerError, match="mqtts"):
        write_broker_config(plain, tls=BrokerTls(cert, key))
    secure = dataclasses.replace(plain, broker_url="mqtts://127.0.0.1:18883")
    with pytest.raises(BrokerError, match="mqtts"):
        write_broker_config(secure)
    with pytest.raises(BrokerError, match="does not exist"):
        write_broker_config(secure, tls=BrokerTls(cert, tmp_path / "missing.key"))
    files = write_broker_config(
        secure, tls=BrokerTls(cert, key, cafile=cert, require_client_certificate=True)
    )
    lines = files.config_path.read_text().splitlines()
    assert lines[lines.index("listener 18883 127.0.0.1") :] == [
        "listener 18883 127.0.0.1",
        f"certfile {cert.resolve()}",
        f"keyfile {key.resolve()}",
        f"cafile {cert.resolve()}",
        "tls_version tlsv1.2",
        "require_certificate true",
    ]


def test_missing_mosquitto_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker.shutil, "which", lambda _name: None)
    monkeypatch.setattr(broker.os, "access", lambda _path, _mode: False)
    with pytest.raises(BrokerError, match=r"apt-get install mosquitto mosquitto-clients"):
        broker.find_mosquitto()


def test_reading_credentials_before_the_broker_was_configured_is_a_clear_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(BrokerError, match="consortium up"):
        read_credentials(tmp_path / "run", node_username("bank-a"))
