"""`ledger verify`: recheck a node's store from genesis without trusting the node.

Everything is derived again from the stored bytes and the public keys: header links, Merkle roots
of transactions and receipts, every transaction signature, every commit certificate, and the state
root by re-executing every block; the stored state table is compared with the re-executed state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from consortium.certificate import certificate_problems
from consortium.config import NetworkConfig
from consortium.errors import RemoteError
from consortium.keys import KeyDirectory
from consortium.ledger.block import receipts_root
from consortium.ledger.chain import Chain
from consortium.ledger.ledger import genesis_state
from consortium.ledger.signatures import BatchVerifier
from consortium.ledger.store import Store


@dataclass(slots=True)
class VerifyReport:
    ok: bool = True
    height: int = -1
    head_hash: str = ""
    blocks_checked: int = 0
    txs_checked: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.ok = False
        self.errors.append(message)

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "height": self.height,
            "head_hash": self.head_hash,
            "blocks_checked": self.blocks_checked,
            "txs_checked": self.txs_checked,
            "errors": self.errors,
        }


def verify_store(
    config: NetworkConfig, keys: KeyDirectory, path: Path, verifier: BatchVerifier | None = None
) -> VerifyReport:
    report = VerifyReport()
    try:
        store = Store(path, readonly=True)
    except RemoteError as exc:
        report.fail(str(exc))
        return report
    try:
        _verify(config, keys, store, report, verifier)
    finally:
        store.close()
    return report


def _verify(
    config: NetworkConfig,
    keys: KeyDirectory,
    store: Store,
    report: VerifyReport,
    verifier: BatchVerifier | None,
) -> None:
    state = genesis_state(config, keys)
    chain = Chain(config.chain_id, state, Chain.genesis_header(config.chain_id, state), verifier)
    top = store.height()
    for height in range(top + 1):
        where = f"block {height}"
        try:
            stored = store.block(height)
        except RemoteError as exc:
            report.fail(f"{where}: {exc}")
            return
        if stored is None:
            report.fail(f"{where}: missing from the store (height {top})")
            return
        try:
            header = stored.decoded_header()
        except RemoteError as exc:
            report.fail(f"{where}: header is corrupt: {exc}")
            return
        if header.hash != stored.hash:
            report.fail(f"{where}: stored hash does not match its header")
        if stored.height == 0:
            if header != chain.head:
                report.fail("block 0: genesis does not match nodes.yaml and the public keys")
                return
            report.blocks_checked += 1
            continue
        if header.parent_hash != chain.head.hash:
            report.fail(f"{where}: parent hash does not link to block {chain.head.height}")
            return
        try:
            executed = chain.validate_parts(header, stored.txs)
        except RemoteError as exc:
            report.fail(f"{where}: {exc}")
            return
        try:
            receipts = stored.decoded_receipts()
        except RemoteError as exc:
            report.fail(f"{where}: receipts are corrupt: {exc}")
            receipts = None
        if receipts is not None:
            if receipts_root(receipts) != header.receipts_root:
                report.fail(f"{where}: stored receipts do not match the receipts root")
            elif receipts != executed.receipts:
                report.fail(f"{where}: stored receipts differ from re-execution")
        try:
            certificate = stored.decoded_certificate()
        except RemoteError as exc:
            report.fail(f"{where}: commit certificate is corrupt: {exc}")
            certificate = None
        if certificate is None:
            if stored.certificate is None:
                report.fail(f"{where}: no commit certificate")
        elif certificate.block_hash != header.hash or certificate.height != header.height:
            report.fail(f"{where}: commit certificate is for another block")
        else:
            for problem in certificate_problems(certificate, config.chain_id, keys.node_keys):
                report.fail(f"{where}: commit certificate: {problem}")
        chain.commit(executed.hash)
        report.blocks_checked += 1
        report.txs_checked += len(stored.txs)
    report.height = chain.head.height
    report.head_hash = chain.head.hash.hex()
    try:
        stored_state = store.load_state()
    except RemoteError as exc:
        report.fail(f"state table: {exc}")
        return
    if stored_state.root != chain.state.root:
        bad = [k for k, v in chain.state.items() if stored_state.get(k) != v]
        extra = [k for k, _ in stored_state.items() if chain.state.get(k) is None]
        report.fail(f"state table differs from re-execution at keys {(bad + extra)[:5]}")
