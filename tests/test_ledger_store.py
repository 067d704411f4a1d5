"""The store: atomic blocks, restart from disk, and `ledger verify` catching any flipped byte."""

from __future__ import annotations

import random
import sqlite3

import pytest

from consortium.ledger.ledger import Ledger, store_path
from consortium.ledger.store import StoreError
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
