"""Shared set-up for ledger tests: a devnet, wallets, and commit certificates signed for real."""

from __future__ import annotations

from pathlib import Path

from consortium.certificate import CommitCertificate, sign_certificate
from consortium.client.wallet import Wallet
from consortium.devnet import Devnet, make_devnet
from consortium.ledger.chain import Chain
from consortium.ledger.ledger import genesis_state
from consortium.roles import quorum_size


def wallets(net: Devnet) -> dict[str, Wallet]:
    return {
        member_id: Wallet(net.config.chain_id, member_id, pair, first_nonce=1)
        for member_id, pair in net.member_pairs.items()
    }


def fresh_chain(net: Devnet) -> Chain:
    state = genesis_state(net.config, net.keys)
    return Chain(net.config.chain_id, state, Chain.genesis_header(net.config.chain_id, state))


def certify(net: Devnet, view: int, height: int, block_hash: bytes) -> CommitCertificate:
    """A certificate signed by the first quorum of nodes, as PBFT's commit votes would be."""
    signers = sorted(net.node_pairs)[: quorum_size(len(net.node_pairs))]
    pairs = {n: net.node_pairs[n] for n in signers}
    return sign_certificate(net.config.chain_id, view, height, block_hash, pairs)


def devnet(tmp: Path, load_signers: int = 0) -> Devnet:
    return make_devnet(tmp / "net", nodes=5, load_signers=load_signers)
