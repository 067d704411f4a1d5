"""A node's ledger: the chain state machine backed by its store, opened and resumed from disk."""

from __future__ import annotations

from pathlib import Path

from consortium import contracts
from consortium.budget import CacheBudget
from consortium.certificate import CommitCertificate, certificate_problems
from consortium.config import NetworkConfig
from consortium.keys import KeyDirectory
from consortium.ledger.block import BlockHeader
from consortium.ledger.chain import Chain, ExecutedBlock, InvalidBlock
from consortium.ledger.signatures import BatchVerifier, VerifiedCache
from consortium.ledger.state import State
from consortium.ledger.store import Store, StoreError
from consortium.ledger.stored_state import StoredState, accumulate


def genesis_state(config: NetworkConfig, keys: KeyDirectory) -> State:
    state = State()
    state.apply(contracts.genesis_writes(config, keys))
    return state


def store_path(config: NetworkConfig, node_id: str) -> Path:
    return config.data_dir / node_id / "ledger.sqlite"


class Ledger:
    """Chain + store: commits are written before they count, and a restart resumes at the head.

    Opening reads the head and the stored accumulator, not the state: a node with millions of
    transactions starts in the same time as a new one. The accumulator must give the head's
    state root (`consortium ledger verify` recomputes it from every entry)."""

    def __init__(
        self,
        config: NetworkConfig,
        keys: KeyDirectory,
        path: Path,
        verifier: BatchVerifier | None = None,
        store: Store | None = None,
        budget: CacheBudget | None = None,
    ) -> None:
        self.config = config
        self.keys = keys
        self.budget = budget = budget or CacheBudget.of_mb(config.cache_mb)
        self.store = store if store is not None else Store(path, cache_bytes=budget.store_pages)
        genesis = genesis_state(config, keys)
        genesis_header = Chain.genesis_header(config.chain_id, genesis)
        self.store.initialise(config.chain_id, genesis_header, genesis)
        self.genesis_hash = genesis_header.hash
        accumulator = self.store.stored_accumulator()
        if accumulator is None:
            accumulator = accumulate(self.store.state_rows())
            self.store.keep_accumulator(accumulator)
        state = StoredState(self.store, accumulator, budget.state)
        top = self.store.block(self.store.height())
        head = top.decoded_header() if top else genesis_header
        if state.root != head.state_root:
            raise StoreError(
                f"{path}: stored state does not match the state root of block {head.height}"
            )
        cache = VerifiedCache(budget.verified_txs)
        self.chain = Chain(config.chain_id, state, head, verifier, cache)

    @property
    def head(self) -> BlockHeader:
        return self.chain.head

    def commit(self, block_hash: bytes, certificate: CommitCertificate) -> ExecutedBlock:
        """Persist, then make committed: a crash between the two replays from the store."""
        executed = self.chain.pending.get(block_hash)
        if executed is None or executed.header.parent_hash != self.chain.head.hash:
            raise InvalidBlock(
                f"block {block_hash.hex()[:16]} is not a validated child of the head"
            )
        self.store.append(
            executed.header,
            tuple(t.raw for t in executed.block.txs),
            [t.tx_id for t in executed.block.txs],
            executed.receipts,
            certificate,
            executed.layer,
        )
        return self.chain.commit(block_hash)

    def install(self, block: bytes, certificate: CommitCertificate) -> ExecutedBlock:
        """State transfer: accept a block another node committed, proven by its certificate."""
        node_keys = self.keys.node_keys
        check = self.chain.verifier.verify_many
        problems = certificate_problems(certificate, self.config.chain_id, node_keys, check)
        if problems:
            raise InvalidBlock(f"certificate rejected: {problems[0]}")
        executed = self.chain.validate(block)
        if executed.hash != certificate.block_hash or executed.header.height != certificate.height:
            raise InvalidBlock("certificate is for another block")
        return self.commit(executed.hash, certificate)

    def close(self) -> None:
        self.store.close()
