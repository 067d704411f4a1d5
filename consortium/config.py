"""`nodes.yaml`: the network's organisations, nodes, consensus settings and genesis.

The loader checks the whole file and raises `ConfigError` naming the first bad field, so a typo never
starts a network that later disagrees with itself. Every command loads the file through
`load_config`, so none accepts a file that another refuses, and every refusal is one line: the field
(`nodes[0].role: ...`) or, when the file is not even YAML, `FILE:LINE:COLUMN: problem`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.error import MarkedYAMLError
from yaml.nodes import MappingNode, Node
from yaml.reader import ReaderError

from consortium.budget import DEFAULT_CACHE_MB, MAX_CACHE_MB, MIN_CACHE_MB
from consortium.errors import ConfigError
from consortium.pbft.settings import ConsensusConfig
from consortium.roles import ROLES
from consortium.transport.topics import is_valid_chain_id
from consortium.transport.url import parse_broker_url

MIN_NODES = 4
# Deeper than any real nodes.yaml (which nests four levels), shallow enough that neither the YAML
# composer nor anything walking the result can run out of stack.
MAX_DEPTH = 32
# Far above a network of thousands of members; stops a config pointed at /dev/zero or a disk image.
MAX_FILE_BYTES = 4 * 1024 * 1024
DEFAULT_BROKER = "mqtt://127.0.0.1:18830"
DEFAULT_METRICS_PORT = 19100
SHARED_BROKER_ID = "shared"
TOPOLOGIES = ("shared", "per_node")
# `up --broker-per-node` leaves this file in run_dir, so every later command sees that topology.
TOPOLOGY_FILE = "topology"
# What a node's entry may add under `brokers: per_node`: its own broker's URL and certificate.
_NODE_BROKER_FIELDS = ("broker", "broker_tls")
_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
NODE_ROLES = frozenset({"bank", "core_enterprise", "collection_agency", "regulator"})


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """An organisation: a key, a role, and whether it runs a node."""

    id: str
    role: str
    runs_node: bool


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
class BrokerConfig:
    """One mosquitto: the one every node shares (id `shared`), or an organisation's own (id: its
    node's), bridged to the others'. `tls`: the listener's certificate and key, and the CA that
    everyone (bridges included) checks brokers against."""

    id: str
    url: str
    tls: BrokerTlsConfig | None


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
    durable: bool = True
    """Sync the store before anything that depends on it is sent. `durable: false` keeps only
    what survives a process kill: unsafe under power loss or an OS crash (a node may forget a
    vote it sent), and faster on disks where a sync is slow."""
    metrics_port: int = DEFAULT_METRICS_PORT
    """The n-th node under `nodes:` serves Prometheus metrics on 127.0.0.1, port `metrics_port`
    + n; 0 lets every node take a free port (its status heartbeat names it)."""
    cache_mb: int = DEFAULT_CACHE_MB
    """What each node's caches may hold in memory, in MiB, shared as `consortium.budget` says;
    the chain itself is on disk, so this (and not the chain's length) bounds a node's memory."""
    topology: str = "shared"
    """`shared`: every node and client uses the one broker at `broker_url`. `per_node`: every
    organisation that runs a node runs its own broker (`node_brokers`), bridged to the others."""
    node_brokers: tuple[BrokerConfig, ...] = ()
    generated_tls: bool = False
    """The brokers' certificates are a local CA's, made under `run_dir/tls` by `up`."""

    @property
    def per_node_brokers(self) -> bool:
        return self.topology == "per_node"

    @property
    def brokers(self) -> tuple[BrokerConfig, ...]:
        """Every broker of the network: the organisations' own, or the one they share."""
        if self.per_node_brokers:
            return self.node_brokers
        return (BrokerConfig(SHARED_BROKER_ID, self.broker_url, self.broker_tls),)

    def broker_of(self, node_id: str) -> BrokerConfig:
        """The broker `node_id` connects to: its organisation's own, or the shared one."""
        if not self.per_node_brokers:
            return self.brokers[0]
        return self.broker(node_id)

    def broker(self, broker_id: str) -> BrokerConfig:
        for candidate in self.brokers:
            if candidate.id == broker_id:
                return candidate
        raise ConfigError(
            f"no broker {broker_id!r} (brokers: {', '.join(b.id for b in self.brokers)})"
        )

    @property
    def nodes(self) -> tuple[MemberConfig, ...]:
        return tuple(m for m in self.members if m.runs_node)

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.nodes)

    def metrics_port_of(self, node_id: str) -> int:
        """Where `node_id` serves its metrics; 0 means a free port chosen when it starts."""
        if self.metrics_port == 0:
            return 0
        return self.metrics_port + self.node_ids.index(node_id)

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


