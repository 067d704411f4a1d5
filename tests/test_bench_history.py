"""The long-history builder behind `bench restart`: a chain every node could have committed."""

from __future__ import annotations

from consortium.bench.history import build_history
from consortium.ledger.ledger import Ledger, store_path
from consortium.ledger.verify import verify_store
from consortium.node.ledger_app import LedgerApp
from consortium.pbft.replica import Replica
from consortium.roles import quorum_size
from tests.ledger_helpers import devnet


def test_every_node_gets_the_same_valid_history(tmp_path):
    net = devnet(tmp_path)
    history = build_history(net, txs=2500, block_txs=1000)
    assert (history.height, history.txs) == (3, 2500)
    contents = {store_path(net.config, n).read_bytes() for n in net.config.node_ids}
    assert len(contents) == 1
    report = verify_store(net.config, net.keys, store_path(net.config, "regulator"))
    assert report.ok, report.errors
    assert (report.height, report.txs_checked) == (3, 2500)
    ledger = Ledger(net.config, net.keys, store_path(net.config, "core"))
    assert len(ledger.chain.state.keys_with_prefix("rcv/")) == 2500
    ledger.close()


def test_the_history_ends_at_a_stable_checkpoint_the_replicas_resume_from(tmp_path):
    """A history longer than the watermark window: without the stable checkpoint the replicas
    would refuse every sequence number above genesis + window, and nothing more would commit."""
    net = devnet(tmp_path)
    build_history(net, txs=41 * 50, block_txs=50)  # 41 blocks: past the window of 32
    ledger = Ledger(net.config, net.keys, store_path(net.config, "bank-b"))
    replica = Replica(
        "bank-b",
        net.keys.node_keys,
        net.node_pairs["bank-b"],
        net.config.chain_id,
        net.config.consensus,
        LedgerApp(ledger),
        records=ledger.store.consensus_records(),
    )
    assert replica.stable_seq == 40 and replica.executed == 41
    assert len(replica.stable_proof) == quorum_size(len(net.config.node_ids))
    assert replica._in_window(42) and replica._in_window(72)
    ledger.close()
