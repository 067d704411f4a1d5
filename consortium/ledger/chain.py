"""The chain as a deterministic state machine: propose, validate, commit, with speculation.

PBFT keeps several heights in flight, so a block is validated on top of its parent even when the
parent is only validated, not yet committed: each validated block keeps its `Layer` of writes.
Committing folds the layer into the committed `State`; a view change that replaces uncommitted
blocks drops their layers.

The state transition is one readable function, `execute`: check each transaction's sender, nonce
and signature (ledger errors: the block is invalid), run the contract (business errors: a failed
receipt, no state change), then compare the header's roots with what execution produced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from consortium import contracts
from consortium.contracts.context import RuleViolation, SignatureCheck, TxContext
from consortium.crypto import verify
from consortium.errors import CodecError, RemoteError
from consortium.ledger.block import (
    GENESIS_PARENT,
    Block,
    BlockHeader,
    Receipt,
    receipts_root,
    split_block,
    tx_root,
)
from consortium.ledger.signatures import (
    BatchVerifier,
    SerialVerifier,
    VerifiedCache,
    VerifyJob,
    transaction_job,
)
from consortium.ledger.state import Layer, Overlay, State
from consortium.ledger.stored_state import StoredState
from consortium.ledger.tx import SignedTransaction, decode_transaction

NONCE_PREFIX = "nonce/"


class InvalidBlock(RemoteError):
    """A proposed or stored block that a correct node must not accept; the reason says why."""


class InvalidTransaction(RemoteError):
    """A transaction no block may contain: malformed, forged, replayed, or from a non-member.
    `reason` is a short name for counting rejections by kind."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class MissingParent(RemoteError):
    """The block builds on a block this node has not validated (yet)."""


@dataclass(frozen=True, slots=True)
class ExecutedBlock:
    block: Block
    receipts: tuple[Receipt, ...]
    layer: Layer

    @property
    def header(self) -> BlockHeader:
        return self.block.header

    @property
    def hash(self) -> bytes:
        return self.block.hash


CommittedState = State | StoredState
View = CommittedState | Layer


VERIFY_CHUNK = 256


Excluded = list[tuple[SignedTransaction, str]]


def _no_forged_claims() -> set[VerifyJob]:
    return set()


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A block's transactions, decoded, while their signatures are being verified."""

    txs: list[SignedTransaction]
    # Carried signatures (a debtor's confirmation, an owner's consent) sent for verification.
    claims_in_flight: set[VerifyJob]
    # Waits for every verdict: raises InvalidBlock on a bad transaction signature, remembers
    # the carried signatures that verified and returns those that did not (the contract's
    # business: a failed receipt, not an invalid block).
    wait: Callable[[], set[VerifyJob]]


def last_nonce(view: View | Overlay, sender: str) -> int:
    return view.get(NONCE_PREFIX + sender) or 0


def execute(
    parent: View,
    parent_header: BlockHeader,
    txs: Sequence[SignedTransaction],
    chain_id: str,
    check_signature: SignatureCheck = verify,
) -> tuple[Overlay, list[Receipt], list[tuple[SignedTransaction, str]]]:
    """Run `txs` in order on top of `parent`. Returns the block's writes, the receipts of the
    transactions that belong in the block, and those that do not (with the ledger error).
    `check_signature` checks the signatures that contracts find inside transactions."""
    height = parent_header.height + 1
    _prefetch_created(parent, txs)
    block_view = Overlay(parent)
    receipts: list[Receipt] = []
    excluded: list[tuple[SignedTransaction, str]] = []
    for stx in txs:
        tx = stx.tx
        if tx.chain_id != chain_id:
            excluded.append((stx, f"transaction for chain {tx.chain_id!r}"))
            continue
        nonce_key = NONCE_PREFIX + tx.sender
        last = block_view.get(nonce_key) or 0
        if tx.nonce <= last:
            excluded.append(
                (stx, f"replayed or stale nonce {tx.nonce} of {tx.sender} (last {last})")
            )
            continue
        ctx = TxContext(tx.sender, stx.tx_id, height, len(receipts), check_signature)
        block_view.begin()
        try:
            result = contracts.execute(block_view, ctx, tx.op, tx.args)
        except RuleViolation as violation:
            block_view.roll_back()
            receipts.append(Receipt(stx.tx_id, False, violation.reason, None))
        else:
            block_view.keep()
            receipts.append(Receipt(stx.tx_id, True, "", result))
        block_view.put(nonce_key, tx.nonce)
    return block_view, receipts, excluded


