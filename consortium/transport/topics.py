"""The MQTT topic layout of one chain, and the parser that maps a topic back to who sent what.

Every topic lives under `c/<chain_id>/`, so several chains can share one broker and one
`mosquitto_sub` can watch a whole chain. The layout, with the publisher allowed by the broker's ACL:

| topic                               | publisher | what                                               |
|-------------------------------------|-----------|----------------------------------------------------|
| `c/<chain>/pbft/<node>`             | node      | consensus messages broadcast by <node>             |
| `c/<chain>/pbft/<node>/to/<dest>`   | node      | point-to-point from <node> to <dest> (state transfer) |
| `c/<chain>/req/<client>`            | client    | signed transactions submitted by a member or load generator |
| `c/<chain>/commit/<node>`           | node      | one message per block <node> committed, with its receipts |
| `c/<chain>/commit/<node>/to/<client>` | node    | <node>'s answers to one client: asked receipts, or "unknown" |
| `c/<chain>/ask/<client>`            | client    | outcome queries: the transaction ids a client asks about |
| `c/<chain>/status/<node>`           | node      | retained status heartbeat, for dashboards          |
| `c/<chain>/control/<node>`          | operator  | authenticated fault-injection commands for <node>  |
| `c/<chain>/via/<broker>/req/<client>` (and `ask`, `control`) | a bridge | what a client or the operator published on another organisation's broker |

Nodes subscribe to `pbft/+`, `pbft/+/to/<self>`, `req/+`, `ask/+` and `control/<self>` (and the
same under `via/+/`); clients to `commit/+` and `commit/+/to/<self>` (they accept a result once
f+1 nodes report the same receipt) and `status/+`.

With a broker per organisation (`brokers: per_node`), broker B's bridge to every other broker
carries out only what entered at B: its own node's `pbft/<B>/#`, `commit/<B>/#` and
`status/<B>` under the same topics, and what clients and the operator published at B (`req/+`,
`ask/+`, `control/+`) under `via/<B>/`. A bridged message therefore never matches another
bridge's topics: nothing loops, and every broker gets each message once, from where it entered.

Watching the bus (the operator's login may read everything; its password is in
`<run_dir>/broker/credentials`, see `consortium.transport.credentials.read_credentials`):

    mosquitto_sub -h 127.0.0.1 -p 18830 -u operator -P <password> -t 'c/consortium-local/#' -v

Payloads are binary msgpack, so `-v` shows the topics (who talks to whom) and garbled payloads;
add `-F '%t %l'` to print each topic with its payload length instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from consortium.errors import ConfigError, LocalError, RemoteError

ROOT = "c"
_CHAIN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# The same names nodes.yaml accepts for members and nodes.
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class TopicError(RemoteError):
    """A topic that is not part of this chain's layout (wrong chain, kind, or name)."""


class TopicKind(StrEnum):
    PBFT = "pbft"
    REQUEST = "req"
    COMMIT = "commit"
    STATUS = "status"
    CONTROL = "control"
    ASK = "ask"


VIA = "via"
# What clients and the operator publish: wherever it entered, a bridge carries it on under `via/`.
BRIDGED_FROM_CLIENTS = (TopicKind.REQUEST, TopicKind.ASK, TopicKind.CONTROL)


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """Who published on a topic; `dest` is set only for point-to-point messages (a pbft message
    to one node, or a node's answer to one client)."""

    kind: TopicKind
    publisher: str
    dest: str | None = None


def is_valid_chain_id(chain_id: str) -> bool:
    return bool(_CHAIN_PATTERN.match(chain_id))


def is_valid_name(name: str) -> bool:
    """A node or client name that is safe as one topic level (no `/`, `+`, `#`)."""
    return bool(_NAME_PATTERN.match(name))


def _chain(chain_id: str) -> str:
    if not is_valid_chain_id(chain_id):
        raise ConfigError(
            f"chain_id {chain_id!r} cannot be an MQTT topic level: use letters, digits, '.', '_', '-'"
        )
    return f"{ROOT}/{chain_id}"


def _name(name: str, what: str) -> str:
    if not is_valid_name(name):
        raise LocalError(f"{what} {name!r} cannot be an MQTT topic level")
    return name


def chain_filter(chain_id: str) -> str:
    """Every topic of the chain (for the operator and for watching)."""
    return f"{_chain(chain_id)}/#"


def pbft_topic(chain_id: str, node_id: str) -> str:
    return f"{_chain(chain_id)}/pbft/{_name(node_id, 'node')}"


def pbft_direct_topic(chain_id: str, node_id: str, dest_id: str) -> str:
    return f"{pbft_topic(chain_id, node_id)}/to/{_name(dest_id, 'destination node')}"


def request_topic(chain_id: str, client_id: str) -> str:
    return f"{_chain(chain_id)}/req/{_name(client_id, 'client')}"


def commit_topic(chain_id: str, node_id: str) -> str:
    return f"{_chain(chain_id)}/commit/{_name(node_id, 'node')}"


