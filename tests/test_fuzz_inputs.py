"""Every hostile consensus input, fed to a real replica over a real ledger: rejected with one of
the reasons it is meant to hit, counted, and nothing sent, persisted or committed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from consortium.devnet import make_devnet
from consortium.fuzz.consensus_inputs import EXPECTED, BusView, ConsensusFuzzer
from consortium.ledger.ledger import Ledger, store_path
from consortium.node.ledger_app import LedgerApp
from consortium.pbft.replica import Replica

RECEIVER = "bank-a"


@pytest.fixture
def replica(tmp_path: Path) -> Replica:
    net = make_devnet(tmp_path / "net", load_signers=1)
    app = LedgerApp(Ledger(net.config, net.keys, store_path(net.config, RECEIVER)))
    replica = Replica(
        RECEIVER,
        net.keys.node_keys,
        net.node_pairs[RECEIVER],
        net.config.chain_id,
        net.config.consensus,
        app,
    )
    replica.start(0)
    replica.fuzz_net = net  # type: ignore[attr-defined]
    return replica


@pytest.mark.parametrize("victim_is_primary", [True, False])
def test_each_hostile_message_is_rejected_for_its_reason_and_changes_nothing(
    replica: Replica, victim_is_primary: bool
) -> None:
    net = replica.fuzz_net  # type: ignore[attr-defined]
    others = [n for n in replica.nodes if n not in (replica.primary, RECEIVER)]
    victim = replica.primary if victim_is_primary else others[0]
    fuzzer = ConsensusFuzzer(
        random.Random(11),
        net.config.chain_id,
        victim,
        net.node_pairs[victim],
        replica.nodes,
        net.config.consensus.watermark_window,
        BusView(),
        heavy=False,
    )
    snapshot = replica.snapshot()
    seen: set[str] = set()
    for step in range(600):
        message = fuzzer.next()
        before = dict(replica.counters)
        actions = replica.receive(message.payload, 1_000 + step)
        grown = {r for r, c in replica.counters.items() if c > before.get(r, 0)}
        assert len(grown) == 1, (message.kind, grown)
        reason = grown.pop()
        assert reason in EXPECTED[message.kind], (message.kind, reason)
        assert not actions.send and not actions.persist and not actions.committed, message.kind
        seen.add(message.kind)
    assert replica.snapshot() == snapshot
    assert not replica.prepare_votes and not replica.commit_votes and not replica.view_changes
    assert seen >= set(EXPECTED) - {"huge_array_msgpack", "big_unsigned_preprepare"}
