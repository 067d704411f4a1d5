"""PBFT protocol messages: frozen dataclasses, the same types for sending and receiving.

Every message travels inside `Signed` {sender, body, signature}. The signed bytes are
domain-separated per message type and bound to the chain id, so a signature over one kind of
message never verifies as another. A COMMIT is the exception that proves the rule: its signature
is the node's signature over `commit_statement(...)`, so commit votes assemble directly into the
`CommitCertificate` stored with each block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from consortium import codec
from consortium.certificate import CommitCertificate, commit_statement
from consortium.crypto import HASH_BYTES, SIGNATURE_BYTES, KeyPair
from consortium.errors import CodecError

MAX_PBFT_MESSAGE_BYTES = codec.MAX_MESSAGE_BYTES
MAX_PBFT_ITEMS = 4096
MAX_FETCH_BLOCKS = 16
MAX_FORWARDED_REQUESTS = 4096


def _int(value: Any, what: str) -> int:
    codec.expect_type(value, int, what)
    if value < 0:
        raise CodecError(f"{what}: negative")
    return value


def _digest(value: Any, what: str) -> bytes:
    codec.expect_type(value, bytes, what)
    if len(value) != HASH_BYTES:
        raise CodecError(f"{what}: not {HASH_BYTES} bytes")
    return value


def _bytes(value: Any, what: str) -> bytes:
    return codec.expect_type(value, bytes, what)


def _array(value: Any, what: str, limit: int) -> tuple:
    codec.expect_type(value, tuple, what)
    if len(value) > limit:
        raise CodecError(f"{what}: more than {limit} items")
    return value


@dataclass(frozen=True, slots=True)
class PrePrepare:
    """The primary assigns `seq` to `block` in `view`; the signature covers the digest only."""

    KIND: ClassVar[int] = 1
    view: int
    seq: int
    digest: bytes
    block: bytes

    def to_wire(self) -> tuple:
        return (self.view, self.seq, self.digest, self.block)

    def signed_part(self) -> tuple:
        return (self.view, self.seq, self.digest)

    def without_block(self) -> PrePrepare:
        """The same assignment by digest only: its signature still verifies, its size is fixed."""
        return PrePrepare(self.view, self.seq, self.digest, b"")

    @staticmethod
    def from_wire(value: Any) -> PrePrepare:
        view, seq, digest, block = codec.expect_tuple(value, 4, "preprepare")
        return PrePrepare(
            _int(view, "view"), _int(seq, "seq"), _digest(digest, "digest"), _bytes(block, "block")
        )


@dataclass(frozen=True, slots=True)
class _Vote:
    """A vote for the block with `digest` at `seq` in `view`: PREPARE and COMMIT share it."""

    view: int
    seq: int
    digest: bytes

    def to_wire(self) -> tuple:
        return (self.view, self.seq, self.digest)

    def signed_part(self) -> tuple:
        return self.to_wire()

    @classmethod
    def from_wire(cls, value: Any) -> Any:
        view, seq, digest = codec.expect_tuple(value, 3, cls.__name__.lower())
        return cls(_int(view, "view"), _int(seq, "seq"), _digest(digest, "digest"))


@dataclass(frozen=True, slots=True)
class Prepare(_Vote):
    KIND: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class Commit(_Vote):
    """A commit vote; its signature is over `commit_statement`, reusable in a certificate."""

    KIND: ClassVar[int] = 3


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The block hash at `seq` (a hash chain, so it stands for the whole state)."""

    KIND: ClassVar[int] = 4
    seq: int
    digest: bytes

    def to_wire(self) -> tuple:
        return (self.seq, self.digest)

    signed_part = to_wire

    @staticmethod
    def from_wire(value: Any) -> Checkpoint:
        seq, digest = codec.expect_tuple(value, 2, "checkpoint")
        return Checkpoint(_int(seq, "seq"), _digest(digest, "digest"))


@dataclass(frozen=True, slots=True)
class PreparedProof:
    """A prepared certificate: the pre-prepare and matching PREPAREs from other replicas.

    A replica keeps its own with the block; a VIEW-CHANGE quotes them `without_block`."""

    preprepare: Signed
    prepares: tuple[Signed, ...]

    def without_block(self) -> PreparedProof:
        pp = self.preprepare.body
        assert isinstance(pp, PrePrepare)
        return PreparedProof(self.preprepare.with_body(pp.without_block()), self.prepares)

    def to_wire(self) -> tuple:
        return (self.preprepare.to_wire(), tuple(p.to_wire() for p in self.prepares))

    @staticmethod
    def from_wire(value: Any) -> PreparedProof:
        pp, prepares = codec.expect_tuple(value, 2, "prepared proof")
        return PreparedProof(
            Signed.from_wire(pp),
            tuple(Signed.from_wire(p) for p in _array(prepares, "prepares", 1024)),
        )


