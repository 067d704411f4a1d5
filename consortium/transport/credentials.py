"""How nodes, clients and the operator log in to the broker: login names, the stored passwords,
the CA to check an `mqtts://` broker against, and the login a process uses from this machine.

Nodes use `node-<id>`, member clients `client-<id>`, load generators `client-load-<n>` (topic
name `load-<n>`), the operator `operator`, and with a broker per organisation the bridge from
A's broker to B's `bridge-<A>-to-<B>` (a login on B's broker only). The passwords are kept in `<run_dir>/broker/
credentials` (msgpack map `users: {username: password}`, mode 0600), written by the broker's
configuration (`consortium.node.broker`) and read here by everything that connects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consortium import codec
from consortium.config import NetworkConfig
from consortium.errors import CodecError
from consortium.transport.mqtt import MqttSettings

OPERATOR_USERNAME = "operator"


class BrokerError(Exception):
    """The broker cannot be configured, started or stopped; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


def node_username(node_id: str) -> str:
    return f"node-{node_id}"


def client_username(client_id: str) -> str:
    return f"client-{client_id}"


def bridge_username(source_broker: str, dest_broker: str) -> str:
    """The login `source_broker`'s bridge uses on `dest_broker`: one password per bridge."""
    return f"bridge-{source_broker}-to-{dest_broker}"


def load_client_id(index: int) -> str:
    """The topic name of load generator `index`; its login is `client_username` of it."""
    return f"load-{index}"


def load_client_index(client_id: str) -> int | None:
    """The index of load generator `client_id`, None for anyone else."""
    prefix = load_client_id(0)[:-1]
    number = client_id.removeprefix(prefix)
    return int(number) if client_id.startswith(prefix) and number.isdigit() else None


def broker_dir(run_dir: Path) -> Path:
    return run_dir / "broker"


def load_passwords(path: Path) -> dict[str, str]:
    """The stored passwords; an unreadable file is an error, not a reason to make new ones."""
    if not path.exists():
        return {}
    try:
        value = codec.decode(path.read_bytes())
    except (OSError, CodecError) as exc:
        raise BrokerError(f"cannot read broker credentials {path}: {exc}") from None
    users = value.get("users") if isinstance(value, dict) else None
    if not isinstance(users, dict) or not all(isinstance(p, str) for p in users.values()):
        raise BrokerError(
            f"broker credentials {path} are malformed; delete the file to make new ones"
        )
    return dict(users)


def read_credentials(run_dir: Path, username: str) -> Credentials:
    """The login `username` (e.g. `node_username("bank-a")`) from a configured broker directory."""
    path = broker_dir(run_dir) / "credentials"
    if not path.exists():
        raise BrokerError(
            f"no broker credentials at {path}: start the network with `consortium up`"
        )
    passwords = load_passwords(path)
    if username not in passwords:
        raise BrokerError(f"no broker login {username!r} in {path}")
    return Credentials(username, passwords[username])


def ca_file(config: NetworkConfig) -> str | None:
    """The CA that nodes and clients check the brokers against (CONSORTIUM_BROKER_CA wins)."""
    from_env = os.environ.get("CONSORTIUM_BROKER_CA")
    if from_env:
        return from_env
    for broker in config.brokers:
        if broker.tls is not None and broker.tls.cafile is not None:
            return str(broker.tls.cafile)
    return None


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    """How a node or client reaches a broker: URL, credentials, and the CA for `mqtts://`.
    A client also knows `fallback_urls`, tried in turn while `url` cannot be reached."""

    url: str
    username: str
    password: str
    ca_file: str | None = None
    fallback_urls: tuple[str, ...] = ()


def client_broker_urls(config: NetworkConfig, home: str | int | None = None) -> tuple[str, ...]:
    """Every broker a client may use, its own first: the broker of the organisation `home` (a
    member id) if it runs one, else the one at index `home` (load generators spread this way)."""
    urls = [broker.url for broker in config.brokers]
    start = 0
    if isinstance(home, int):
        start = home % len(urls)
    elif home is not None:
        ids = [broker.id for broker in config.brokers]
        start = ids.index(home) if home in ids else 0
    return tuple(urls[start:] + urls[:start])


def broker_login(
    config: NetworkConfig,
    username: str,
    url: str | None = None,
    *,
    node_id: str | None = None,
    home: str | int | None = None,
) -> BrokerLogin:
    """A login from this machine's `run_dir` (the password may come from the environment
    variable CONSORTIUM_BROKER_PASSWORD instead, on a host that has no copy of the broker's files).

    A node (`node_id`) uses its organisation's broker only: without it, it is cut off, which PBFT
    counts as one faulty node. Anyone else gets every broker, `home`'s first (`client_broker_urls`).
    `url` overrides the first choice."""
    password = os.environ.get("CONSORTIUM_BROKER_PASSWORD")
    if password is None:
        password = read_credentials(config.run_dir, username).password
    if node_id is not None:
        return BrokerLogin(
            url or config.broker_of(node_id).url, username, password, ca_file(config)
        )
    urls = client_broker_urls(config, home)
    if url is not None:
        urls = (url, *(u for u in urls if u != url))
    return BrokerLogin(urls[0], username, password, ca_file(config), urls[1:])


def mqtt_settings(
    login: BrokerLogin, subscriptions: tuple[str, ...] = (), **options: Any
) -> MqttSettings:
    """The transport settings for `login`: its broker (and the ones to fall back on), its
    credentials and CA, listening to `subscriptions`; `options` are `MqttSettings` fields."""
    return MqttSettings(
        login.url,
        login.username,
        login.password,
        subscriptions,
        ca_file=Path(login.ca_file) if login.ca_file else None,
        fallback_urls=login.fallback_urls,
        **options,
    )