def _section(value: Any, kind: type, where: str) -> Any:
    """An optional part of the file: absent or left empty (`consensus:`) means its defaults, but
    anything else (`consensus: 0`) must have the right type rather than be read as empty."""
    return kind() if value is None else _typed(value, kind, where)


def _field(where: str, key: Any) -> str:
    """`where.key`, or `where['key']` when the key would not print as one plain word (so a key
    holding a newline cannot split the message)."""
    if isinstance(key, str) and re.fullmatch(r"[\w.-]+", key):
        return f"{where}.{key}"
    return f"{where}[{key!r}]"


def _known_fields(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    # Sorted by repr: YAML keys need not be strings, and `1` and `'x'` do not compare.
    unknown = sorted((key for key in mapping if key not in allowed), key=repr)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}")


def _path(value: Any, where: str) -> str:
    """A path the OS can use (a relative one is under the config's folder): an empty one would
    mean that folder itself, and a NUL byte (`"\\0"` in YAML) would fail every system call later,
    far from the config."""
    value = _typed(value, str, where)
    if not value or "\0" in value:
        raise ConfigError(f"{where}: {value!r} is not a path")
    return value


def _member(raw: Any, where: str, runs_node: bool) -> MemberConfig:
    raw = _typed(raw, dict, where)
    _known_fields(raw, {"id", "role", *(_NODE_BROKER_FIELDS if runs_node else ())}, where)
    member_id = _require(raw, "id", str, where)
    if not _ID_PATTERN.fullmatch(member_id):
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
    raw = _section(raw, dict, "consensus")
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
    raw = _section(raw, dict, where)
    for key, value in raw.items():
        if key not in ids:
            raise ConfigError(f"{_field(where, key)}: no such member")
        if _typed(value, int, _field(where, key)) < 0:
            raise ConfigError(f"{_field(where, key)}: must not be negative")
    return dict(raw)


def parse_config(raw: Any, path: Path) -> NetworkConfig:
    """Check a parsed YAML document and build the typed configuration."""
    if raw is None:
        raise ConfigError("nodes.yaml: the file is empty; it needs at least chain_id and nodes")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"nodes.yaml: the top level must be a mapping of fields, not a {type(raw).__name__}"
        )
    allowed = {
        "chain_id",
        "keys_dir",
        "data_dir",
        "run_dir",
        "broker",
        "broker_tls",
        "consensus",
        "nodes",
        "durable",
        "metrics_port",
        "cache_mb",
        "brokers",
    }
    _known_fields(raw, allowed | {"members", "genesis"}, "nodes.yaml")
    chain_id = _require(raw, "chain_id", str, "nodes.yaml")
    if not is_valid_chain_id(chain_id):
        raise ConfigError(
            f"chain_id: {chain_id!r} cannot be an MQTT topic level: use up to 64 letters, digits,"
            " '.', '_' and '-', starting with a letter or digit"
        )
    nodes_raw = _require(raw, "nodes", list, "nodes.yaml")
    members_raw = _section(raw.get("members"), list, "members")
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
    genesis_raw = _section(raw.get("genesis"), dict, "genesis")
    _known_fields(genesis_raw, {"balances", "credit_lines"}, "genesis")
    genesis = GenesisConfig(
        balances=_amounts(genesis_raw.get("balances"), "genesis.balances", seen),
        credit_lines=_amounts(genesis_raw.get("credit_lines"), "genesis.credit_lines", seen),
    )
    base = path.parent
    broker = raw.get("broker")
    broker = DEFAULT_BROKER if broker is None else _typed(broker, str, "broker")
    # The same check `up` and every connection make, so no command accepts a broker they refuse.
    broker_port = parse_broker_url(broker).port
    tls = _broker_tls(raw.get("broker_tls"), base)
    run_dir = base / _path(raw.get("run_dir", "run"), "run_dir")
    topology = _typed(raw.get("brokers", "shared"), str, "brokers")
    if topology not in TOPOLOGIES:
        raise ConfigError(f"brokers: {topology!r} is not one of {', '.join(TOPOLOGIES)}")
    node_brokers: tuple[BrokerConfig, ...] = ()
    generated_tls = False
    if topology == "per_node":
        node_brokers, generated_tls = _node_brokers(nodes_raw, broker, tls, base, run_dir)
    else:
        for i, node_raw in enumerate(nodes_raw):
            for name in _NODE_BROKER_FIELDS:
                if name in node_raw:
                    raise ConfigError(
                        f"nodes[{i}].{name}: a node's own broker needs `brokers: per_node`"
                    )
    return NetworkConfig(
        path=path,
        chain_id=chain_id,
        keys_dir=base / _path(raw.get("keys_dir", "keys"), "keys_dir"),
        data_dir=base / _path(raw.get("data_dir", "data"), "data_dir"),
        run_dir=run_dir,
        broker_url=broker,
        consensus=_consensus(raw.get("consensus")),
        members=tuple(members),
        genesis=genesis,
        broker_tls=tls,
        durable=_typed(raw.get("durable", True), bool, "durable"),
        metrics_port=_metrics_port(
            raw.get("metrics_port"),
            node_count,
            {broker_port} | {parse_broker_url(b.url).port for b in node_brokers},
        ),
        cache_mb=_cache_mb(raw.get("cache_mb")),
        topology=topology,
        node_brokers=node_brokers,
        generated_tls=generated_tls,
    )


