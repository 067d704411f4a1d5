"""The simulator's disk: the real store in memory, losing what was not synced when it crashes."""

from __future__ import annotations

import random

from consortium.ledger.ledger import Ledger
from consortium.sim.disk import SimDisk
from tests.ledger_helpers import certify, devnet, wallets


def test_a_crash_keeps_what_was_synced_and_loses_what_was_not():
    disk = SimDisk("n0")
    store = disk.open()
    store.write_consensus_records([("view", b"synced")])
    store.sync()
    store.write_consensus_records([("view", b"written, not synced"), ("pp/1", b"vote")])
    assert store.consensus_records() == {"view": b"written, not synced", "pp/1": b"vote"}
    disk.crash(random.Random(1), keep_some_unsynced=0.0)
    assert disk.open().consensus_records() == {"view": b"synced"}
    assert disk.lost_writes == 1


def test_a_sync_makes_durable_what_was_written_before_it_began():
    disk = SimDisk("n0")
    store = disk.open()
    store.write_consensus_records([("view", b"before the sync")])
    image, commits_before = store.begin_sync()
    store.write_consensus_records([("view", b"while it ran")])
    crashed = SimDisk("n0", synced=disk.synced, unsynced=list(disk.unsynced))
    crashed.crash(random.Random(1), keep_some_unsynced=0.0)  # the crash came before it ended
    assert crashed.open().consensus_records() == {}
    disk.complete_sync(image, commits_before)
    assert disk.unsynced and disk.syncs == 1  # the write made while it ran is still unsynced
    disk.crash(random.Random(1), keep_some_unsynced=0.0)
    assert disk.open().consensus_records() == {"view": b"before the sync"}


def test_an_unsynced_commit_may_survive_but_never_half_of_one():
    disk = SimDisk("n0")
    store = disk.open()
    store.write_consensus_records([("a", b"1"), ("b", b"1")])
    store.sync()
    store.write_consensus_records([("a", b"2"), ("b", b"2")])
    store.write_consensus_records([("a", b"3"), ("b", b"3")])
    seen = set()
    for seed in range(40):
        trial = SimDisk("n0", synced=disk.synced, unsynced=list(disk.unsynced))
        trial.crash(random.Random(seed), keep_some_unsynced=0.5)
        records = trial.open().consensus_records()
        assert records["a"] == records["b"]  # one transaction, whole or not at all
        seen.add(records["a"])
    assert seen == {b"1", b"2", b"3"}


def test_a_ledger_reopens_from_the_synced_image_at_its_head(tmp_path):
    net = devnet(tmp_path, load_signers=1)
    disk = SimDisk("bank-a")
    ledger = Ledger(net.config, net.keys, tmp_path / "unused", store=disk.open())
    stx = wallets(net)["load-0000"].sign(
        "receivable.draft", {"debtor": "core", "amount": 5, "due_day": 90}
    )
    executed, _ = ledger.chain.propose([ledger.chain.admit(stx.raw)], 0, "bank-a")
    ledger.commit(executed.hash, certify(net, 0, 1, executed.hash))
    ledger.store.sync()
    executed, _ = ledger.chain.propose([], 0, "bank-a")
    ledger.commit(executed.hash, certify(net, 0, 2, executed.hash))  # committed, not synced
    assert ledger.head.height == 2
    disk.crash(random.Random(0), keep_some_unsynced=0.0)
    reopened = Ledger(net.config, net.keys, tmp_path / "unused", store=disk.open())
    assert reopened.head.height == 1
    assert reopened.store.tx_locations(stx.tx_id) == [(1, 0)]
