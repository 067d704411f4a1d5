"""A node's WAL checkpoints: copied by a second connection on a worker thread while the writer
goes on, finished by the writer between its writes, so the WAL starts again and stays short; the
node's store gets its share of the cache budget."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from consortium.budget import CacheBudget
from consortium.certificate import CommitCertificate
from consortium.devnet import make_devnet
from consortium.ledger.block import BlockHeader, Receipt
from consortium.ledger.state import Layer, State
from consortium.ledger.store import _CHECKPOINT_PAGES, _SAFETY_CHECKPOINT_PAGES, Store
from consortium.ledger.wal import CHECKPOINT_ROWS, WalCheckpointer
from consortium.node.process import Node
from consortium.transport import credentials


class Blocks:
    """Blocks of random transaction ids and random state keys: each dirties many pages."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rng = random.Random(7)
        self.parent = bytes(32)
        self.height = 0
        self.keys: list[str] = []
        state = State()
        state.apply({"bal/a": 1})
        genesis = BlockHeader("wal", 0, bytes(32), bytes(32), bytes(32), state.root, 0, "", 0)
        store.initialise("wal", genesis, state)

    def append(self, txs: int = 200) -> None:
        self.height += 1
        rng = self.rng
        tx_ids = [rng.randbytes(32) for _ in range(txs)]
        writes = {f"rcv/{rng.randbytes(8).hex()}": {"amount": i} for i in range(txs)}
        self.keys += writes
        header = BlockHeader(
            "wal", self.height, self.parent, rng.randbytes(32), rng.randbytes(32),
            rng.randbytes(32), 1, "bank-a", 0,
        )  # fmt: skip
        self.parent = header.hash
        raws = tuple(rng.randbytes(120) for _ in range(txs))
        receipts = tuple(Receipt(t, True, "", None) for t in tx_ids)
        certificate = CommitCertificate(0, self.height, header.hash, ())
        self.store.append(header, raws, tx_ids, receipts, certificate, Layer(State(), writes))


def wal_bytes(path: Path) -> int:
    """The WAL file's size: it grows while frames are appended, and stays put once the WAL
    starts again (new frames then overwrite it from its beginning)."""
    return path.with_name(path.name + "-wal").stat().st_size


def copy_while_writing(checkpointer: WalCheckpointer, blocks: Blocks) -> tuple[int, int]:
    """Background passes on a worker thread while the writer goes on appending blocks."""
    outcome: list[tuple[int, int]] = []
    worker = threading.Thread(target=lambda: outcome.append(checkpointer.copy_until_quiet()))
    worker.start()
    while worker.is_alive():
        blocks.append(20)
    worker.join()
    return outcome[0]


def test_a_store_with_background_checkpoints_leaves_them_to_the_checkpointer(tmp_path: Path):
    background = Store(tmp_path / "a.sqlite", background_checkpoints=True)
    inline = Store(tmp_path / "b.sqlite")
    assert background.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (
        _SAFETY_CHECKPOINT_PAGES
    )
    assert inline.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == _CHECKPOINT_PAGES
    assert _SAFETY_CHECKPOINT_PAGES > _CHECKPOINT_PAGES


def test_copying_on_a_worker_thread_then_finishing_starts_the_wal_again(tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    store = Store(path, background_checkpoints=True)
    blocks = Blocks(store)
    checkpointer = WalCheckpointer(path)
    for cycle in range(3):
        while not checkpointer.due(store):
            blocks.append()
        assert store.rows_written >= (cycle + 1) * CHECKPOINT_ROWS
        checkpointer.start(store)
        assert not checkpointer.due(store)
        passes, copied = copy_while_writing(checkpointer, blocks)
        assert passes >= 1 and copied > 1000
        assert (
            checkpointer.finish(store) == 0
        )  # every frame is in the file: the WAL may start again
        high_water = wal_bytes(path)
        for _ in range(5):  # new frames overwrite the WAL from its beginning
            blocks.append(20)
        assert wal_bytes(path) == high_water
    checkpointer.close()
    store.close()

    reopened = Store(path, readonly=True)
    assert reopened.height() == blocks.height
    stored = sum(len(reopened.block(h).txs) for h in range(1, blocks.height + 1))
    assert reopened.tx_count() == stored
    for key in blocks.keys[:: max(1, len(blocks.keys) // 200)]:
        assert reopened.state_value(key) is not None
    reopened.close()


def test_without_the_writers_own_pass_the_wal_keeps_growing(tmp_path: Path):
    """What `finish` is for: passes on another connection do not catch a writer that keeps
    writing, so the WAL never starts again."""
    path = tmp_path / "ledger.sqlite"
    store = Store(path, background_checkpoints=True)
    blocks = Blocks(store)
    checkpointer = WalCheckpointer(path)
    while not checkpointer.due(store):
        blocks.append()
    checkpointer.start(store)
    copy_while_writing(checkpointer, blocks)
    before = wal_bytes(path)
    for _ in range(5):
        blocks.append(20)
    assert wal_bytes(path) > before
    checkpointer.close()
    store.close()


def test_a_node_store_takes_its_share_of_the_cache_budget(tmp_path: Path):
    net = make_devnet(tmp_path / "net", nodes=4, cache_mb=64)
    node_id = net.config.node_ids[0]
    login = credentials.BrokerLogin(net.config.broker_url, node_id, "unused")
    node = Node(net.config, net.keys, node_id, login)
    try:
        kib = -node.ledger.store.db.execute("PRAGMA cache_size").fetchone()[0]
        assert kib == CacheBudget.of_mb(64).store_pages // 1024
        autocheckpoint = node.ledger.store.db.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert autocheckpoint[0] == _SAFETY_CHECKPOINT_PAGES
    finally:
        node.metrics.close()
        node.checkpointer.close()
        node.ledger.close()