def _node_brokers(
    nodes_raw: list[Any], shared_url: str, tls: BrokerTlsConfig | None, base: Path, run_dir: Path
) -> tuple[tuple[BrokerConfig, ...], bool]:
    """Every node's own broker: its `broker:` URL, or the shared URL's host on the shared port plus
    the node's index, over TLS. Certificates come from each node's `broker_tls:` (and the CA from
    the top level's); with none given anywhere, `up` makes a local CA's under `run_dir/tls`."""
    shared = parse_broker_url(shared_url)
    given = any("broker_tls" in raw for raw in nodes_raw) or tls is not None
    ca = tls.cafile if tls is not None else None
    if tls is not None and (tls.certfile is not None or tls.keyfile is not None):
        raise ConfigError(
            "broker_tls: with `brokers: per_node` give only cafile here; each node's broker_tls"
            " names its own broker's certfile and keyfile"
        )
    brokers = []
    seen: dict[tuple[str, int], str] = {}
    for index, raw in enumerate(nodes_raw):
        node_id, where = raw["id"], f"nodes[{index}]"
        url = raw.get("broker")
        if url is None:
            url = f"mqtts://{shared.host}:{shared.port + index}"
        endpoint = parse_broker_url(_typed(url, str, f"{where}.broker"))
        if (endpoint.host, endpoint.port) in seen:
            raise ConfigError(
                f"{where}.broker: {endpoint.url} is also {seen[endpoint.host, endpoint.port]}'s"
            )
        seen[endpoint.host, endpoint.port] = node_id
        if given:
            own = _broker_tls(raw.get("broker_tls"), base)
            if endpoint.tls and (own is None or own.certfile is None or own.keyfile is None):
                raise ConfigError(f"{where}.broker_tls: {endpoint.url} needs certfile and keyfile")
            if own is not None and own.cafile is not None:
                raise ConfigError(f"{where}.broker_tls.cafile: the CA is the top level's")
            node_tls = None if own is None else BrokerTlsConfig(own.certfile, own.keyfile, ca)
        else:
            local = run_dir / "tls"
            node_tls = BrokerTlsConfig(
                local / f"{node_id}.crt", local / f"{node_id}.key", local / "ca.crt"
            )
        brokers.append(BrokerConfig(node_id, endpoint.url, node_tls if endpoint.tls else None))
    return tuple(brokers), not given


def _cache_mb(raw: Any) -> int:
    if raw is None:
        return DEFAULT_CACHE_MB
    megabytes = _typed(raw, int, "cache_mb")
    if not MIN_CACHE_MB <= megabytes <= MAX_CACHE_MB:
        raise ConfigError(f"cache_mb: {megabytes} MiB is outside {MIN_CACHE_MB} to {MAX_CACHE_MB}")
    return megabytes


def _metrics_port(raw: Any, node_count: int, broker_ports: set[int]) -> int:
    """The first of `node_count` consecutive ports, all valid and none a broker's; or 0."""
    port = DEFAULT_METRICS_PORT if raw is None else _typed(raw, int, "metrics_port")
    if port == 0:
        return 0
    if port < 0:
        raise ConfigError(f"metrics_port: {port} is not a port")
    last = port + node_count - 1
    if last > 65535:
        raise ConfigError(
            f"metrics_port: {port} leaves no room for {node_count} ports up to 65535"
            " (0 lets every node take a free port)"
        )
    for broker_port in sorted(broker_ports):
        if port <= broker_port <= last:
            raise ConfigError(
                f"metrics_port: ports {port}-{last} include the broker's {broker_port}"
            )
    return port