@dataclass(frozen=True, slots=True)
class ViewChange:
    """Sender moves to `new_view`, reporting its stable checkpoint and prepared certificates.

    The certificates name their blocks by digest: a VIEW-CHANGE's size does not depend on the
    block size, and a replica that lacks a block the new view re-issues fetches it
    (`FetchProposals`) from the replicas that prepared it."""

    KIND: ClassVar[int] = 5
    new_view: int
    stable_seq: int
    stable_digest: bytes
    checkpoint_proof: tuple[Signed, ...]
    prepared: tuple[PreparedProof, ...]

    def to_wire(self) -> tuple:
        return (
            self.new_view,
            self.stable_seq,
            self.stable_digest,
            tuple(c.to_wire() for c in self.checkpoint_proof),
            tuple(p.to_wire() for p in self.prepared),
        )

    signed_part = to_wire

    @staticmethod
    def from_wire(value: Any) -> ViewChange:
        view, seq, digest, proof, prepared = codec.expect_tuple(value, 5, "view change")
        return ViewChange(
            _int(view, "new_view"),
            _int(seq, "stable_seq"),
            _digest(digest, "stable_digest"),
            tuple(Signed.from_wire(c) for c in _array(proof, "checkpoint proof", 1024)),
            tuple(PreparedProof.from_wire(p) for p in _array(prepared, "prepared", 4096)),
        )


@dataclass(frozen=True, slots=True)
class NewView:
    """The new primary's proof (a quorum of VIEW-CHANGEs) and the pre-prepares it re-issues.

    A re-issued prepared block travels by digest only (an empty `block`); a null block, small
    and new, travels whole."""

    KIND: ClassVar[int] = 6
    view: int
    view_changes: tuple[Signed, ...]
    preprepares: tuple[Signed, ...]

    def to_wire(self) -> tuple:
        return (
            self.view,
            tuple(v.to_wire() for v in self.view_changes),
            tuple(p.to_wire() for p in self.preprepares),
        )

    signed_part = to_wire

    @staticmethod
    def from_wire(value: Any) -> NewView:
        view, vcs, pps = codec.expect_tuple(value, 3, "new view")
        return NewView(
            _int(view, "view"),
            tuple(Signed.from_wire(v) for v in _array(vcs, "view changes", 1024)),
            tuple(Signed.from_wire(p) for p in _array(pps, "preprepares", 4096)),
        )


@dataclass(frozen=True, slots=True)
class Status:
    """Heartbeat: lets peers push a NEW-VIEW to a replica left in an old view, and lets a
    lagging replica notice it is behind and fetch blocks."""

    KIND: ClassVar[int] = 7
    view: int
    in_view_change: bool
    executed: int
    stable_seq: int

    def to_wire(self) -> tuple:
        return (self.view, self.in_view_change, self.executed, self.stable_seq)

    signed_part = to_wire

    @staticmethod
    def from_wire(value: Any) -> Status:
        view, changing, executed, stable = codec.expect_tuple(value, 4, "status")
        codec.expect_type(changing, bool, "in_view_change")
        return Status(
            _int(view, "view"), changing, _int(executed, "executed"), _int(stable, "stable")
        )


@dataclass(frozen=True, slots=True)
class FetchBlocks:
    """State transfer: send me committed blocks from `from_height` on, with certificates."""

    KIND: ClassVar[int] = 8
    from_height: int

    def to_wire(self) -> tuple:
        return (self.from_height,)

    signed_part = to_wire

    @staticmethod
    def from_wire(value: Any) -> FetchBlocks:
        (height,) = codec.expect_tuple(value, 1, "fetch")
        return FetchBlocks(_int(height, "from_height"))


@dataclass(frozen=True, slots=True)
class CommittedBlocks:
    """State transfer reply; each block proves itself with its commit certificate."""

    KIND: ClassVar[int] = 9
    blocks: tuple[tuple[bytes, CommitCertificate], ...]

    def to_wire(self) -> tuple:
        return tuple((block, cert.to_wire()) for block, cert in self.blocks)

    signed_part = to_wire

    @staticmethod
    def from_wire(value: Any) -> CommittedBlocks:
        out = []
        for item in _array(value, "blocks", MAX_FETCH_BLOCKS):
            block, cert = codec.expect_tuple(item, 2, "committed block")
            out.append((_bytes(block, "block"), CommitCertificate.from_wire(cert)))
        return CommittedBlocks(tuple(out))


