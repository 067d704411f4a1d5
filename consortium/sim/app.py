"""A small but honest application for the simulator: a hash chain of client-tagged requests.

It stands in for the ledger so the simulator exercises consensus alone. Validation checks what a
real ledger checks: height, parent link, block digest, request authenticity, and that no request
is executed twice, neither across committed blocks nor within the speculative chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consortium import codec
from consortium.certificate import CommitCertificate, certificate_problems
from consortium.crypto import sha256
from consortium.errors import CodecError
from consortium.pbft.app import InvalidBlock, InvalidRequest, MissingParent

GENESIS = sha256(b"consortium/sim/genesis")
TAG_BYTES = 16
MAX_BLOCK_REQUESTS = 10_000


def client_secret(client_id: str) -> bytes:
    """Each simulated client shares a secret with the application (a stand-in for its key)."""
    return sha256(b"consortium/sim/client/" + client_id.encode())


def make_request(client_id: str, nonce: int, payload: bytes) -> bytes:
    body = codec.encode_flat((client_id, nonce, payload))
    tag = sha256(client_secret(client_id) + body)[:TAG_BYTES]
    return codec.encode_flat((client_id, nonce, payload, tag))


def parse_request(request: bytes) -> tuple[str, int, bytes]:
    """Check a request's shape and client tag; returns (client, nonce, payload)."""
    try:
        client_id, nonce, payload, tag = codec.expect_tuple(codec.decode(request), 4, "request")
        codec.expect_type(client_id, str, "client")
        codec.expect_type(nonce, int, "nonce")
        codec.expect_type(payload, bytes, "payload")
        codec.expect_type(tag, bytes, "tag")
    except CodecError as exc:
        raise InvalidRequest(f"malformed request: {exc}") from None
    body = codec.encode_flat((client_id, nonce, payload))
    if sha256(client_secret(client_id) + body)[:TAG_BYTES] != tag:
        raise InvalidRequest("request tag does not match its client")
    return client_id, nonce, payload


def request_id_of(client_id: str, nonce: int) -> bytes:
    return sha256(codec.encode_flat(("consortium/sim/request", client_id, nonce)))


@dataclass(frozen=True, slots=True)
class SimBlock:
    height: int
    view: int
    proposer: str
    parent: bytes
    requests: tuple[bytes, ...]

    def encode(self) -> bytes:
        return codec.encode_flat(
            (self.height, self.view, self.proposer, self.parent, self.requests)
        )

    @staticmethod
    def decode(block: bytes) -> SimBlock:
        try:
            fields = codec.expect_tuple(codec.decode(block), 5, "block")
            height, view, proposer, parent, requests = fields
            codec.expect_type(height, int, "height")
            codec.expect_type(view, int, "view")
            codec.expect_type(proposer, str, "proposer")
            codec.expect_type(parent, bytes, "parent")
            codec.expect_type(requests, tuple, "requests")
            for r in requests:
                codec.expect_type(r, bytes, "request")
        except CodecError as exc:
            raise InvalidBlock(f"undecodable block: {exc}") from None
        return SimBlock(height, view, proposer, parent, requests)


