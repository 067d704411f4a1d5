"""Network faults a node imposes on itself, switched by the operator's control messages.

All nodes share one broker, so a partition or a delay cannot be made in the network: each node
drops consensus messages from peers outside its side of a partition and holds back its own
messages by the configured delay. Control messages arrive on `control/<node>`, which only the
operator's broker login may publish (the broker's ACL is what authenticates them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consortium import codec
from consortium.errors import CodecError

MAX_DELAY_MS = 60_000


@dataclass(frozen=True, slots=True)
class FaultState:
    """`reachable` is the set of peers this node exchanges consensus messages with (None: all)."""

    reachable: frozenset[str] | None = None
    delay_ms: int = 0

    def hears(self, peer: str) -> bool:
        return self.reachable is None or peer in self.reachable

    def describe(self) -> dict[str, Any]:
        active: dict[str, Any] = {}
        if self.reachable is not None:
            active["partition"] = sorted(self.reachable)
        if self.delay_ms:
            active["delay_ms"] = self.delay_ms
        return active


def partition_message(groups: list[list[str]]) -> bytes:
    return codec.encode({"op": "partition", "groups": groups})


def delay_message(ms: int) -> bytes:
    return codec.encode({"op": "delay", "ms": ms})


def heal_message() -> bytes:
    return codec.encode({"op": "heal"})


def apply_control(
    state: FaultState, node_id: str, nodes: tuple[str, ...], data: bytes
) -> FaultState:
    """The fault state after one control message; raises CodecError (state unchanged) if bad."""
    message = codec.decode(data, max_bytes=16 * 1024)
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise CodecError("control message is not a map with an op")
    op = message["op"]
    if op == "heal":
        return FaultState()
    if op == "delay":
        ms = codec.expect_type(message.get("ms"), int, "control.ms")
        if not 0 <= ms <= MAX_DELAY_MS:
            raise CodecError(f"control.ms: must be from 0 to {MAX_DELAY_MS}")
        return FaultState(state.reachable, ms)
    if op == "partition":
        groups = codec.expect_type(message.get("groups"), tuple, "control.groups")
        for group in groups:
            codec.expect_type(group, tuple, "control.group")
            for member in group:
                if member not in nodes:
                    raise CodecError(f"control.groups: {member!r} is not a node")
        mine = [set(g) for g in groups if node_id in g]
        if len(mine) != 1:
            raise CodecError(f"control.groups: {node_id} must be in exactly one group")
        return FaultState(frozenset(mine[0] - {node_id}), state.delay_ms)
    raise CodecError(f"unknown control op {op!r}")
