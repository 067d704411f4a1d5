"""The ledger as the application behind PBFT: blocks of signed business transactions.

Requests are raw signed transactions; a request's id is its transaction id. Decoding and
signature checks happen once per transaction (`Chain.admit` remembers them), and block decoding
is remembered for the few calls the replica makes about the same block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from consortium import codec
from consortium.certificate import CommitCertificate
from consortium.crypto import sha256
from consortium.errors import CodecError, RemoteError
from consortium.ledger import chain as ledger_chain
from consortium.ledger.block import BlockHeader, Receipt, split_block
from consortium.ledger.chain import ExecutedBlock
from consortium.ledger.ledger import Ledger
from consortium.ledger.tx import MAX_TX_BYTES, SignedTransaction
from consortium.pbft.app import InvalidBlock, InvalidRequest, MissingParent

# Blocks in flight (two by default) and those a view change re-proposes soon after: a block
# can be 1 MiB of transactions, and a decoded one holds them twice.
_DECODED_BLOCKS = 8
_RECENT_BLOCKS = 16
# A memo entry: the id (32 bytes), the sender (shared with the transaction) and the nonce, in a
# tuple in a dict slot.
_ADMITTED_ENTRY_BYTES = 200


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    """What a node tells clients of a block it committed lately: its receipts, no state."""

    height: int
    hash: bytes
    business_day: int
    receipts: tuple[Receipt, ...]

    @property
    def tx_ids(self) -> tuple[bytes, ...]:
        return tuple(r.tx_id for r in self.receipts)


class LedgerApp:
    """Implements `consortium.pbft.app.Application` over a node's `Ledger`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.chain = ledger.chain
        self._blocks: OrderedDict[bytes, tuple[BlockHeader, tuple[bytes, ...]]] = OrderedDict()
        self.committed_txs = ledger.store.tx_count()
        self.rejected_requests = 0
        # Recently admitted transactions' senders and nonces by id: a nonce still unused answers
        # `lookup_request` ("not committed") without a read of the transaction index.
        self._admitted: dict[bytes, tuple[str, int]] = {}
        self._admitted_limit = max(1, ledger.budget.admitted // _ADMITTED_ENTRY_BYTES)
        # The last committed blocks with their receipts, for the node's commit notices.
        self.recent: OrderedDict[int, CommittedBlock] = OrderedDict()

    # -- decoding, remembered ------------------------------------------------------------

    def _split(self, block: bytes) -> tuple[BlockHeader, tuple[bytes, ...]]:
        known = self._blocks.get(block)
        if known is not None:
            return known
        try:
            parts = split_block(block)
        except CodecError as exc:
            raise InvalidBlock(f"malformed block: {exc}") from None
        self._remember_block(block, parts)
        return parts

    def _remember_block(self, block: bytes, parts: tuple[BlockHeader, tuple[bytes, ...]]) -> None:
        self._blocks[block] = parts
        if len(self._blocks) > _DECODED_BLOCKS:
            self._blocks.popitem(last=False)

    def admit(self, request: bytes) -> SignedTransaction:
        """Mempool admission: decode, check the signature once, refuse stale nonces."""
        try:
            stx = self.chain.admit(request, self.chain.tip()[0])
        except ledger_chain.InvalidTransaction as exc:
            self.rejected_requests += 1
            raise InvalidRequest(str(exc), exc.reason) from None
        self._admitted[stx.tx_id] = (stx.tx.sender, stx.tx.nonce)
        if len(self._admitted) > self._admitted_limit:
            del self._admitted[next(iter(self._admitted))]
        return stx

    # -- Application -------------------------------------------------------------------

    def genesis_digest(self) -> bytes:
        return self.ledger.genesis_hash

    def propose(self, height: int, view: int, proposer: str, requests: Sequence[bytes]) -> bytes:
        self._require_tip(height)
        txs: list[SignedTransaction] = []
        seen: set[bytes] = set()
        for raw in requests:
            cached = self.chain.cache.get(raw)  # admitted already: `chain.propose` rechecks keys
            if cached is not None:
                stx = cached[0]
            else:
                try:
                    stx = self.admit(raw)
                except InvalidRequest:
                    continue
            if stx.tx_id in seen or self.lookup_request(stx.tx_id) is not None:
                continue
            seen.add(stx.tx_id)
            txs.append(stx)
        # One sender's transactions go in nonce order, or the later ones would be stale.
        txs.sort(key=lambda s: (s.tx.sender, s.tx.nonce))
        executed, _ = self.chain.propose(txs, view, proposer)
        block = executed.block.encode()
        self._remember_block(block, (executed.header, tuple(t.raw for t in executed.block.txs)))
        return block

    def _require_tip(self, height: int) -> None:
        _, top = self.chain.tip()
        if top.height != height - 1:
            self.chain.discard_above(height - 1)
            _, top = self.chain.tip()
            if top.height != height - 1:
                raise MissingParent(f"cannot build height {height} on top of {top.height}")

    def validate(self, height: int, view: int, proposer: str, block: bytes) -> bytes:
        header, raws = self._split(block)
        # A new primary re-issues a block prepared in an earlier view unchanged, so the header
        # may name an earlier view and that view's primary; a block of this view must be ours.
        reissued = header.view < view
        if (
            header.height != height
            or header.view > view
            or (not reissued and header.proposer != proposer)
        ):
            raise InvalidBlock(
                f"block says height {header.height} view {header.view} by {header.proposer},"
                f" expected height {height} view {view} by {proposer}"
            )
        try:
            executed = self._validated(header, raws)
        except ledger_chain.MissingParent as exc:
            raise MissingParent(str(exc)) from None
        except RemoteError as exc:
            raise InvalidBlock(str(exc)) from None
        return executed.hash

    def _validated(self, header: BlockHeader, raws: tuple[bytes, ...]) -> ExecutedBlock:
        known = self.chain.pending.get(header.hash)
        return known if known is not None else self.chain.validate_parts(header, raws)

    def digest(self, block: bytes) -> bytes:
        return self._split(block)[0].hash

    def parent(self, block: bytes) -> bytes:
        return self._split(block)[0].parent_hash

    def request_ids(self, block: bytes) -> list[bytes]:
        header = self._split(block)[0]
        pending = self.chain.pending.get(header.hash)
        if pending is not None:
            return [t.tx_id for t in pending.block.txs]
        return [self.request_id(raw) for raw in self._split(block)[1]]

    def request_id(self, request: bytes) -> bytes:
        cached = self.chain.cache.get(request)
        if cached is not None:
            return cached[0].tx_id
        try:
            outer = codec.decode(request, max_bytes=MAX_TX_BYTES)
            body = codec.expect_tuple(outer, 2, "transaction")[0]
            return sha256(codec.expect_type(body, bytes, "transaction.body"))
        except CodecError as exc:
            raise InvalidRequest(f"malformed transaction: {exc}") from None

    def lookup_request(self, request_id: bytes) -> int | None:
        admitted = self._admitted.get(request_id)
        if admitted is not None and admitted[1] > ledger_chain.last_nonce(
            self.chain.state, admitted[0]
        ):
            return None  # its nonce is still unused, so it cannot have been committed
        locations = self.ledger.store.tx_locations(request_id)
        return locations[0][0] if locations else None

    def commit(self, height: int, block: bytes, certificate: CommitCertificate) -> None:
        header = self._split(block)[0]
        if header.height != height:
            raise InvalidBlock(f"commit of height {header.height} as {height}")
        self._committed(self.ledger.commit(header.hash, certificate))

    def _committed(self, executed: ExecutedBlock) -> None:
        self.committed_txs += len(executed.block.txs)
        header = executed.header
        self.recent[header.height] = CommittedBlock(
            header.height, header.hash, header.business_day, executed.receipts
        )
        while len(self.recent) > _RECENT_BLOCKS:
            self.recent.popitem(last=False)

    def discard_speculation_above(self, height: int) -> None:
        self.chain.discard_above(max(height, self.chain.head.height))

    def committed_height(self) -> int:
        return self.chain.head.height

    def committed_block(self, height: int) -> tuple[bytes, CommitCertificate]:
        stored = self.ledger.store.block(height)
        if stored is None or stored.certificate is None:
            raise InvalidBlock(f"no committed block at height {height}")
        header = stored.decoded_header()
        block = codec.encode_flat((header.to_wire(), list(stored.txs)))
        return block, stored.decoded_certificate()  # type: ignore[return-value]

    def install(self, block: bytes, certificate: CommitCertificate) -> None:
        header, _ = self._split(block)
        if header.parent_hash != self.chain.head.hash:
            raise InvalidBlock(
                f"block {header.height} does not extend the head {self.chain.head.height}"
            )
        self.chain.discard_above(self.chain.head.height)
        try:
            executed = self.ledger.install(block, certificate)
        except RemoteError as exc:
            raise InvalidBlock(str(exc)) from None
        self._committed(executed)