def commit_direct_topic(chain_id: str, node_id: str, client_id: str) -> str:
    """A node's answers to one client (outcomes it asked for or retransmitted)."""
    return f"{commit_topic(chain_id, node_id)}/to/{_name(client_id, 'client')}"


def ask_topic(chain_id: str, client_id: str) -> str:
    return f"{_chain(chain_id)}/ask/{_name(client_id, 'client')}"


def status_topic(chain_id: str, node_id: str) -> str:
    return f"{_chain(chain_id)}/status/{_name(node_id, 'node')}"


def control_topic(chain_id: str, node_id: str) -> str:
    return f"{_chain(chain_id)}/control/{_name(node_id, 'node')}"


def pbft_broadcast_filter(chain_id: str) -> str:
    return f"{_chain(chain_id)}/pbft/+"


def pbft_direct_filter(chain_id: str, dest_id: str) -> str:
    """Point-to-point messages to `dest_id` from any node."""
    return f"{_chain(chain_id)}/pbft/+/to/{_name(dest_id, 'destination node')}"


def commit_filter(chain_id: str) -> str:
    return f"{_chain(chain_id)}/commit/+"


def answer_filter(chain_id: str, client_id: str) -> str:
    """Every node's answers to `client_id`."""
    return f"{_chain(chain_id)}/commit/+/to/{_name(client_id, 'client')}"


def status_filter(chain_id: str) -> str:
    return f"{_chain(chain_id)}/status/+"


def control_filter(chain_id: str) -> str:
    """Control topics of every node (what the operator may publish on)."""
    return f"{_chain(chain_id)}/control/+"


# mosquitto publishes each bridge's state (b"1" up, b"0" down), retained, on its own broker.
BRIDGE_STATE_FILTER = "$SYS/broker/connection/+/state"


def bridge_state_peer(topic: str, broker_id: str) -> str | None:
    """The remote broker of `broker_id`'s bridge whose state `topic` carries, if it is one."""
    levels = topic.split("/")
    if len(levels) != 5 or levels[:3] != ["$SYS", "broker", "connection"]:
        return None
    prefix = f"bridge-{broker_id}-to-"
    peer = levels[3].removeprefix(prefix)
    return peer if levels[3].startswith(prefix) and is_valid_name(peer) else None


def via_prefix(chain_id: str, broker_id: str) -> str:
    """Where a bridge from `broker_id` puts what clients published there (see the layout)."""
    return f"{_chain(chain_id)}/{VIA}/{_name(broker_id, 'broker')}/"


def node_subscriptions(chain_id: str, node_id: str) -> tuple[str, ...]:
    """What a node listens to: consensus, messages addressed to it, requests, its control topic,
    the last three also as bridged from other organisations' brokers."""
    from_clients = (
        f"{TopicKind.REQUEST}/+",
        f"{TopicKind.ASK}/+",
        f"{TopicKind.CONTROL}/{_name(node_id, 'node')}",
    )
    return (
        pbft_broadcast_filter(chain_id),
        pbft_direct_filter(chain_id, node_id),
        *(f"{_chain(chain_id)}/{level}" for level in from_clients),
        *(f"{_chain(chain_id)}/{VIA}/+/{level}" for level in from_clients),
    )


def client_subscriptions(chain_id: str, client_id: str) -> tuple[str, ...]:
    return (commit_filter(chain_id), answer_filter(chain_id, client_id), status_filter(chain_id))


def parse_topic(chain_id: str, topic: str) -> ParsedTopic:
    """Map a topic of this chain to (kind, publisher, dest); anything else raises `TopicError`."""
    if not isinstance(topic, str):
        raise TopicError(f"topic is {type(topic).__name__}, not str")
    levels = topic.split("/")
    if len(levels) < 4 or levels[0] != ROOT or levels[1] != chain_id:
        raise TopicError(f"topic {topic[:120]!r} is not under {ROOT}/{chain_id}/")
    kind_text, names = levels[2], levels[3:]
    bridged = kind_text == VIA
    if bridged:
        if len(levels) != 6 or not is_valid_name(levels[3]):
            raise TopicError(f"topic {topic[:120]!r} is not via/<broker>/<kind>/<name>")
        kind_text, names = levels[4], levels[5:]
    try:
        kind = TopicKind(kind_text)
    except ValueError:
        raise TopicError(f"unknown topic kind {kind_text[:32]!r}") from None
    if bridged and kind not in BRIDGED_FROM_CLIENTS:
        raise TopicError(f"topic {topic[:120]!r}: only clients' topics come via a bridge")
    if not all(is_valid_name(name) for name in names[:1] + names[2:]):
        raise TopicError(f"topic {topic[:120]!r} has an invalid node or client name")
    if len(names) == 1:
        return ParsedTopic(kind, names[0])
    if kind in (TopicKind.PBFT, TopicKind.COMMIT) and len(names) == 3 and names[1] == "to":
        return ParsedTopic(kind, names[0], names[2])
    raise TopicError(f"topic {topic[:120]!r} has unexpected levels")
