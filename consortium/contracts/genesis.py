"""The state every node starts from, derived only from `nodes.yaml` and the public key files."""

from __future__ import annotations

from typing import Any

from consortium.config import NetworkConfig
from consortium.contracts import records, registry
from consortium.errors import ConfigError
from consortium.keys import KeyDirectory
from consortium.roles import Role


def genesis_writes(config: NetworkConfig, keys: KeyDirectory) -> dict[str, Any]:
    """Members with their roles and keys, the opening balances (the only money ever issued),
    the core enterprises' credit lines, and the business clock at day 0."""
    writes: dict[str, Any] = {records.CLOCK: 0}
    by_role: dict[str, list[str]] = {}
    for m in config.members:
        public_key = keys.member_keys.get(m.id)
        if public_key is None:
            raise ConfigError(f"no member key for {m.id}")
        entries = registry.key_entries(m.id, m.role, public_key)
        if any(key in writes for key in entries):
            raise ConfigError(f"member key of {m.id} is used by another member")
        writes.update(entries)
        by_role.setdefault(m.role, []).append(m.id)
    for role in sorted(by_role):
        writes[records.ROLE + role] = tuple(sorted(by_role[role]))
    for member_id in sorted(config.genesis.balances):
        writes[records.BALANCE + member_id] = config.genesis.balances[member_id]
    roles = {m.id: m.role for m in config.members}
    for member_id in sorted(config.genesis.credit_lines):
        if roles.get(member_id) != Role.CORE_ENTERPRISE:
            raise ConfigError(f"genesis.credit_lines.{member_id}: not a core enterprise")
        limit = config.genesis.credit_lines[member_id]
        writes[records.CREDIT + member_id] = {"limit": limit, "used": 0}
    return writes
