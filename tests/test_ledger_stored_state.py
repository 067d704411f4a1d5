"""A running node's state on disk: reads through a bounded cache give what an in-memory state
would, opening a store reads no state, and the stored accumulator is checked."""

from __future__ import annotations

import sqlite3
import tracemalloc

import pytest

from consortium import codec
from consortium.budget import CacheBudget
from consortium.client.wallet import Wallet
from consortium.ledger.ledger import Ledger, store_path
from consortium.ledger.store import Store, StoreError
from consortium.ledger.verify import verify_store
from consortium.node.ledger_app import LedgerApp
from tests.ledger_helpers import certify, devnet, wallets

SMALL = CacheBudget(200_000)  # a state cache of 60 kB: a few dozen receivables


def _commit_drafts(net, ledger: Ledger, w, blocks: int, per_block: int) -> None:
    suppliers = ["supplier-a", "supplier-b", "supplier-c"]
    for b in range(blocks):
        raws = [
            w[suppliers[i % 3]]
            .sign(
                "receivable.draft",
                {"debtor": "core", "amount": 1000 + b * per_block + i, "due_day": 10**6},
            )
            .raw
            for i in range(per_block)
        ]
        txs = [ledger.chain.admit(raw) for raw in raws]
        executed, excluded = ledger.chain.propose(txs, view=0, proposer="bank-a")
        assert not excluded
        height = executed.header.height
        ledger.commit(executed.hash, certify(net, 0, height, executed.hash))


@pytest.fixture
def drafted(tmp_path):
    """A store of 12 blocks of 40 receivables each, written through a small state cache."""
    net = devnet(tmp_path)
    path = store_path(net.config, "bank-a")
    ledger = Ledger(net.config, net.keys, path, budget=SMALL)
    _commit_drafts(net, ledger, wallets(net), blocks=12, per_block=40)
    return net, path, ledger


def test_reads_through_a_small_cache_match_the_replayed_state(drafted):
    net, path, ledger = drafted
    state = ledger.chain.state
    assert 0 < state.cached_bytes <= SMALL.state
    replayed = Store(path, readonly=True).load_state()  # every entry, in memory
    assert len(list(replayed.items())) > 480
    assert state.root == replayed.root == ledger.head.state_root
    for key, value in replayed.items():
        assert state.get(key) == value, key
        assert state.digest_of(key) == replayed.digest_of(key), key
    assert state.get("rcv/none-such") is None and state.digest_of("rcv/none-such") is None
    assert state.keys_with_prefix("rcv/") == replayed.keys_with_prefix("rcv/")
    assert dict(state.items()) == dict(replayed.items())
    assert verify_store(net.config, net.keys, path).ok
    ledger.close()


def test_opening_a_store_reads_no_state_entry(drafted, monkeypatch):
    net, path, ledger = drafted
    head = ledger.head
    ledger.close()

    def no_scan(self):
        raise AssertionError("opening read the whole state")

    monkeypatch.setattr(Store, "state_rows", no_scan)
    monkeypatch.setattr(Store, "load_state", no_scan)
    reopened = Ledger(net.config, net.keys, path, budget=SMALL)
    assert reopened.head == head and reopened.chain.state.root == head.state_root
    assert reopened.chain.state.cached_bytes == 0
    _commit_drafts(net, reopened, wallets_after(net, reopened), blocks=1, per_block=5)
    reopened.close()


def wallets_after(net, ledger: Ledger):
    """Wallets that go on from the nonces the ledger has."""
    w = wallets(net)
    for member_id, wallet in w.items():
        wallet.next_nonce = (ledger.chain.state.get(f"nonce/{member_id}") or 0) + 1
    return w


def _set_meta(path, key: str, value) -> None:
    db = sqlite3.connect(path)
    if value is None:
        db.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (codec.encode(value), key))
    db.commit()
    db.close()


def test_a_store_without_an_accumulator_gets_one_computed_once(drafted):
    net, path, ledger = drafted
    head = ledger.head
    kept = ledger.store.stored_accumulator()
    ledger.close()
    _set_meta(path, "state_accumulator", None)
    reopened = Ledger(net.config, net.keys, path, budget=SMALL)
    assert reopened.chain.state.root == head.state_root
    assert reopened.store.stored_accumulator() == kept
    reopened.close()


