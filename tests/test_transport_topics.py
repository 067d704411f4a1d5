from __future__ import annotations

import pytest

from consortium.errors import ConfigError, LocalError
from consortium.transport import topics
from consortium.transport.topics import ParsedTopic, TopicError, TopicKind, parse_topic

CHAIN = "consortium-local"


def test_every_topic_parses_back_to_its_publisher() -> None:
    cases = {
        topics.pbft_topic(CHAIN, "bank-a"): ParsedTopic(TopicKind.PBFT, "bank-a"),
        topics.pbft_direct_topic(CHAIN, "bank-a", "core"): ParsedTopic(
            TopicKind.PBFT, "bank-a", "core"
        ),
        topics.request_topic(CHAIN, "load-3"): ParsedTopic(TopicKind.REQUEST, "load-3"),
        topics.commit_topic(CHAIN, "core"): ParsedTopic(TopicKind.COMMIT, "core"),
        topics.status_topic(CHAIN, "regulator"): ParsedTopic(TopicKind.STATUS, "regulator"),
        topics.control_topic(CHAIN, "agency"): ParsedTopic(TopicKind.CONTROL, "agency"),
    }
    for topic, expected in cases.items():
        assert parse_topic(CHAIN, topic) == expected


def test_layout_is_the_documented_one() -> None:
    assert topics.pbft_topic(CHAIN, "bank-a") == "c/consortium-local/pbft/bank-a"
    assert (
        topics.pbft_direct_topic(CHAIN, "bank-a", "core")
        == "c/consortium-local/pbft/bank-a/to/core"
    )
    assert topics.request_topic(CHAIN, "supplier-a") == "c/consortium-local/req/supplier-a"
    assert topics.node_subscriptions(CHAIN, "core") == (
        "c/consortium-local/pbft/+",
        "c/consortium-local/pbft/+/to/core",
        "c/consortium-local/req/+",
        "c/consortium-local/ask/+",
        "c/consortium-local/control/core",
        # what clients and the operator published at another organisation's broker
        "c/consortium-local/via/+/req/+",
        "c/consortium-local/via/+/ask/+",
        "c/consortium-local/via/+/control/core",
    )
    assert topics.client_subscriptions(CHAIN, "supplier-a") == (
        "c/consortium-local/commit/+",
        "c/consortium-local/commit/+/to/supplier-a",
        "c/consortium-local/status/+",
    )
    assert (
        topics.commit_direct_topic(CHAIN, "core", "supplier-a")
        == "c/consortium-local/commit/core/to/supplier-a"
    )
    assert topics.parse_topic(CHAIN, "c/consortium-local/commit/core/to/supplier-a") == (
        topics.ParsedTopic(topics.TopicKind.COMMIT, "core", "supplier-a")
    )
    assert topics.parse_topic(CHAIN, "c/consortium-local/ask/supplier-a") == (
        topics.ParsedTopic(topics.TopicKind.ASK, "supplier-a")
    )


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "c/consortium-local",
        "c/consortium-local/pbft",
        "c/other-chain/pbft/bank-a",
        "x/consortium-local/pbft/bank-a",
        "c/consortium-local/vote/bank-a",
        "c/consortium-local/pbft/Bank-A",
        "c/consortium-local/pbft/bank-a/",
        "c/consortium-local/pbft/+",
        "c/consortium-local/pbft/bank-a/to",
        "c/consortium-local/pbft/bank-a/from/core",
        "c/consortium-local/pbft/bank-a/to/core/x",
        "c/consortium-local/req/supplier-a/to/core",
        "c/consortium-local/commit/core/extra",
        "c/consortium-local/status/" + "a" * 40,
        "c/consortium-local/pbft/bank-a\x00",
    ],
)
def test_anything_outside_the_layout_is_rejected(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(CHAIN, topic)


def test_a_non_string_topic_is_rejected_as_remote_input() -> None:
    with pytest.raises(TopicError):
        parse_topic(CHAIN, b"c/consortium-local/pbft/bank-a")  # type: ignore[arg-type]


def test_names_that_would_change_the_topic_structure_are_refused_when_building() -> None:
    for bad in ("bank/a", "+", "#", "", "Bank"):
        with pytest.raises(LocalError):
            topics.pbft_topic(CHAIN, bad)
    with pytest.raises(ConfigError):
        topics.pbft_topic("chain/with/levels", "bank-a")


def test_what_a_bridge_carries_on_parses_back_to_the_client_that_published_it() -> None:
    assert parse_topic(CHAIN, f"c/{CHAIN}/via/core/req/supplier-a") == ParsedTopic(
        TopicKind.REQUEST, "supplier-a"
    )
    assert parse_topic(CHAIN, f"c/{CHAIN}/via/bank-b/ask/load-3") == ParsedTopic(
        TopicKind.ASK, "load-3"
    )
    assert parse_topic(CHAIN, f"c/{CHAIN}/via/bank-b/control/core") == ParsedTopic(
        TopicKind.CONTROL, "core"
    )
    assert topics.via_prefix(CHAIN, "core") == f"c/{CHAIN}/via/core/"


@pytest.mark.parametrize(
    "topic",
    [
        f"c/{CHAIN}/via/core/pbft/bank-a",  # a node's topics travel as they are, never via
        f"c/{CHAIN}/via/core/commit/bank-a",
        f"c/{CHAIN}/via/core/status/bank-a",
        f"c/{CHAIN}/via/core/req/supplier-a/extra",
        f"c/{CHAIN}/via/core/req",
        f"c/{CHAIN}/via/Core!/req/supplier-a",
        f"c/{CHAIN}/via/core/via/core/req/supplier-a",
    ],
)
def test_anything_else_under_via_is_rejected(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(CHAIN, topic)


def test_a_bridge_state_names_the_peer_of_this_brokers_bridge_only() -> None:
    state = "$SYS/broker/connection/bridge-core-to-bank-a/state"
    assert topics.bridge_state_peer(state, "core") == "bank-a"
    assert topics.bridge_state_peer(state, "bank-a") is None
    assert topics.bridge_state_peer("$SYS/broker/connection/other/state", "core") is None
    assert topics.bridge_state_peer(f"c/{CHAIN}/status/core", "core") is None
