"""The long-history builder behind `bench restart`: a chain every node could have committed."""

from __future__ import annotations

from consortium.bench.history import build_history
from consortium.ledger.ledger import Ledger, store_path
from consortium.ledger.verify import verify_store
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
