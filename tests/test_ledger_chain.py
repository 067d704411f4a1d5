"""The chain state machine: propose, validate, commit; failed receipts; every invalid-block reason."""

from __future__ import annotations

import dataclasses

import pytest

from consortium import codec
from consortium.crypto import KeyPair
from consortium.ledger.block import Block, BlockHeader, tx_root
from consortium.ledger.chain import InvalidBlock, InvalidTransaction, MissingParent
from consortium.ledger.signatures import VerifiedCache
from consortium.ledger.tx import Transaction
from tests.ledger_helpers import devnet, fresh_chain, wallets


@pytest.fixture
def net(tmp_path):
    return devnet(tmp_path)


def test_two_nodes_agree_on_a_proposed_block(net):
    primary, replica = fresh_chain(net), fresh_chain(net)
    w = wallets(net)
    txs = [
        primary.admit(w["regulator"].sign("clock.advance", {"days": 3}).raw),
        primary.admit(w["supplier-a"].sign("clock.advance", {"days": 1}).raw),
    ]
    executed, excluded = primary.propose(txs, view=0, proposer="bank-a")
    assert excluded == []
    validated = replica.validate(executed.block.encode())
    assert validated.hash == executed.hash
    assert validated.receipts == executed.receipts
    assert [r.ok for r in executed.receipts] == [True, False]
    assert "regulator" in executed.receipts[1].reason
    primary.commit(executed.hash)
    replica.commit(validated.hash)
    assert primary.state.root == replica.state.root == executed.header.state_root
    assert executed.header.business_day == 3


def test_failed_transaction_changes_no_business_state(net):
    chain = fresh_chain(net)
    w = wallets(net)
    before = dict(chain.state.items())
    executed, _ = chain.propose(
        [chain.admit(w["bank-a"].sign("clock.advance", {"days": 9}).raw)], 0, "bank-a"
    )
    chain.commit(executed.hash)
    assert not executed.receipts[0].ok
    after = dict(chain.state.items())
    assert after.pop("nonce/bank-a") == 1
    assert after == before


def test_pipelined_blocks_validate_on_uncommitted_parents(net):
    primary, replica = fresh_chain(net), fresh_chain(net)
    regulator = wallets(net)["regulator"]
    blocks = []
    for _ in range(3):
        tx = primary.admit(regulator.sign("clock.advance", {"days": 1}).raw)
        executed, _ = primary.propose([tx], 0, "bank-a")
        blocks.append(executed)
    assert [b.header.height for b in blocks] == [1, 2, 3]
    with pytest.raises(MissingParent):
        replica.validate(blocks[1].block.encode())
    for b in blocks:
        replica.validate(b.block.encode())
    for b in blocks:
        replica.commit(b.hash)
        primary.commit(b.hash)
    assert replica.state.root == primary.state.root
    assert replica.head.business_day == 3


def test_replayed_transaction_is_left_out_by_the_primary_and_invalid_in_a_block(net):
    chain, replica = fresh_chain(net), fresh_chain(net)
    tx = chain.admit(wallets(net)["regulator"].sign("clock.advance", {"days": 1}).raw)
    first, _ = chain.propose([tx], 0, "bank-a")
    replica.validate(first.block.encode())
    second, excluded = chain.propose([tx], 0, "bank-a")
    assert second.block.txs == ()
    assert "nonce" in excluded[0][1]
    forged = _reheader(first.block, second.header, txs=(tx,), tx_root=tx_root([tx]))
    with pytest.raises(InvalidBlock, match="nonce"):
        replica.validate(forged)


def _reheader(block: Block, header: BlockHeader, txs=None, **changes) -> bytes:
    """Encode a block with the given header (fields changed) and transactions."""
    header = dataclasses.replace(header, **changes)
    txs = block.txs if txs is None else txs
    return codec.encode_flat((header.to_wire(), [t.raw for t in txs]))


def test_non_member_and_foreign_chain_transactions_are_refused(net):
    chain = fresh_chain(net)
    stranger = Transaction(net.config.chain_id, "mallory", 1, "clock.advance", {"days": 1})
    with pytest.raises(InvalidTransaction, match="not a member"):
        chain.admit(stranger.sign(KeyPair.generate()).raw)
    other_chain = Transaction("elsewhere", "regulator", 1, "clock.advance", {"days": 1})
    with pytest.raises(InvalidTransaction, match="chain"):
        chain.admit(other_chain.sign(net.member_pairs["regulator"]).raw)


def test_garbage_block_bytes_are_invalid_not_a_crash(net):
    chain = fresh_chain(net)
    for data in (b"", b"\x00", b"\xc1", codec.encode([1, 2]), b"\x92" + b"\xff" * 10):
        with pytest.raises(InvalidBlock):
            chain.validate(data)
    assert chain.head.height == 0 and chain.pending == {}


def test_a_primary_checks_again_what_its_verified_cache_let_go(net):
    """A mempool larger than the verified cache: the transactions the cache evicted are verified
    again when proposed, not left out; one whose signature is forged is left out."""
    chain = fresh_chain(net)
    chain.cache = VerifiedCache(budget_bytes=0)  # remembers nothing
    w = wallets(net)
    good = chain.admit(w["regulator"].sign("clock.advance", {"days": 2}).raw)
    assert chain.cache.get(good.raw) is None
    signed = w["supplier-a"].sign("clock.advance", {"days": 1})
    forged = dataclasses.replace(signed, signature=KeyPair.generate().sign(b"other"))
    executed, excluded = chain.propose([good, forged], view=0, proposer="bank-a")
    assert [t.tx_id for t in executed.block.txs] == [good.tx_id]
    assert [(stx.tx_id, why) for stx, why in excluded] == [
        (forged.tx_id, "signature does not verify under the sender's key")
    ]
    assert executed.header.business_day == 2
