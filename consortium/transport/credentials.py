"""How nodes, clients and the operator log in to the broker: login names, the stored passwords,
the CA to check an `mqtts://` broker against, and the login a process uses from this machine.

Nodes use `node-<id>`, member clients `client-<id>`, load generators `client-load-<n>` (topic
name `load-<n>`) and the operator `operator`. The passwords are kept in `<run_dir>/broker/
credentials` (msgpack map `users: {username: password}`, mode 0600), written by the broker's
configuration (`consortium.node.broker`) and read here by everything that connects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from consortium import codec
from consortium.config import NetworkConfig
from consortium.errors import CodecError

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


def load_client_id(index: int) -> str:
    """The topic name of load generator `index`; its login is `client_username` of it."""
    return f"load-{index}"


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
    """The CA that nodes and clients check the broker against (CONSORTIUM_BROKER_CA wins)."""
    from_env = os.environ.get("CONSORTIUM_BROKER_CA")
    if from_env:
        return from_env
    tls = config.broker_tls
    return str(tls.cafile) if tls is not None and tls.cafile is not None else None


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    """How a node or client reaches the broker: URL, credentials, and the CA for `mqtts://`."""

    url: str
    username: str
    password: str
    ca_file: str | None = None


def broker_login(config: NetworkConfig, username: str, url: str | None = None) -> BrokerLogin:
    """A login from this machine's `run_dir` (the password may come from the environment
    variable CONSORTIUM_BROKER_PASSWORD instead, on a host that has no copy of the broker's files)."""
    password = os.environ.get("CONSORTIUM_BROKER_PASSWORD")
    if password is None:
        password = read_credentials(config.run_dir, username).password
    return BrokerLogin(url or config.broker_url, username, password, ca_file(config))