def test_a_wrong_or_damaged_accumulator_is_refused_at_open_and_by_verify(drafted):
    net, path, ledger = drafted
    kept = ledger.store.stored_accumulator()
    ledger.close()
    _set_meta(path, "state_accumulator", (kept ^ 1).to_bytes(256, "little"))
    with pytest.raises(StoreError, match="does not match the state root"):
        Ledger(net.config, net.keys, path, budget=SMALL)
    report = verify_store(net.config, net.keys, path)
    assert not report.ok and "accumulator" in report.errors[-1]
    _set_meta(path, "state_accumulator", b"short")
    with pytest.raises(StoreError, match="accumulator is damaged"):
        Ledger(net.config, net.keys, path, budget=SMALL)


@pytest.mark.slow
def test_node_memory_stays_within_its_budget_as_the_chain_grows(tmp_path):
    """9,000 receivables committed through the node's application: once the first 20 blocks have
    filled its caches and its memos of recent blocks, what Python holds grows by far less than
    a receivable's record (about 1.2 kB) per transaction."""
    net = devnet(tmp_path)
    budget = CacheBudget.of_mb(1)
    ledger = Ledger(net.config, net.keys, store_path(net.config, "bank-a"), budget=budget)
    app = LedgerApp(ledger)
    w = wallets(net)
    suppliers = ["supplier-a", "supplier-b", "supplier-c"]
    per_block = 200

    def run(blocks: int, start: int) -> None:
        for b in range(start, start + blocks):
            raws = []
            for i in range(per_block):
                args = {"debtor": "core", "amount": 1000 + b * per_block + i, "due_day": 10**6}
                raws.append(w[suppliers[i % 3]].sign("receivable.draft", args).raw)
                app.admit(raws[-1])
            height = ledger.head.height + 1
            block = app.propose(height, 0, "bank-a", raws)
            app.commit(height, block, certify(net, 0, height, app.digest(block)))

    tracemalloc.start()
    run(20, 0)
    before = tracemalloc.get_traced_memory()[0]
    run(25, 20)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert ledger.store.tx_count() == 45 * per_block
    per_tx = grown / (25 * per_block)
    print(f"{per_tx:.0f} bytes per committed transaction")
    assert per_tx < 100, f"{per_tx:.0f} bytes per committed transaction"
    ledger.close()


def test_a_block_reads_the_ids_it_creates_in_one_pass_and_still_refuses_a_taken_one(drafted):
    """Executing a block of drafts looks up none of its fresh ids one by one (they are read at
    once before it runs); the answers are the table's, so an id already taken is still refused."""
    net, _, ledger = drafted
    store = ledger.store
    single_reads: list[str] = []
    read_one = store.state_value

    def counted(key: str) -> bytes | None:
        single_reads.append(key)
        return read_one(key)

    store.state_value = counted  # type: ignore[method-assign]
    signer = Wallet(net.config.chain_id, "supplier-a", net.member_pairs["supplier-a"], 10_000)
    stxs = [
        signer.sign("receivable.draft", {"debtor": "core", "amount": 77 + i, "due_day": 10**6})
        for i in range(30)
    ]
    taken = stxs[7]
    taken_key = "rcv/" + f"rcv-{taken.tx_id.hex()[:16]}"
    with store._transaction():  # as if an earlier transaction had derived the same id
        store.db.execute(
            "INSERT INTO state (key, value) VALUES (?, ?)", (taken_key, codec.encode({"x": 1}))
        )
    executed, excluded = ledger.chain.propose(
        [ledger.chain.admit(s.raw) for s in stxs], view=0, proposer="bank-a"
    )
    assert not excluded
    assert [k for k in single_reads if k.startswith("rcv/")] == []
    refused = [r for r in executed.receipts if not r.ok]
    assert [r.tx_id for r in refused] == [taken.tx_id]
    assert "is taken" in refused[0].reason
