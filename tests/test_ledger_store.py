"""The store: atomic blocks, restart from disk, and `ledger verify` catching any flipped byte."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from consortium.certificate import CommitCertificate
from consortium.ledger.block import BlockHeader, Receipt
from consortium.ledger.ledger import Ledger, store_path
from consortium.ledger.state import Layer, State
from consortium.ledger.store import Store, StoreError
from consortium.ledger.verify import verify_store
from tests.ledger_helpers import certify, devnet, wallets


@pytest.fixture
def filled(tmp_path):
    """A node's store with three committed blocks of successful and failed transactions."""
    net = devnet(tmp_path)
    path = store_path(net.config, "bank-a")
    ledger = Ledger(net.config, net.keys, path)
    w = wallets(net)
    for day in (1, 2, 3):
        raws = [
            w["regulator"].sign("clock.advance", {"days": day}).raw,
            w["supplier-a"].sign("clock.advance", {"days": 1}).raw,
            w["bank-b"].sign("member.freeze", {"member": "supplier-c"}).raw,
        ]
        txs = [ledger.chain.admit(raw) for raw in raws]
        executed, _ = ledger.chain.propose(txs, view=0, proposer="bank-a")
        ledger.commit(executed.hash, certify(net, 0, executed.header.height, executed.hash))
    head = ledger.head
    ledger.close()
    return net, path, head


def test_restart_resumes_at_the_head(filled):
    net, path, head = filled
    reopened = Ledger(net.config, net.keys, path)
    assert reopened.head == head
    assert reopened.chain.state.root == head.state_root
    assert reopened.head.business_day == 6
    reopened.close()


def test_verify_passes_on_an_honest_store(filled):
    net, path, head = filled
    report = verify_store(net.config, net.keys, path)
    assert report.ok, report.errors
    assert report.height == 3
    assert report.head_hash == head.hash.hex()
    assert report.txs_checked == 9


def _flip(path, column: str, height: int, position: int) -> None:
    db = sqlite3.connect(path)
    (blob,) = db.execute(f"SELECT {column} FROM blocks WHERE height = ?", (height,)).fetchone()
    data = bytearray(blob)
    data[position % len(data)] ^= 0x01 << (position % 8)
    db.execute(f"UPDATE blocks SET {column} = ? WHERE height = ?", (bytes(data), height))
    db.commit()
    db.close()


@pytest.mark.parametrize("column", ["header", "txs", "receipts", "certificate"])
def test_any_flipped_byte_fails_verify_and_names_the_block(filled, tmp_path, column):
    net, path, _ = filled
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    pristine = path.read_bytes()
    (size,) = (
        sqlite3.connect(path)
        .execute(f"SELECT length({column}) FROM blocks WHERE height = 2")
        .fetchone()
    )
    positions = random.Random(column).sample(range(size), min(size, 12))
    for position in positions:
        path.write_bytes(pristine)
        _flip(path, column, 2, position)
        report = verify_store(net.config, net.keys, path)
        assert not report.ok, f"flip of byte {position} in {column} went unnoticed"
        assert any(e.startswith("block 2") for e in report.errors), report.errors


def test_tampered_state_table_is_caught(filled):
    net, path, _ = filled
    db = sqlite3.connect(path)
    db.execute("UPDATE state SET value = X'05' WHERE key = 'clock'")
    db.commit()
    db.close()
    report = verify_store(net.config, net.keys, path)
    assert not report.ok
    assert "clock" in report.errors[-1]


def test_store_of_another_chain_is_refused(filled, tmp_path):
    _, path, _ = filled
    other = devnet(tmp_path / "other")
    with pytest.raises(StoreError, match="another chain"):
        Ledger(other.config, other.keys, path)


# -- the store alone: consensus records, atomic blocks, the tx index ---------------------------


def _header(height: int, parent: bytes = bytes(32)) -> BlockHeader:
    return BlockHeader("c", height, parent, bytes(32), bytes(32), bytes(32), 0, "n", 0)


def _append(store: Store, height: int, tx_ids: list[bytes], writes: dict) -> None:
    """A synthetic block at `height`: one raw per id, a receipt per id, `writes` to the state."""
    header = _header(height)
    receipts = tuple(Receipt(t, True, "", None) for t in tx_ids)
    certificate = CommitCertificate(0, height, header.hash, (("n", bytes(64)),))
    raws = tuple(b"tx" + t for t in tx_ids)
    store.append(header, raws, tx_ids, receipts, certificate, Layer(State(), writes))


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "ledger.sqlite")
    state = State()
    state.apply({"a": 1, "b": 2})
    store.initialise("c", _header(0), state)
    yield store
    store.close()


