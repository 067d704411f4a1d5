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
from consortium.node import broker, local_tls
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
    assert blocks[OPERATOR_USERNAME] == [
        f"topic write {chain}/control/+",
        f"topic read {chain}/#",
        "topic read $SYS/broker/connection/+/state",  # bridges' states, for `status`
    ]
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


def _per_node(tmp_path: Path):
    from consortium.config import parse_config
    from tests.brokers import _NODE_ROLES

    raw = {
        "chain_id": CHAIN_ID,
        "brokers": "per_node",
        "broker": "mqtt://127.0.0.1:28830",
        "nodes": [{"id": n, "role": _NODE_ROLES[n]} for n in NODE_IDS],
        "members": [{"id": m, "role": "supplier"} for m in MEMBER_IDS],
    }
    config = parse_config(raw, tmp_path / "nodes.yaml")
    local_tls.ensure_local_certificates(config)
    return config


def _write_per_node(config, broker_id: str):
    tls = broker.configured_tls(config, broker_id)
    return write_broker_config(config, broker_id=broker_id, tls=tls, load_clients=1)


def test_an_organisations_broker_admits_its_own_node_only_and_one_bridge_from_each_other(
    tmp_path: Path,
) -> None:
    config = _per_node(tmp_path)
    files = _write_per_node(config, "core")
    assert files.directory == config.run_dir / "brokers" / "core"
    blocks = _acl_blocks(files.acl_path.read_text())
    chain = f"c/{CHAIN_ID}"
    assert [name for name in blocks if name.startswith("node-")] == [node_username("core")]
    assert client_username("supplier-a") in blocks and OPERATOR_USERNAME in blocks
    assert blocks["bridge-bank-a-to-core"] == [
        f"topic write {chain}/pbft/bank-a/#",
        f"topic write {chain}/commit/bank-a/#",
        f"topic write {chain}/status/bank-a",
        f"topic write {chain}/via/bank-a/req/+",
        f"topic write {chain}/via/bank-a/ask/+",
        f"topic write {chain}/via/bank-a/control/+",
    ]
    assert sorted(n for n in blocks if n.startswith("bridge-")) == [
        f"bridge-{other}-to-core" for other in sorted(set(NODE_IDS) - {"core"})
    ]


def test_an_organisations_broker_bridges_out_only_what_entered_there(tmp_path: Path) -> None:
    config = _per_node(tmp_path)
    for each in config.brokers:
        _write_per_node(config, each.id)
    passwords = codec.decode(broker.broker_files(config, "core").credentials_path.read_bytes())[
        "users"
    ]
    text = broker.broker_files(config, "core").config_path.read_text()
    bridges = text.split("\nconnection ")[1:]
    assert [b.splitlines()[0] for b in bridges] == [
        f"bridge-core-to-{other}" for other in NODE_IDS if other != "core"
    ]
    chain = f"c/{CHAIN_ID}/"
    to_bank_a = bridges[0].splitlines()
    assert "address 127.0.0.1:28830" in to_bank_a
    assert f"remote_password {passwords['bridge-core-to-bank-a']}" in to_bank_a
    assert f"bridge_cafile {(config.run_dir / 'tls' / 'ca.crt').resolve()}" in to_bank_a
    assert "bridge_insecure false" in to_bank_a
    assert [line for line in to_bank_a if line.startswith("topic ")] == [
        f"topic pbft/core/# out 0 {chain} {chain}",
        f"topic commit/core/# out 0 {chain} {chain}",
        f"topic status/core out 0 {chain} {chain}",
        f"topic req/+ out 0 {chain} {chain}via/core/",
        f"topic ask/+ out 0 {chain} {chain}via/core/",
        f"topic control/+ out 1 {chain} {chain}via/core/",
    ]
    # One password per bridge: the bridge from core to bank-a and the one back differ.
    assert passwords["bridge-core-to-bank-a"] != passwords["bridge-bank-a-to-core"]
