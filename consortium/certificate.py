"""Commit certificates: a quorum of node signatures over one block hash, checkable offline.

A PBFT commit vote is the node's signature over `commit_statement(...)`; the votes of one view
for one (height, block hash) gathered by any replica form the certificate stored with the block.
Anyone with the nodes' public keys from `nodes.yaml` can check it without trusting the node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from consortium import codec
from consortium.crypto import HASH_BYTES, SIGNATURE_BYTES, KeyPair, verify
from consortium.errors import CodecError
from consortium.roles import quorum_size

COMMIT_DOMAIN = "consortium/commit"


def commit_statement(chain_id: str, view: int, height: int, block_hash: bytes) -> bytes:
    """The bytes a node signs to vote COMMIT for `block_hash` at `height` in `view`."""
    return codec.encode_flat((COMMIT_DOMAIN, chain_id, view, height, block_hash))


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    view: int
    height: int
    block_hash: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (node id, signature), sorted by node id

    def to_wire(self) -> tuple:
        return (self.view, self.height, self.block_hash, tuple(list(s) for s in self.signatures))

    @staticmethod
    def from_wire(value: object) -> CommitCertificate:
        view, height, block_hash, sigs = codec.expect_tuple(value, 4, "certificate")
        codec.expect_type(view, int, "certificate.view")
        codec.expect_type(height, int, "certificate.height")
        codec.expect_type(block_hash, bytes, "certificate.block_hash")
        codec.expect_type(sigs, tuple, "certificate.signatures")
        if len(block_hash) != HASH_BYTES:
            raise CodecError("certificate.block_hash: not 32 bytes")
        pairs = []
        for pair in sigs:
            node_id, sig = codec.expect_tuple(pair, 2, "certificate.signature")
            codec.expect_type(node_id, str, "certificate.signature.node")
            codec.expect_type(sig, bytes, "certificate.signature.sig")
            pairs.append((node_id, sig))
        return CommitCertificate(view, height, block_hash, tuple(pairs))


def sign_certificate(
    chain_id: str, view: int, height: int, block_hash: bytes, signers: Mapping[str, KeyPair]
) -> CommitCertificate:
    """The certificate the commit votes of `signers` (node id -> node key) make: for tools that
    stand in for a network (benchmarks, tests), never for a replica, which gathers real votes."""
    statement = commit_statement(chain_id, view, height, block_hash)
    pairs = tuple((node, signers[node].sign(statement)) for node in sorted(signers))
    return CommitCertificate(view, height, block_hash, pairs)


SignatureCheck = Callable[[Sequence[tuple[bytes, bytes, bytes]]], list[bool]]


def _check_each(jobs: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    return [verify(key, message, signature) for key, message, signature in jobs]


def certificate_problems(
    cert: CommitCertificate,
    chain_id: str,
    node_keys: dict[str, bytes],
    check: SignatureCheck = _check_each,
) -> list[str]:
    """Everything wrong with `cert` (empty when it proves a quorum committed the block).
    `check` verifies (key, message, signature) jobs: a verifier's `verify_many` may batch or
    remember them."""
    problems = []
    statement = commit_statement(chain_id, cert.view, cert.height, cert.block_hash)
    seen: set[str] = set()
    signers: list[str] = []
    jobs: list[tuple[bytes, bytes, bytes]] = []
    for node_id, signature in cert.signatures:
        if node_id in seen:
            problems.append(f"node {node_id} signs twice")
            continue
        seen.add(node_id)
        key = node_keys.get(node_id)
        if key is None:
            problems.append(f"signer {node_id} is not a node")
        elif len(signature) != SIGNATURE_BYTES:
            problems.append(f"bad commit signature by {node_id}")
        else:
            signers.append(node_id)
            jobs.append((key, statement, signature))
    valid = 0
    for node_id, good in zip(signers, check(jobs), strict=True):
        if good:
            valid += 1
        else:
            problems.append(f"bad commit signature by {node_id}")
    need = quorum_size(len(node_keys))
    if valid < need:
        problems.append(f"{valid} valid commit signatures, a quorum is {need}")
    return problems
