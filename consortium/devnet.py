"""Throw-away networks for benchmarks, tests and the simulator: a `nodes.yaml` with N nodes and
as many extra signing members as a workload needs, written to a directory with fresh keys."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from consortium.config import NetworkConfig, load_config
from consortium.crypto import KeyPair
from consortium.errors import ConfigError
from consortium.keys import KeyDirectory, init_keys, load_directory, load_keypair

_NODE_ROLES = [
    ("bank-a", "bank"),
    ("bank-b", "bank"),
    ("core", "core_enterprise"),
    ("agency", "collection_agency"),
    ("regulator", "regulator"),
]
_BASE_MEMBERS = [
    ("supplier-a", "supplier"),
    ("supplier-b", "supplier"),
    ("supplier-c", "supplier"),
    ("agency-2", "collection_agency"),
    ("agency-3", "collection_agency"),
    ("warehouse-1", "warehouse"),
    ("arranger", "arranger"),
    ("rating-1", "rating_agency"),
    ("rating-2", "rating_agency"),
    ("investor-1", "investor"),
    ("investor-2", "investor"),
    ("investor-3", "investor"),
]
LOAD_SUPPLIER_BALANCE = 10**9


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports nothing listens on right now (for a
    broker per organisation: the n-th node's broker listens on the first port + n)."""
    for _ in range(200):
        base = free_port()
        if base + count > 65536:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise ConfigError(f"found no {count} consecutive free ports on 127.0.0.1")


def local_brokers(nodes: int, broker_per_node: bool = False) -> dict[str, str]:
    """nodes.yaml fields for a throw-away network's brokers on free loopback ports: one shared
    broker, or one per organisation (bridged, TLS with a local CA)."""
    if not broker_per_node:
        return {"broker": f"mqtt://127.0.0.1:{free_port()}"}
    return {"broker": f"mqtt://127.0.0.1:{consecutive_free_ports(nodes)}", "brokers": "per_node"}


def load_signer_id(index: int) -> str:
    return f"load-{index:04d}"


def _extra_bank(index: int) -> str:
    """bank-c ... bank-z, then bank-26, bank-27 ...: valid ids for networks of any size."""
    return f"bank-{chr(ord('c') + index)}" if index < 24 else f"bank-{index + 2}"


def network_dict(nodes: int = 5, load_signers: int = 0, chain_id: str = "consortium-dev") -> dict:
    """The default network's shape with `nodes` nodes (4 drops bank-b; more adds banks)."""
    if nodes < 4:
        raise ValueError("PBFT needs at least 4 nodes")
    roles = list(_NODE_ROLES) if nodes >= 5 else [r for r in _NODE_ROLES if r[0] != "bank-b"]
    roles += [(_extra_bank(i), "bank") for i in range(nodes - len(roles))]
    members = [*_BASE_MEMBERS, *((load_signer_id(i), "supplier") for i in range(load_signers))]
    balances = {m: 10**12 for m, role in roles if role == "bank"}
    balances |= {"core": 5 * 10**7, "supplier-a": 10**6, "supplier-b": 10**6, "supplier-c": 10**6}
    balances |= {"arranger": 10**6, "rating-1": 10**6, "rating-2": 10**6}
    balances |= {f"investor-{i}": 5 * 10**6 for i in (1, 2, 3)}
    balances |= {load_signer_id(i): LOAD_SUPPLIER_BALANCE for i in range(load_signers)}
    return {
        "chain_id": chain_id,
        "broker": "mqtt://127.0.0.1:18830",
        # Throw-away networks often run side by side (tests, benchmarks): each node takes a
        # free metrics port and names it in its heartbeat, instead of colliding on fixed ones.
        "metrics_port": 0,
        "nodes": [{"id": i, "role": r} for i, r in roles],
        "members": [{"id": i, "role": r} for i, r in members],
        "genesis": {"balances": balances, "credit_lines": {"core": 10**15}},
    }


@dataclass(frozen=True, slots=True)
class Devnet:
    config: NetworkConfig
    keys: KeyDirectory
    member_pairs: dict[str, KeyPair]
    node_pairs: dict[str, KeyPair]


def make_devnet(
    directory: Path,
    nodes: int = 5,
    load_signers: int = 0,
    node_fields: Sequence[dict[str, object]] = (),
    **overrides: object,
) -> Devnet:
    """Write `nodes.yaml` and keys into `directory` and load them back as a user would.
    `node_fields[i]` adds fields to the i-th node's entry (its own broker, say)."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = network_dict(nodes, load_signers) | overrides
    raw["nodes"] = [
        {**node, **extra}
        for node, extra in itertools.zip_longest(raw["nodes"], node_fields, fillvalue={})
    ]
    path = directory / "nodes.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(path)
    init_keys(config, force=True)
    return Devnet(
        config,
        load_directory(config),
        {m.id: load_keypair(config, m.id, "member") for m in config.members},
        {n.id: load_keypair(config, n.id, "node") for n in config.nodes},
    )