def _prefetch_created(parent: View, txs: Sequence[SignedTransaction]) -> None:
    """Read at once, from a node's state on disk, what the block's transactions will look up
    one by one: the ids they create (fresh, so never cached) and their senders' nonces."""
    committed = parent
    while isinstance(committed, Layer):
        committed = committed.base
    if isinstance(committed, StoredState):
        keys = [NONCE_PREFIX + stx.tx.sender for stx in txs]
        for stx in txs:
            keys += contracts.created_keys(stx.tx.op, stx.tx_id)
        committed.prefetch(keys)


class Chain:
    """One node's ledger: committed state and head, plus validated blocks not yet committed."""

    def __init__(
        self,
        chain_id: str,
        state: CommittedState,
        head: BlockHeader,
        verifier: BatchVerifier | None = None,
        cache: VerifiedCache | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.state = state
        self.head = head
        self.verifier = verifier or SerialVerifier()
        self.cache = cache if cache is not None else VerifiedCache()
        self.pending: dict[bytes, ExecutedBlock] = {}

    @staticmethod
    def genesis_header(chain_id: str, state: State) -> BlockHeader:
        return BlockHeader(
            chain_id=chain_id,
            height=0,
            parent_hash=GENESIS_PARENT,
            tx_root=tx_root([]),
            receipts_root=receipts_root([]),
            state_root=state.root,
            business_day=contracts.business_day(state),
            proposer="genesis",
            view=0,
        )

    # -- views ---------------------------------------------------------------------------

    def parent_of(self, parent_hash: bytes) -> tuple[View, BlockHeader]:
        if parent_hash == self.head.hash:
            return self.state, self.head
        pending = self.pending.get(parent_hash)
        if pending is None:
            raise MissingParent(
                f"parent {parent_hash.hex()[:16]} is neither the head nor validated"
            )
        return pending.layer, pending.header

    def tip(self) -> tuple[View, BlockHeader]:
        """The highest validated block (or the head): where a primary builds next."""
        best: ExecutedBlock | None = None
        for pending in self.pending.values():
            if best is None or pending.header.height > best.header.height:
                best = pending
        return (best.layer, best.header) if best else (self.state, self.head)

    # -- admission -----------------------------------------------------------------------

    def admit(self, raw: bytes, view: View | None = None) -> SignedTransaction:
        """Decode and authenticate one transaction for the mempool; remember the verdict."""
        view = view if view is not None else self.state
        cached = self.cache.get(raw)
        if cached is not None:
            stx, key = cached
            if contracts.member_public_key(view, stx.tx.sender) == key:
                return stx
        try:
            stx = decode_transaction(raw)
        except CodecError as exc:
            raise InvalidTransaction(
                f"malformed transaction: {exc}", "malformed_transaction"
            ) from None
        key = self._sender_key(view, stx)
        if stx.tx.nonce <= last_nonce(view, stx.tx.sender):
            raise InvalidTransaction(
                f"stale nonce {stx.tx.nonce} of {stx.tx.sender}", "stale_nonce"
            )
        jobs = [transaction_job(stx, key)]
        claim = self._unknown_claim(view, stx)
        if claim is not None:
            jobs.append(claim)
        verdicts = self.verifier.verify_many(jobs)
        if not verdicts[0]:
            raise InvalidTransaction(
                f"bad signature on transaction {stx.tx_id.hex()[:16]}", "bad_tx_signature"
            )
        if claim is not None:
            self.cache.remember_claim(claim, verdicts[1])
        self.cache.add(stx, key)
        return stx

    def _unknown_claim(self, view: View, stx: SignedTransaction) -> VerifyJob | None:
        """The signature the transaction carries for its contract, if not verified already."""
        claim = contracts.signature_claim(view, stx.tx.op, stx.tx.args)
        if claim is None or self.cache.knows_claim(claim) or self.cache.knows_forged(claim):
            return None
        return claim

    def _sender_key(self, view: View, stx: SignedTransaction) -> bytes:
        if stx.tx.chain_id != self.chain_id:
            raise InvalidTransaction(f"transaction for chain {stx.tx.chain_id!r}", "wrong_chain")
        key = contracts.member_public_key(view, stx.tx.sender)
        if key is None:
            raise InvalidTransaction(f"sender {stx.tx.sender!r} is not a member", "unknown_sender")
        return key

    def authenticate(self, raws: Iterable[bytes], view: View) -> Authenticated:
        """Decode every transaction and start checking every signature not checked before (the
        transactions' own and those they carry for their contracts), so that the caller can
        execute while the signatures are being verified. Keys are those of `view` (the parent
        state): a key rotation takes effect from the next block."""
        txs: list[SignedTransaction] = []
        jobs: list[VerifyJob] = []
        # For each job: the transaction whose own signature it is (with its index), or None
        # for a carried signature.
        owners: list[tuple[int, SignedTransaction] | None] = []
        claims: set[VerifyJob] = set()
        waits: list[Callable[[], list[bool]]] = []
        dispatched = 0
        get_cached = self.cache.get
        member_key = contracts.member_public_key
        for raw in raws:
            cached = get_cached(raw)
            if cached is not None:
                stx, key = cached
                if member_key(view, stx.tx.sender) == key:
                    txs.append(stx)
                    continue
            try:
                stx = decode_transaction(raw)
                key = self._sender_key(view, stx)
            except (CodecError, InvalidTransaction) as exc:
                raise InvalidBlock(f"transaction at index {len(txs)}: {exc}") from None
            jobs.append(transaction_job(stx, key))
            owners.append((len(txs), stx))
            claim = self._unknown_claim(view, stx)
            if claim is not None and claim not in claims:
                claims.add(claim)
                jobs.append(claim)
                owners.append(None)
            txs.append(stx)
            if len(jobs) - dispatched >= VERIFY_CHUNK:
                # Hand signatures to the verifier while decoding goes on: the cores start early.
                waits.append(self.verifier.start(jobs[dispatched:]))
                dispatched = len(jobs)
        if dispatched < len(jobs):
            waits.append(self.verifier.start(jobs[dispatched:]))

        def finish() -> set[VerifyJob]:
            verdicts = [ok for wait in waits for ok in wait()]
            forged: set[VerifyJob] = set()
            for job, owner, ok in zip(jobs, owners, verdicts, strict=True):
                if owner is None:
                    self.cache.remember_claim(job, ok)
                    if not ok:
                        forged.add(job)
                    continue
                index, stx = owner
                if not ok:
                    raise InvalidBlock(
                        f"bad signature on transaction {stx.tx_id.hex()[:16]} at index {index}"
                    )
                self.cache.add(stx, job[0])
            return forged

        return Authenticated(txs, claims, finish if jobs else _no_forged_claims)

    # -- propose / validate / commit ------------------------------------------------------

    def propose(
        self, txs: Sequence[SignedTransaction], view: int, proposer: str
    ) -> tuple[ExecutedBlock, list[tuple[SignedTransaction, str]]]:
        """Build the next block on the tip from admitted transactions, leaving out any that no
        longer belong (replayed nonce, revoked key): a correct primary never proposes those."""
        parent, parent_header = self.tip()
        keep, excluded = self._signed_by_current_keys(parent, txs)
        writes, receipts, skipped = execute(
            parent, parent_header, keep, self.chain_id, self.cache.check_signature
        )
        excluded += skipped
        skipped_ids = {id(s) for s, _ in skipped}
        included = tuple(s for s in keep if id(s) not in skipped_ids)
        layer = Layer(parent, writes.writes)
        header = BlockHeader(
            chain_id=self.chain_id,
            height=parent_header.height + 1,
            parent_hash=parent_header.hash,
            tx_root=tx_root(included),
            receipts_root=receipts_root(receipts),
            state_root=layer.root,
            business_day=contracts.business_day(layer),
            proposer=proposer,
            view=view,
        )
        executed = ExecutedBlock(Block(header, included), tuple(receipts), layer)
        self.pending[executed.hash] = executed
        return executed, excluded

    def _signed_by_current_keys(
        self, parent: View, txs: Sequence[SignedTransaction]
    ) -> tuple[list[SignedTransaction], Excluded]:
        """The transactions whose sender is a member and whose signature verifies under the
        sender's key in `parent`: known from admission if the verified cache still holds them,
        checked again if it let them go or the key changed since."""
        known: list[tuple[SignedTransaction, bytes | None, bool]] = []
        unchecked: list[VerifyJob] = []
        for stx in txs:
            key = contracts.member_public_key(parent, stx.tx.sender)
            cached = self.cache.get(stx.raw)
            check = key is not None and (cached is None or cached[1] != key)
            known.append((stx, key, check))
            if check:
                unchecked.append(transaction_job(stx, key))  # type: ignore[arg-type]
        verdicts = iter(self.verifier.verify_many(unchecked) if unchecked else ())
        keep: list[SignedTransaction] = []
        excluded: Excluded = []
        for stx, key, check in known:
            if key is None:
                excluded.append((stx, f"sender {stx.tx.sender!r} is not a member"))
            elif check and not next(verdicts):
                excluded.append((stx, "signature does not verify under the sender's key"))
            else:
                if check:
                    self.cache.add(stx, key)
                keep.append(stx)
        return keep, excluded

    def validate(self, data: bytes) -> ExecutedBlock:
        """Check a proposed block completely; raises InvalidBlock (or MissingParent) and then
        leaves every state untouched. A valid block is kept as pending until commit."""
        try:
            header, raws = split_block(data)
        except CodecError as exc:
            raise InvalidBlock(f"malformed block: {exc}") from None
        known = self.pending.get(header.hash)
        if known is not None:
            return known
        return self.validate_parts(header, raws)

    def validate_parts(self, header: BlockHeader, raws: Sequence[bytes]) -> ExecutedBlock:
        if header.chain_id != self.chain_id:
            raise InvalidBlock(f"block for chain {header.chain_id!r}")
        if header.height <= self.head.height:
            raise InvalidBlock(f"height {header.height} is not above the head {self.head.height}")
        parent, parent_header = self.parent_of(header.parent_hash)
        if header.height != parent_header.height + 1:
            raise InvalidBlock(
                f"height {header.height} does not follow parent {parent_header.height}"
            )
        auth = self.authenticate(raws, parent)
        txs = auth.txs
        if tx_root(txs) != header.tx_root:
            raise InvalidBlock("transaction Merkle root does not match the header")
        in_flight, check = auth.claims_in_flight, self.cache.check_signature

        def run(check_signature: SignatureCheck) -> tuple[list[Receipt], Excluded, Layer, bool]:
            writes, receipts, excluded = execute(
                parent, parent_header, txs, self.chain_id, check_signature
            )
            receipts_match = receipts_root(receipts) == header.receipts_root
            return receipts, excluded, Layer(parent, writes.writes), receipts_match

        def optimistic(public_key: bytes, message: bytes, signature: bytes) -> bool:
            """A carried signature still being verified counts as good for now."""
            claim = (public_key, message, signature)
            return claim in in_flight or check(*claim)

        # Execution and the roots do not wait for the signatures' verdicts: they run while the
        # workers verify, and the verdicts are judged first once they are in.
        receipts, excluded, layer, receipts_match = run(optimistic)
        forged = auth.wait()
        if forged:
            # Rare: a carried signature taken as good is forged. Execute again with the verdicts.
            def verdict(public_key: bytes, message: bytes, signature: bytes) -> bool:
                claim = (public_key, message, signature)
                return claim not in forged and check(*claim)

            receipts, excluded, layer, receipts_match = run(verdict)
        if excluded:
            stx, why = excluded[0]
            raise InvalidBlock(f"transaction {stx.tx_id.hex()[:16]}: {why}")
        if not receipts_match:
            raise InvalidBlock("receipts Merkle root does not match the header")
        if layer.root != header.state_root:
            raise InvalidBlock("state root does not match the header")
        day = contracts.business_day(layer)
        if header.business_day != day:
            raise InvalidBlock(f"business day {header.business_day}, execution gives {day}")
        executed = ExecutedBlock(Block(header, tuple(txs)), tuple(receipts), layer)
        self.pending[executed.hash] = executed
        return executed

    def commit(self, block_hash: bytes) -> ExecutedBlock:
        """Make a validated child of the head committed; its siblings are dropped."""
        executed = self.pending.get(block_hash)
        if executed is None or executed.header.parent_hash != self.head.hash:
            raise InvalidBlock(
                f"block {block_hash.hex()[:16]} is not a validated child of the head"
            )
        self.state.fold(executed.layer)
        self.head = executed.header
        del self.pending[block_hash]
        survivors: dict[bytes, ExecutedBlock] = {}
        for other_hash, other in sorted(self.pending.items(), key=lambda kv: kv[1].header.height):
            parent_hash = other.header.parent_hash
            if parent_hash == self.head.hash:
                other.layer.rebase(self.state)
                survivors[other_hash] = other
            elif parent_hash in survivors:
                survivors[other_hash] = other
        self.pending = survivors
        return executed

    def discard_above(self, height: int) -> None:
        """Forget validated blocks above `height` (a view change replaced them)."""
        for block_hash, pending in list(self.pending.items()):
            if pending.header.height > height:
                del self.pending[block_hash]
