"""The chaos checker reads stores itself: it must see a lost, a misplaced and a duplicated
transaction, and disagreeing heads, without any network running."""

from __future__ import annotations

from pathlib import Path

import pytest

from consortium.certificate import CommitCertificate, commit_statement
from consortium.chaos.checker import check_ledgers
from consortium.client.client import Outcome
from consortium.client.wallet import Wallet
from consortium.devnet import Devnet, make_devnet
from consortium.ledger.ledger import Ledger, store_path


def _certificate(net: Devnet, view: int, height: int, block_hash: bytes) -> CommitCertificate:
    statement = commit_statement(net.config.chain_id, view, height, block_hash)
    signatures = tuple(
        sorted((n, net.node_pairs[n].sign(statement)) for n in sorted(net.config.node_ids)[:4])
    )
    return CommitCertificate(view, height, block_hash, signatures)


def _commit_block(net: Devnet, ledger: Ledger, txs: list) -> bytes:
    admitted = [ledger.chain.admit(tx.raw, ledger.chain.tip()[0]) for tx in txs]
    executed, excluded = ledger.chain.propose(admitted, 0, "bank-a")
    assert not excluded
    ledger.commit(executed.hash, _certificate(net, 0, executed.header.height, executed.hash))
    return executed.hash


@pytest.fixture
def net(tmp_path: Path) -> Devnet:
    return make_devnet(tmp_path / "net", load_signers=2)


def _draft(net: Devnet, signer: str, amount: int):
    wallet = Wallet(net.config.chain_id, signer, net.member_pairs[signer])
    return wallet.sign("receivable.draft", {"debtor": "core", "amount": amount, "due_day": 90})


def _outcome(tx_id: bytes, height: int, block_hash: bytes) -> Outcome:
    return Outcome(tx_id, height, block_hash, 0, True, "", None)


def _ledgers(net: Devnet) -> dict[str, Ledger]:
    return {n: Ledger(net.config, net.keys, store_path(net.config, n)) for n in net.config.node_ids}


def test_every_node_holding_each_acknowledged_transaction_once_passes(net: Devnet) -> None:
    tx = _draft(net, "load-0000", 5)
    ledgers = _ledgers(net)
    hashes = {_commit_block(net, ledger, [tx]) for ledger in ledgers.values()}
    for ledger in ledgers.values():
        ledger.close()
    report = check_ledgers(net.config, net.keys, {tx.tx_id: _outcome(tx.tx_id, 1, hashes.pop())})
    assert report.ok, report.problems
    assert (report.lost, report.duplicated, report.misplaced) == (0, 0, 0)


def test_a_transaction_missing_on_one_node_is_lost_and_heads_differ(net: Devnet) -> None:
    tx = _draft(net, "load-0000", 5)
    ledgers = _ledgers(net)
    block_hash = b""
    for node_id, ledger in ledgers.items():
        if node_id != "core":
            block_hash = _commit_block(net, ledger, [tx])
        ledger.close()
    report = check_ledgers(net.config, net.keys, {tx.tx_id: _outcome(tx.tx_id, 1, block_hash)})
    assert report.lost == 1
    assert report.heights["core"] == 0
    assert not report.heads_equal
    assert not report.ok


def test_an_acknowledgement_at_another_height_is_misplaced(net: Devnet) -> None:
    tx = _draft(net, "load-0000", 5)
    ledgers = _ledgers(net)
    block_hash = b""
    for ledger in ledgers.values():
        block_hash = _commit_block(net, ledger, [tx])
        ledger.close()
    report = check_ledgers(net.config, net.keys, {tx.tx_id: _outcome(tx.tx_id, 7, block_hash)})
    assert report.misplaced == 1
    assert report.lost == 0
    assert not report.ok
