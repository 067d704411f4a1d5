"""The application behind consensus: what the replica needs from a ledger, and nothing more.

Blocks are opaque bytes to the replica. It orders them (one block per sequence number, block
height == sequence number), asks the application to build and check them, and tells it when one
is committed. The application keeps a speculative chain above its committed height: `propose`
and `validate` extend it one height at a time; a view change that replaces uncommitted blocks
calls `discard_speculation_above`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from consortium.certificate import CommitCertificate
from consortium.errors import RemoteError


class InvalidBlock(RemoteError):
    """A proposed or fetched block breaks a rule; the reason says which."""


class InvalidRequest(RemoteError):
    """A client request is malformed or not authorised by its client; `reason` names the kind."""

    def __init__(self, message: str, reason: str = "invalid_request") -> None:
        super().__init__(message)
        self.reason = reason


class MissingParent(Exception):
    """The previous height's block is not validated yet: keep the block and retry later."""


class Application(Protocol):
    def genesis_digest(self) -> bytes:
        """The digest block 1 builds on (the stable checkpoint of sequence number 0)."""
        ...

    def propose(self, height: int, view: int, proposer: str, requests: Sequence[bytes]) -> bytes:
        """Build the block at `height` on top of the speculative chain (height - 1 must be its
        top) from these requests, in order, skipping any that are invalid or already included.
        An empty `requests` makes the null block a new primary uses to fill a gap."""
        ...

    def validate(self, height: int, view: int, proposer: str, block: bytes) -> bytes:
        """Check `block` at `height` on top of the speculative chain and return its digest.

        `view` and `proposer` are those of the pre-prepare carrying the block. A new primary
        re-issues blocks prepared in earlier views unchanged, so a block may name an earlier view
        and another proposer: accept any block view <= `view`.
        Raises `InvalidBlock` for a bad block, `MissingParent` when height - 1 is not validated yet.
        On success the block becomes the speculative top (replacing any block at that height)."""
        ...

    def digest(self, block: bytes) -> bytes:
        """The block hash that commit votes sign. Raises `InvalidBlock` for undecodable bytes."""
        ...

    def parent(self, block: bytes) -> bytes:
        """The digest of the block this one builds on. Raises `InvalidBlock` for undecodable bytes."""
        ...

    def request_ids(self, block: bytes) -> list[bytes]:
        """The ids of the client requests in `block`, in order."""
        ...

    def request_id(self, request: bytes) -> bytes:
        """The id the application gives a client request; also the admission check (format,
        client signature), since replicas keep and forward only what passes. Raises
        `InvalidRequest`."""
        ...

    def lookup_request(self, request_id: bytes) -> int | None:
        """The height at which the request was committed, or None: the exactly-once index."""
        ...

    def commit(self, height: int, block: bytes, certificate: CommitCertificate) -> None:
        """Apply the validated speculative block at `height` (committed height + 1). The replica
        calls it inside the step that completes the certificate, before returning its actions."""
        ...

    def discard_speculation_above(self, height: int) -> None:
        """Forget speculative blocks above `height` (never below the committed height)."""
        ...

    def committed_height(self) -> int: ...

    def committed_block(self, height: int) -> tuple[bytes, CommitCertificate]:
        """A committed block and the certificate it was committed with (state transfer source)."""
        ...

    def install(self, block: bytes, certificate: CommitCertificate) -> None:
        """Append a block committed elsewhere at committed height + 1: check the certificate and
        the block, re-execute it, and drop all speculation. Raises `InvalidBlock`."""
        ...