def _broker_tls(raw: Any, base: Path) -> BrokerTlsConfig | None:
    if raw is None:
        return None
    raw = _typed(raw, dict, "broker_tls")
    _known_fields(raw, {"certfile", "keyfile", "cafile"}, "broker_tls")
    paths = {}
    for name in ("certfile", "keyfile", "cafile"):
        value = raw.get(name)
        paths[name] = None if value is None else base / _path(value, f"broker_tls.{name}")
    return BrokerTlsConfig(**paths)


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` refusing, as a `YAMLError` with a position, what it would otherwise let
    through or crash on: a key given twice in one mapping (the last would silently win), nesting
    deeper than `MAX_DEPTH` (its composer recurses per level into a RecursionError), and scalars its
    constructors choke on (`2024-13-45`, `!!int x`: ValueError, KeyError and the like)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._keys_checked: set[int] = set()

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            kind = node.tag.rsplit(":", 1)[-1]
            value = f" {node.value[:40]!r}" if isinstance(node.value, str) else ""
            problem = f"cannot read{value} as {kind}: {exc}"
            raise ConstructorError(None, None, problem, node.start_mark) from None

    def flatten_mapping(self, node: MappingNode) -> None:
        # Every mapping passes here before `<<` merges are spliced into it; checked afterwards, a
        # merged key that the mapping overrides, as merges are meant to be used, would look doubled.
        if id(node) not in self._keys_checked:
            self._keys_checked.add(id(node))
            self._refuse_duplicate_keys(node)
        super().flatten_mapping(node)

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        first_lines: dict[Any, str] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            try:
                first = first_lines.get(key)
            except TypeError:
                continue  # an unhashable key, which the base class refuses with its own message
            if first is not None:
                problem = f"duplicate key {key!r} (first at {first})"
                raise ConstructorError(None, None, problem, key_node.start_mark)
            mark = key_node.start_mark
            first_lines[key] = f"{mark.line + 1}:{mark.column + 1}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(_one_line(f"cannot read {path}: {reason}")) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB, not a network file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ConfigError(
            f"{path}:{line}:{column}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _load_yaml(text: str, source: str) -> Any:
    """One YAML document, or a `ConfigError` of the form `FILE:LINE:COLUMN: problem`."""
    try:
        loader = _StrictLoader(text)  # the reader checks for unprintable characters right away
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        problem = f"character #x{exc.character:04x} is not allowed in YAML ({exc.reason})"
        raise ConfigError(f"{source}:{line}:{column}: {problem}") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # "but found another document": the composer's problems continue its context's sentence.
        problem = (exc.problem or exc.context or "not valid YAML").removeprefix("but ")
        if exc.problem and exc.context:
            started = exc.context_mark
            at = f" at {started.line + 1}:{started.column + 1}" if started else ""
            problem = f"{problem} ({exc.context}{at})"
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(_one_line(f"{where}: {problem}")) from None
    except yaml.YAMLError as exc:
        raise ConfigError(_one_line(f"{source}: not valid YAML: {exc}")) from None


def load_config(path: str | Path = "nodes.yaml") -> NetworkConfig:
    """Read and check `nodes.yaml`: the one way every command gets its configuration, so whatever
    is wrong with the file, each refuses it with the same one-line `ConfigError`."""
    path = Path(path)
    raw = _load_yaml(_read_text(path), str(path))
    config = parse_config(raw, path.resolve())
    if config.topology != "per_node" and recorded_topology(config) == "per_node":
        config = parse_config({**raw, "brokers": "per_node"}, path.resolve())
    return config


def recorded_topology(config: NetworkConfig) -> str | None:
    """The topology `up --broker-per-node` recorded for the running network, if any."""
    try:
        text = (config.run_dir / TOPOLOGY_FILE).read_text().strip()
    except OSError:
        return None
    return text if text in TOPOLOGIES else None


def record_topology(config: NetworkConfig, topology: str | None) -> None:
    """Remember (or, with None, forget) the running network's topology for later commands."""
    path = config.run_dir / TOPOLOGY_FILE
    if topology is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(topology + "\n")