def test_consensus_records_last_write_wins_within_a_call(store):
    store.write_consensus_records([("gone", b"0"), ("kept", b"0"), ("twice", b"0")])
    store.write_consensus_records(
        [
            ("gone", b"1"),
            ("gone", None),  # written, then deleted: deleted
            ("kept", None),
            ("kept", b"2"),  # deleted, then written: written
            ("twice", b"1"),
            ("twice", b"3"),
            ("new", None),
            ("new", b"4"),
            ("absent", None),
        ]
    )
    assert store.consensus_records() == {"kept": b"2", "twice": b"3", "new": b"4"}


def test_consensus_records_survive_reopening(store, tmp_path):
    store.write_consensus_records([("pp/000000000001", b"x" * 300_000), ("view", b"v")])
    store.write_consensus_records([("pp/000000000001", None)])
    store.close()
    reopened = Store(tmp_path / "ledger.sqlite")
    assert reopened.consensus_records() == {"view": b"v"}
    reopened.close()


def test_a_block_that_fails_midway_leaves_nothing_behind(store):
    _append(store, 1, [b"1" * 32], {"a": 10})
    before = (store.height(), store.tx_count(), store.load_state().root)
    header = _header(2)
    layer = Layer(State(), {"a": 20, "b": None, "c": 30})
    layer.encoded["zz-unstorable"] = object()  # type: ignore[assignment]  # sorts last
    receipts = (Receipt(b"2" * 32, True, "", None),)
    certificate = CommitCertificate(0, 2, header.hash, (("n", bytes(64)),))
    with pytest.raises(sqlite3.Error):
        store.append(header, (b"tx2",), [b"2" * 32], receipts, certificate, layer)
    assert (store.height(), store.tx_count(), store.load_state().root) == before
    assert store.block(2) is None
    assert store.tx_locations(b"2" * 32) == []
    assert store.load_state().get("a") == 10


def test_tx_index_keeps_the_first_position_per_block_and_every_block(store):
    a, b, c = (bytes([i]) * 32 for i in (3, 1, 2))
    _append(store, 1, [a, b, a, c], {"x": 1})
    _append(store, 2, [c, a], {"x": None, "y": 2})
    assert store.tx_locations(a) == [(1, 0), (2, 1)]
    assert store.tx_locations(b) == [(1, 1)]
    assert store.tx_locations(c) == [(1, 3), (2, 0)]
    assert store.tx_locations(bytes(32)) == []
    assert store.tx_count() == 5
    state = store.load_state()
    assert (state.get("x"), state.get("y"), state.get("a")) == (None, 2, 1)
    assert [blk.height for blk in store.blocks()] == [0, 1, 2]
    assert store.block(1).txs == (b"tx" + a, b"tx" + b, b"tx" + a, b"tx" + c)


_WRITER = """
import sys
from pathlib import Path
from consortium.certificate import CommitCertificate
from consortium.ledger.block import BlockHeader, Receipt
from consortium.ledger.state import Layer, State
from consortium.ledger.store import Store

store = Store(Path(sys.argv[1]))
height = store.height()
while True:
    height += 1
    header = BlockHeader("c", height, bytes(32), bytes(32), bytes(32), bytes(32), 0, "n", 0)
    ids = [height.to_bytes(4, "big") + i.to_bytes(28, "big") for i in range(500)]
    writes = {f"k/{height}/{i}": "v" * 100 for i in range(500)}
    writes["head"] = height
    store.write_consensus_records([(f"pp/{height:012d}", b"p" * 100_000)])
    store.append(
        header, tuple(b"tx" + t for t in ids), ids,
        tuple(Receipt(t, True, "", None) for t in ids),
        CommitCertificate(0, height, header.hash, (("n", bytes(64)),)),
        Layer(State(), writes),
    )
    print(height, flush=True)
"""


def test_kill_9_leaves_whole_blocks_and_a_matching_state(store, tmp_path):
    """A writer killed at arbitrary points: every stored block is whole, the state is its head's."""
    path = tmp_path / "ledger.sqlite"
    store.close()
    for _ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        for _ in range(random.randrange(2, 6)):
            writer.stdout.readline()
        time.sleep(random.random() * 0.05)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        reopened = Store(path)
        height = reopened.height()
        state = reopened.load_state()
        assert height >= 2
        assert state.get("head") == height
        assert reopened.tx_count() == 500 * height
        assert len(state.keys_with_prefix("k/")) == 500 * height
        for stored in reopened.blocks(1):
            assert len(stored.txs) == 500
            assert len(stored.decoded_receipts()) == 500
        assert f"pp/{height:012d}" in reopened.consensus_records()
        reopened.close()