class SimApp:
    """Committed blocks survive a crash (they are the node's disk); speculation does not."""

    def __init__(self, chain_id: str, node_keys: Mapping[str, bytes]) -> None:
        self.chain_id = chain_id
        self.node_keys = dict(node_keys)
        self.blocks: list[tuple[bytes, CommitCertificate]] = []
        self.digests: list[bytes] = [GENESIS]
        self.index: dict[bytes, int] = {}
        self.speculative: list[tuple[bytes, bytes, tuple[bytes, ...]]] = []
        self._ids_memo: dict[bytes, list[bytes]] = {}

    # -- pure helpers
    def genesis_digest(self) -> bytes:
        return GENESIS

    def digest(self, block: bytes) -> bytes:
        return sha256(block)

    def parent(self, block: bytes) -> bytes:
        return SimBlock.decode(block).parent

    def request_id(self, request: bytes) -> bytes:
        client_id, nonce, _ = parse_request(request)
        return request_id_of(client_id, nonce)

    def request_ids(self, block: bytes) -> list[bytes]:
        found = self._ids_memo.get(block)
        if found is None:
            found = []
            for r in SimBlock.decode(block).requests:
                client_id, nonce, _ = parse_request_unchecked(r)
                found.append(request_id_of(client_id, nonce))
            if len(self._ids_memo) > 4096:
                self._ids_memo.clear()
            self._ids_memo[block] = found
        return list(found)

    # -- chain state
    def committed_height(self) -> int:
        return len(self.blocks)

    def committed_block(self, height: int) -> tuple[bytes, CommitCertificate]:
        return self.blocks[height - 1]

    def lookup_request(self, request_id: bytes) -> int | None:
        return self.index.get(request_id)

    def _top(self) -> tuple[int, bytes]:
        if self.speculative:
            return len(self.blocks) + len(self.speculative), self.speculative[-1][1]
        return len(self.blocks), self.digests[-1]

    def _speculative_ids(self) -> set[bytes]:
        return {rid for _, _, ids in self.speculative for rid in ids}

    def propose(self, height: int, view: int, proposer: str, requests: Sequence[bytes]) -> bytes:
        top, parent = self._top()
        if height != top + 1:
            raise MissingParent(f"propose at {height} on top of {top}")
        taken = self._speculative_ids()
        chosen = []
        for request in requests:
            try:
                rid = self.request_id(request)
            except InvalidRequest:
                continue
            if rid in taken or rid in self.index:
                continue
            taken.add(rid)
            chosen.append(request)
        block = SimBlock(height, view, proposer, parent, tuple(chosen)).encode()
        self.speculative.append((block, sha256(block), tuple(self.request_ids(block))))
        return block

    def _check(self, height: int, view: int, block: bytes, parent: bytes) -> list[bytes]:
        decoded = SimBlock.decode(block)
        if decoded.height != height:
            raise InvalidBlock(f"block says height {decoded.height}, expected {height}")
        if decoded.view > view:
            raise InvalidBlock("block from a future view")
        if decoded.parent != parent:
            raise InvalidBlock("parent link does not match the chain")
        if len(decoded.requests) > MAX_BLOCK_REQUESTS:
            raise InvalidBlock("too many requests")
        taken = self._speculative_ids()
        ids = []
        for request in decoded.requests:
            try:
                rid = self.request_id(request)
            except InvalidRequest as exc:
                raise InvalidBlock(str(exc)) from None
            if rid in self.index:
                raise InvalidBlock("request already committed")
            if rid in taken:
                raise InvalidBlock("request included twice")
            taken.add(rid)
            ids.append(rid)
        return ids

    def validate(self, height: int, view: int, proposer: str, block: bytes) -> bytes:
        top, parent = self._top()
        if height > top + 1:
            raise MissingParent(f"validate at {height} on top of {top}")
        if height <= len(self.blocks):
            raise InvalidBlock(f"height {height} is committed already")
        if height <= top:
            self.discard_speculation_above(height - 1)
            top, parent = self._top()
        ids = self._check(height, view, block, parent)
        digest = sha256(block)
        self.speculative.append((block, digest, tuple(ids)))
        return digest

    def discard_speculation_above(self, height: int) -> None:
        keep = max(height - len(self.blocks), 0)
        del self.speculative[keep:]

    def commit(self, height: int, block: bytes, certificate: CommitCertificate) -> None:
        if height != len(self.blocks) + 1 or not self.speculative:
            raise InvalidBlock(f"commit at {height} but the chain is at {len(self.blocks)}")
        spec_block, digest, ids = self.speculative[0]
        if spec_block != block or digest != certificate.block_hash:
            raise InvalidBlock("committed block is not the validated one")
        del self.speculative[0]
        self._append(block, digest, ids, certificate)

    def install(self, block: bytes, certificate: CommitCertificate) -> None:
        height = len(self.blocks) + 1
        if certificate.height != height or sha256(block) != certificate.block_hash:
            raise InvalidBlock("certificate does not match the block")
        problems = certificate_problems(certificate, self.chain_id, self.node_keys)
        if problems:
            raise InvalidBlock(problems[0])
        self.speculative.clear()
        ids = self._check(height, certificate.view, block, self.digests[-1])
        self._append(block, certificate.block_hash, tuple(ids), certificate)

    def _append(
        self, block: bytes, digest: bytes, ids: tuple[bytes, ...], cert: CommitCertificate
    ) -> None:
        self.blocks.append((block, cert))
        self.digests.append(digest)
        for rid in ids:
            self.index[rid] = len(self.blocks)

    def restart(self) -> None:
        """A crash loses speculation; committed blocks are on disk."""
        self.speculative.clear()


def parse_request_unchecked(request: bytes) -> tuple[str, int, bytes]:
    """Fields of a request already checked when its block was validated."""
    try:
        client_id, nonce, payload, _ = codec.expect_tuple(codec.decode(request), 4, "request")
    except CodecError as exc:
        raise InvalidBlock(f"malformed request: {exc}") from None
    if not isinstance(client_id, str) or not isinstance(nonce, int):
        raise InvalidBlock("malformed request")
    return client_id, nonce, payload
