"""Checking the certificates replicas quote to each other, and choosing among them.

A VIEW-CHANGE quotes a stable checkpoint (a quorum of CHECKPOINTs) and prepared certificates (a
pre-prepare and a quorum of PREPAREs); a NEW-VIEW quotes a quorum of VIEW-CHANGEs. These checks
are pure: they read signatures and digests, never a replica's state, so each one can be tested
alone and a NEW-VIEW is verified by recomputing exactly what its primary computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consortium.errors import RemoteError
from consortium.pbft.messages import (
    Checkpoint,
    Prepare,
    PreparedProof,
    PrePrepare,
    Signed,
    ViewChange,
    signing_bytes,
)
from consortium.pbft.wire import WireCache


class Dropped(RemoteError):
    """An input the replica rejects; `reason` names the counter it increments."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Selection:
    """What a NEW-VIEW must re-issue: min-s with its block digest, the highest-view prepared
    certificate per sequence number above it, and max-s."""

    min_s: int
    min_digest: bytes
    best: dict[int, PreparedProof]
    max_s: int


def select_prepared(vcs: Sequence[ViewChange]) -> Selection:
    """PBFT's NEW-VIEW rule: start at the highest stable checkpoint and, for each sequence number
    above it, take the prepared certificate of the highest view (ties broken by digest)."""
    best_vc = max(vcs, key=lambda v: (v.stable_seq, v.stable_digest))
    min_s = best_vc.stable_seq
    best: dict[int, PreparedProof] = {}
    for vc in vcs:
        for proof in vc.prepared:
            pp = proof.preprepare.body
            assert isinstance(pp, PrePrepare)
            if pp.seq <= min_s:
                continue
            current = best.get(pp.seq)
            if current is None or (pp.view, pp.digest) > _rank(current):
                best[pp.seq] = proof
    return Selection(min_s, best_vc.stable_digest, best, max(best, default=min_s))


def _rank(proof: PreparedProof) -> tuple[int, bytes]:
    pp = proof.preprepare.body
    assert isinstance(pp, PrePrepare)
    return pp.view, pp.digest


class ProofChecker:
    def __init__(
        self,
        chain_id: str,
        node_keys: Mapping[str, bytes],
        quorum: int,
        checkpoint_interval: int,
        window: int,
        genesis_digest: bytes,
        cache: WireCache,
    ) -> None:
        self.chain_id = chain_id
        self.keys = dict(node_keys)
        self.nodes = tuple(sorted(node_keys))
        self.q = quorum
        self.interval = checkpoint_interval
        self.window = window
        self.genesis_digest = genesis_digest
        self.cache = cache

    def primary_of(self, view: int) -> str:
        return self.nodes[view % len(self.nodes)]

    def is_valid_signature(self, signed: Signed) -> bool:
        key = self.keys.get(signed.sender)
        if key is None:
            return False
        payload = signing_bytes(self.chain_id, signed.sender, signed.body)
        return self.cache.verify(key, payload, signed.signature)

    def check_checkpoint_proof(self, seq: int, digest: bytes, proof: tuple[Signed, ...]) -> None:
        """A stable checkpoint: a quorum of distinct replicas signed CHECKPOINT(seq, digest)."""
        if seq == 0:
            if proof or digest != self.genesis_digest:
                raise Dropped("bad_checkpoint_proof")
            return
        signers = set()
        for signed in proof:
            body = signed.body
            if (
                not isinstance(body, Checkpoint)
                or body.seq != seq
                or body.digest != digest
                or not self.is_valid_signature(signed)
            ):
                raise Dropped("bad_checkpoint_proof")
            signers.add(signed.sender)
        if len(signers) < self.q or seq % self.interval != 0:
            raise Dropped("bad_checkpoint_proof")

    def check_prepared_proof(self, proof: PreparedProof, below_view: int) -> PrePrepare:
        """The primary's pre-prepare plus PREPAREs from q - 1 other replicas, all matching."""
        pp = proof.preprepare.body
        if not isinstance(pp, PrePrepare) or pp.view >= below_view:
            raise Dropped("bad_prepared_proof")
        primary = self.primary_of(pp.view)
        if proof.preprepare.sender != primary or not self.is_valid_signature(proof.preprepare):
            raise Dropped("bad_prepared_proof")
        if pp.block:
            raise Dropped("bad_prepared_proof")  # certificates are quoted by digest
        signers = set()
        for signed in proof.prepares:
            p = signed.body
            if (
                not isinstance(p, Prepare)
                or (p.view, p.seq, p.digest) != (pp.view, pp.seq, pp.digest)
                or signed.sender == primary
                or not self.is_valid_signature(signed)
            ):
                raise Dropped("bad_prepared_proof")
            signers.add(signed.sender)
        if len(signers) + 1 < self.q:
            raise Dropped("bad_prepared_proof")
        return pp

    def check_view_change(self, vc: ViewChange) -> None:
        self.check_checkpoint_proof(vc.stable_seq, vc.stable_digest, vc.checkpoint_proof)
        seen = set()
        for proof in vc.prepared:
            pp = self.check_prepared_proof(proof, vc.new_view)
            if pp.seq in seen or not vc.stable_seq < pp.seq <= vc.stable_seq + self.window:
                raise Dropped("bad_prepared_proof")
            seen.add(pp.seq)
