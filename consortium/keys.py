"""Key files: one ed25519 key per member (business transactions) and one per node (consensus votes).

Keeping them apart lets a member revoke and rotate its business key without touching consensus.
Files are msgpack: `<id>.member.key` (private, mode 0600) and `<id>.member.pub`, likewise `.node.`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from consortium import codec
from consortium.config import NetworkConfig
from consortium.crypto import PUBLIC_KEY_BYTES, KeyPair
from consortium.errors import CodecError, ConfigError

KeyKind = Literal["member", "node"]


@dataclass(frozen=True, slots=True)
class KeyDirectory:
    """Every public key of the network, as all nodes must agree on it at genesis."""

    member_keys: dict[str, bytes]
    node_keys: dict[str, bytes]


def key_path(config: NetworkConfig, member_id: str, kind: KeyKind, private: bool) -> Path:
    return config.keys_dir / f"{member_id}.{kind}.{'key' if private else 'pub'}"


def _identities(config: NetworkConfig) -> list[tuple[str, KeyKind]]:
    out: list[tuple[str, KeyKind]] = [(m.id, "member") for m in config.members]
    out += [(m.id, "node") for m in config.nodes]
    return out


def init_keys(config: NetworkConfig, force: bool = False) -> list[Path]:
    """Write a key pair for every member and node. Refuses to overwrite unless `force`."""
    existing = [
        key_path(config, i, k, True)
        for i, k in _identities(config)
        if key_path(config, i, k, True).exists()
    ]
    if existing and not force:
        raise ConfigError(
            f"{len(existing)} key files exist already (e.g. {existing[0]}); use --force to replace them"
        )
    config.keys_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for member_id, kind in _identities(config):
        pair = KeyPair.generate()
        private = key_path(config, member_id, kind, True)
        _write(private, {"id": member_id, "kind": kind, "seed": pair.seed}, 0o600)
        _write(
            key_path(config, member_id, kind, False),
            {"id": member_id, "kind": kind, "public_key": pair.public_key},
            0o644,
        )
        written.append(private)
    return written


def _write(path: Path, value: dict, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(codec.encode(value))
    os.replace(tmp, path)


def _read(path: Path, member_id: str, kind: KeyKind, field: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"missing key file {path} for {kind} {member_id!r} (run `consortium keys init`)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        value = codec.decode(data, max_bytes=4096)
    except CodecError as exc:
        raise ConfigError(f"key file {path} is corrupt: {exc}") from None
    if not isinstance(value, dict) or value.get("id") != member_id or value.get("kind") != kind:
        raise ConfigError(f"key file {path} does not hold the {kind} key of {member_id!r}")
    raw = value.get(field)
    if not isinstance(raw, bytes) or len(raw) != PUBLIC_KEY_BYTES:
        raise ConfigError(f"key file {path}: field '{field}' is not 32 bytes")
    return raw


def load_keypair(config: NetworkConfig, member_id: str, kind: KeyKind) -> KeyPair:
    config.member(member_id)
    return KeyPair(_read(key_path(config, member_id, kind, True), member_id, kind, "seed"))


def load_directory(config: NetworkConfig) -> KeyDirectory:
    """Read every public key; raises `ConfigError` naming the first missing or corrupt file."""
    members: dict[str, bytes] = {}
    nodes: dict[str, bytes] = {}
    for member_id, kind in _identities(config):
        public = _read(key_path(config, member_id, kind, False), member_id, kind, "public_key")
        (members if kind == "member" else nodes)[member_id] = public
    return KeyDirectory(members, nodes)