@dataclass(frozen=True, slots=True)
class ForwardRequests:
    """Client requests a replica hands to the primary (and re-hands after a view change)."""

    KIND: ClassVar[int] = 10
    requests: tuple[bytes, ...]

    def to_wire(self) -> tuple:
        return self.requests

    signed_part = to_wire

    @staticmethod
    def from_wire(value: Any) -> ForwardRequests:
        items = _array(value, "requests", MAX_FORWARDED_REQUESTS)
        return ForwardRequests(tuple(_bytes(r, "request") for r in items))


@dataclass(frozen=True, slots=True)
class FetchProposals:
    """Send me the blocks proposed at these (seq, digest) pairs: a new view re-issues them and
    this replica does not hold them."""

    KIND: ClassVar[int] = 11
    wanted: tuple[tuple[int, bytes], ...]

    def to_wire(self) -> tuple:
        return self.wanted

    signed_part = to_wire

    @staticmethod
    def from_wire(value: Any) -> FetchProposals:
        out = []
        for item in _array(value, "wanted", MAX_FETCH_BLOCKS):
            seq, digest = codec.expect_tuple(item, 2, "wanted proposal")
            out.append((_int(seq, "seq"), _digest(digest, "digest")))
        return FetchProposals(tuple(out))


@dataclass(frozen=True, slots=True)
class Proposal:
    """One block proposed at `seq`, answering `FetchProposals`; its digest says which it is."""

    KIND: ClassVar[int] = 12
    seq: int
    block: bytes

    def to_wire(self) -> tuple:
        return (self.seq, self.block)

    signed_part = to_wire

    @staticmethod
    def from_wire(value: Any) -> Proposal:
        seq, block = codec.expect_tuple(value, 2, "proposal")
        return Proposal(_int(seq, "seq"), _bytes(block, "block"))


Message = (
    PrePrepare
    | Prepare
    | Commit
    | Checkpoint
    | ViewChange
    | NewView
    | Status
    | FetchBlocks
    | CommittedBlocks
    | ForwardRequests
    | FetchProposals
    | Proposal
)
MESSAGE_TYPES: dict[int, Any] = {
    cls.KIND: cls
    for cls in (
        PrePrepare,
        Prepare,
        Commit,
        Checkpoint,
        ViewChange,
        NewView,
        Status,
        FetchBlocks,
        CommittedBlocks,
        ForwardRequests,
        FetchProposals,
        Proposal,
    )
}
DOMAINS = {kind: f"consortium/pbft/{cls.__name__.lower()}" for kind, cls in MESSAGE_TYPES.items()}


def signing_bytes(chain_id: str, sender: str, body: Message) -> bytes:
    """What `sender` signs for `body`: a COMMIT signs the certificate statement, the rest a
    domain-separated tuple."""
    if isinstance(body, Commit):
        return commit_statement(chain_id, body.view, body.seq, body.digest)
    return codec.encode_flat((DOMAINS[body.KIND], chain_id, sender, body.signed_part()))


@dataclass(frozen=True, slots=True)
class Signed:
    sender: str
    body: Message
    signature: bytes

    def to_wire(self) -> tuple:
        return (self.body.KIND, self.sender, self.body.to_wire(), self.signature)

    def encode(self) -> bytes:
        return codec.encode_flat(self.to_wire())

    def with_body(self, body: Message) -> Signed:
        """The same signature over another body with the same signed part (a pre-prepare with
        or without its block)."""
        assert body.signed_part() == self.body.signed_part()
        return Signed(self.sender, body, self.signature)

    @staticmethod
    def from_wire(value: Any) -> Signed:
        kind, sender, body, signature = codec.expect_tuple(value, 4, "signed message")
        codec.expect_type(kind, int, "kind")
        cls = MESSAGE_TYPES.get(kind)
        if cls is None:
            raise CodecError(f"unknown message kind {kind}")
        codec.expect_type(sender, str, "sender")
        codec.expect_type(signature, bytes, "signature")
        if len(signature) != SIGNATURE_BYTES:
            raise CodecError("signature: wrong length")
        return Signed(sender, cls.from_wire(body), signature)

    @staticmethod
    def decode(data: bytes) -> Signed:
        return Signed.from_wire(
            codec.decode(data, max_bytes=MAX_PBFT_MESSAGE_BYTES, max_items=MAX_PBFT_ITEMS)
        )


def sign(key: KeyPair, chain_id: str, sender: str, body: Message) -> Signed:
    return Signed(sender, body, key.sign(signing_bytes(chain_id, sender, body)))
