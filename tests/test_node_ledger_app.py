"""PBFT over the real ledger, in one process: a block prepared in one view and re-issued by the
next primary is accepted by every replica (PBFT paper, section 4.4, view changes)."""

from __future__ import annotations

from consortium.client.wallet import Wallet
from consortium.devnet import make_devnet
from consortium.ledger.ledger import Ledger, store_path
from consortium.node.ledger_app import LedgerApp
from consortium.pbft.messages import Commit, Signed
from consortium.pbft.replica import Replica


def test_a_prepared_block_is_carried_into_the_next_view_and_commits(tmp_path):
    net = make_devnet(tmp_path / "net", nodes=4, load_signers=1)
    replicas = {}
    for node_id in net.config.node_ids:
        app = LedgerApp(Ledger(net.config, net.keys, store_path(net.config, node_id)))
        replicas[node_id] = Replica(
            node_id,
            net.keys.node_keys,
            net.node_pairs[node_id],
            net.config.chain_id,
            net.config.consensus,
            app,
        )
        replicas[node_id].start(0)
    first_primary = next(iter(replicas.values())).primary
    stx = Wallet(net.config.chain_id, "load-0000", net.member_pairs["load-0000"], 1).sign(
        "receivable.draft", {"debtor": "core", "amount": 5, "due_day": 90}
    )
    queue: list[tuple[str, str | None, bytes]] = []

    def run(sender, actions):
        queue.extend((sender, send.to, send.data) for send in actions.send)

    def deliver(now, drop_commits=False):
        while queue:
            sender, to, data = queue.pop(0)
            if drop_commits and isinstance(Signed.decode(data).body, Commit):
                continue
            for node_id, replica in replicas.items():
                if node_id != sender and to in (None, node_id):
                    run(node_id, replica.receive(data, now))

    for node_id, replica in replicas.items():  # clients broadcast their transactions
        run(node_id, replica.submit_many([stx.raw], 1, forward=False))
    run(first_primary, replicas[first_primary].timer("batch", 100))
    deliver(200, drop_commits=True)  # prepared everywhere, committed nowhere
    assert all(any(s.prepared for s in r.slots.values()) for r in replicas.values())
    assert all(r.executed == 0 for r in replicas.values())
    for node_id, replica in replicas.items():
        if node_id != first_primary:
            run(node_id, replica.timer("progress", 10**6))
    deliver(10**6)
    assert {r.view for r in replicas.values()} == {1}
    assert all(r.executed == 1 for r in replicas.values())
    heads = {r.app.ledger.head.hash for r in replicas.values()}
    assert len(heads) == 1
    receipts = next(iter(replicas.values())).app.recent[1].receipts
    assert [r.tx_id for r in receipts] == [stx.tx_id] and receipts[0].ok
