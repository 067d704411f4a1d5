"""`nodes.yaml`: the network's organisations, nodes, consensus settings and genesis.

The loader checks the whole file and raises `ConfigError` naming the first bad field, so a typo never
starts a network that later disagrees with itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from consortium.errors import ConfigError
from consortium.roles import ROLES

MIN_NODES = 4
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
NODE_ROLES = frozenset({"bank", "core_enterprise", "collection_agency", "regulator"})


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """An organisation: a key, a role, and whether it runs a node."""

    id: str
    role: str
    runs_node: bool


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    """PBFT settings (`consensus:` in nodes.yaml).

    `max_inflight_blocks`: blocks proposed but not yet executed. Two is the default: on a
    CPU-bound network (several nodes sharing a machine) requests held back while blocks are in
    flight make the next block bigger, and bigger blocks cost less per transaction; measured
    with `consortium bench consensus` at 2,000 tx/s on 2 cores, two in flight committed more than
    three at a fraction of the latency, and one in flight, about as fast, let the backlog grow
    into a view change in three runs of ten. Raise it when the network's round trip, not the CPU,
    bounds throughput."""

    batch_max_txs: int = 2000
    batch_max_bytes: int = 1024 * 1024
    batch_delay_ms: int = 20
    checkpoint_interval: int = 8
    watermark_window: int = 32
    max_inflight_blocks: int = 2
    view_change_timeout_ms: int = 2000
    view_change_timeout_max_ms: int = 30000


@dataclass(frozen=True, slots=True)
class GenesisConfig:
    """Opening balances (issued at genesis, so money is conserved from block 1) and credit lines."""

    balances: dict[str, int] = field(default_factory=dict)
    credit_lines: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BrokerTlsConfig:
    """PEM files for an `mqtts://` broker: the broker's certificate and key, and the CA that
    nodes and clients check it against."""

    certfile: Path | None
    keyfile: Path | None
    cafile: Path | None


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    path: Path
    chain_id: str
    keys_dir: Path
    data_dir: Path
    run_dir: Path
    broker_url: str
    consensus: ConsensusConfig
    members: tuple[MemberConfig, ...]
    genesis: GenesisConfig
    broker_tls: BrokerTlsConfig | None = None

    @property
    def nodes(self) -> tuple[MemberConfig, ...]:
        return tuple(m for m in self.members if m.runs_node)

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.nodes)

    def member(self, member_id: str) -> MemberConfig:
        for m in self.members:
            if m.id == member_id:
                return m
        raise ConfigError(f"no member or node with id {member_id!r} in {self.path}")


def _require(mapping: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in mapping:
        raise ConfigError(f"{where}: missing field '{key}'")
    return _typed(mapping[key], kind, f"{where}.{key}")


def _typed(value: Any, kind: type, where: str) -> Any:
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _known_fields(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown field '{unknown[0]}'")


def _member(raw: Any, where: str, runs_node: bool) -> MemberConfig:
    raw = _typed(raw, dict, where)
    _known_fields(raw, {"id", "role"}, where)
    member_id = _require(raw, "id", str, where)
    if not _ID_PATTERN.match(member_id):
        raise ConfigError(f"{where}.id: {member_id!r} must be lowercase letters, digits and '-'")
    role = _require(raw, "role", str, where)
    if role not in ROLES:
        raise ConfigError(
            f"{where}.role: unknown role {role!r} (one of {', '.join(sorted(ROLES))})"
        )
    if runs_node and role not in NODE_ROLES:
        raise ConfigError(f"{where}.role: a {role} is a member without a node, not a node")
    return MemberConfig(member_id, role, runs_node)


def _consensus(raw: Any) -> ConsensusConfig:
    raw = _typed(raw or {}, dict, "consensus")
    defaults = ConsensusConfig()
    _known_fields(raw, set(ConsensusConfig.__slots__), "consensus")
    values = {}
    for name in ConsensusConfig.__slots__:
        value = _typed(raw.get(name, getattr(defaults, name)), int, f"consensus.{name}")
        if value <= 0:
            raise ConfigError(f"consensus.{name}: must be positive")
        values[name] = value
    if values["watermark_window"] < 2 * values["checkpoint_interval"]:
        raise ConfigError("consensus.watermark_window: must be at least twice checkpoint_interval")
    return ConsensusConfig(**values)


def _amounts(raw: Any, where: str, ids: set[str]) -> dict[str, int]:
    raw = _typed(raw or {}, dict, where)
    for key, value in raw.items():
        if key not in ids:
            raise ConfigError(f"{where}.{key}: no such member")
        if _typed(value, int, f"{where}.{key}") < 0:
            raise ConfigError(f"{where}.{key}: must not be negative")
    return dict(raw)


def parse_config(raw: Any, path: Path) -> NetworkConfig:
    """Check a parsed YAML document and build the typed configuration."""
    raw = _typed(raw, dict, "nodes.yaml")
    allowed = {
        "chain_id",
        "keys_dir",
        "data_dir",
        "run_dir",
        "broker",
        "broker_tls",
        "consensus",
        "nodes",
    }
    _known_fields(raw, allowed | {"members", "genesis"}, "nodes.yaml")
    chain_id = _require(raw, "chain_id", str, "nodes.yaml")
    nodes_raw = _require(raw, "nodes", list, "nodes.yaml")
    members_raw = _typed(raw.get("members") or [], list, "members")
    members = [_member(m, f"nodes[{i}]", True) for i, m in enumerate(nodes_raw)]
    members += [_member(m, f"members[{i}]", False) for i, m in enumerate(members_raw)]
    seen: set[str] = set()
    for m in members:
        if m.id in seen:
            raise ConfigError(f"duplicate id {m.id!r}")
        seen.add(m.id)
    node_count = sum(m.runs_node for m in members)
    if node_count < MIN_NODES:
        raise ConfigError(f"nodes: {node_count} nodes, PBFT needs at least {MIN_NODES}")
    if not any(m.role == "regulator" for m in members):
        raise ConfigError("nodes: the network needs a regulator")
    genesis_raw = _typed(raw.get("genesis") or {}, dict, "genesis")
    _known_fields(genesis_raw, {"balances", "credit_lines"}, "genesis")
    genesis = GenesisConfig(
        balances=_amounts(genesis_raw.get("balances"), "genesis.balances", seen),
        credit_lines=_amounts(genesis_raw.get("credit_lines"), "genesis.credit_lines", seen),
    )
    base = path.parent
    broker = _typed(raw.get("broker") or "mqtt://127.0.0.1:18830", str, "broker")
    if not re.match(r"^mqtts?://[^/:]+(:\d+)?$", broker):
        raise ConfigError(f"broker: {broker!r} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    tls = _broker_tls(raw.get("broker_tls"), base)
    return NetworkConfig(
        path=path,
        chain_id=chain_id,
        keys_dir=base / _typed(raw.get("keys_dir", "keys"), str, "keys_dir"),
        data_dir=base / _typed(raw.get("data_dir", "data"), str, "data_dir"),
        run_dir=base / _typed(raw.get("run_dir", "run"), str, "run_dir"),
        broker_url=broker,
        consensus=_consensus(raw.get("consensus")),
        members=tuple(members),
        genesis=genesis,
        broker_tls=tls,
    )


def _broker_tls(raw: Any, base: Path) -> BrokerTlsConfig | None:
    if raw is None:
        return None
    raw = _typed(raw, dict, "broker_tls")
    _known_fields(raw, {"certfile", "keyfile", "cafile"}, "broker_tls")
    paths = {}
    for name in ("certfile", "keyfile", "cafile"):
        value = raw.get(name)
        paths[name] = None if value is None else base / _typed(value, str, f"broker_tls.{name}")
    return BrokerTlsConfig(**paths)


def load_config(path: str | Path = "nodes.yaml") -> NetworkConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, path.resolve())
