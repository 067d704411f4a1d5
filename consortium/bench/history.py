"""A network with a long history, made quickly: millions of committed transactions in every
node's store, for measuring what a long chain costs (a restart, memory) without first running
the network for hours.

One node's ledger commits blocks of receivable drafts signed by the suppliers, each block with a
commit certificate signed by a quorum of the network's node keys, exactly as the network would
have committed them, and the last checkpoint those blocks reach is made stable by a quorum of
signed CHECKPOINTs, as a running network leaves it in the replicas' records (without one, the
replicas' watermarks would stay at genesis and no block above the window could be ordered). The
store is then copied to every node (honest nodes' stores of the same chain are equal).
Signatures are verified over every core, as a node validating them would.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from consortium import codec
from consortium.certificate import sign_certificate
from consortium.client.wallet import Wallet
from consortium.crypto import KeyPair
from consortium.devnet import Devnet
from consortium.ledger.ledger import Ledger, store_path
from consortium.parallel import PoolVerifier
from consortium.pbft.messages import Checkpoint, sign
from consortium.pbft.replica import STABLE_RECORD
from consortium.roles import quorum_size

SUPPLIERS = ("supplier-a", "supplier-b", "supplier-c")


@dataclass(frozen=True, slots=True)
class History:
    height: int
    txs: int
    build_s: float
    store_mb: float


def build_history(net: Devnet, txs: int, block_txs: int = 2000, progress=None) -> History:
    """Commit `txs` receivable drafts in blocks of `block_txs` into every node's store."""
    started = time.perf_counter()
    config = net.config
    first = config.node_ids[0]
    path = store_path(config, first)
    wallets = [Wallet(config.chain_id, s, net.member_pairs[s], first_nonce=1) for s in SUPPLIERS]
    signers = dict(sorted(net.node_pairs.items())[: quorum_size(len(net.node_pairs))])
    pool = PoolVerifier()
    ledger = Ledger(config, net.keys, path, verifier=pool)
    try:
        chain = ledger.chain
        done = 0
        while done < txs:
            count = min(block_txs, txs - done)
            raws = []
            for i in range(count):
                args = {"debtor": "core", "amount": 1000 + done + i, "due_day": 10**6}
                raws.append(wallets[i % len(wallets)].sign("receivable.draft", args).raw)
            authenticated = chain.authenticate(raws, chain.state)
            authenticated.wait()
            executed, excluded = chain.propose(authenticated.txs, 0, first)
            if excluded:
                raise RuntimeError(f"history block left out {excluded[0][1]}")
            height = executed.header.height
            certificate = sign_certificate(config.chain_id, 0, height, executed.hash, signers)
            ledger.commit(executed.hash, certificate)
            done += count
            if progress is not None:
                progress(done, txs)
        height = ledger.head.height
        _stable_checkpoint(net, ledger, signers)
        ledger.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        ledger.close()
        pool.close()
    for node in config.node_ids[1:]:
        target = store_path(config, node)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return History(height, txs, time.perf_counter() - started, path.stat().st_size / 2**20)


def _stable_checkpoint(net: Devnet, ledger: Ledger, signers: dict[str, KeyPair]) -> None:
    """The replicas' record of a stable checkpoint at the last multiple of the interval."""
    seq = ledger.head.height - ledger.head.height % net.config.consensus.checkpoint_interval
    stored = ledger.store.block(seq)
    if seq == 0 or stored is None:
        return
    body = Checkpoint(seq, stored.hash)
    proof = [sign(key, net.config.chain_id, node, body) for node, key in sorted(signers.items())]
    record = codec.encode_flat((seq, stored.hash, tuple(p.to_wire() for p in proof)))
    ledger.store.write_consensus_records([(STABLE_RECORD, record)])
