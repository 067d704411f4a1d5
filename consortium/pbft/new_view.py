"""Planning a NEW-VIEW: which block each sequence number of the new view starts with.

PBFT section 4.4: from the VIEW-CHANGEs of a quorum, the new primary re-issues, for every sequence
number between the highest stable checkpoint (min-s) and the highest prepared one (max-s), the
block of the highest-view prepared certificate (`select_prepared`), and a null block where there
is none. Blocks here are hash-chained, which plain PBFT does not need, so one more rule applies
(the module docstring of `consortium.pbft.replica` says why it is safe): a prepared block is
re-issued only if its parent is the block chosen just before it; otherwise a null block takes its
place.

Certificates name their blocks by digest; the planner reads each block through `block_of`,
so a caller first makes sure it holds every block the selection names (fetching the ones it
lacks). The primary that builds the NEW-VIEW and every backup that checks it run this one
planner, so the two cannot drift apart. Only the null blocks differ between them: their digests are known once
the primary has built them, or once a backup has read them from the NEW-VIEW, so both pass
`null_block` and the planner asks for each when its turn comes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from consortium.pbft.app import InvalidBlock
from consortium.pbft.messages import PreparedProof, PrePrepare
from consortium.pbft.proofs import Selection


@dataclass(frozen=True, slots=True)
class PlannedBlock:
    """The block the new view starts with at `seq`: a re-issued prepared one (`proof` is its
    certificate) or a null block (`proof` is None)."""

    seq: int
    block: bytes
    digest: bytes
    proof: PreparedProof | None


NullBlock = Callable[[int, bytes], tuple[bytes, bytes]]
"""`(seq, tip) -> (block, digest)`: the null block at `seq` whose parent is `tip`. The primary
builds it; a backup returns the one the NEW-VIEW carries, after checking that it is a null block
on `tip`, and raises when it is not (the planner lets the exception through)."""


BlockOf = Callable[[int, bytes], bytes]
"""`(seq, digest) -> block`: the block proposed at `seq` with `digest`, held by the caller."""


def plan_new_view(
    selection: Selection,
    block_of: BlockOf,
    parent: Callable[[bytes], bytes],
    null_block: NullBlock,
) -> Iterator[PlannedBlock]:
    """The blocks of sequence numbers min-s + 1 .. max-s, in order.

    `block_of` gives the block each chosen certificate names. `parent(block)` reads the digest a block builds on (raising `InvalidBlock` for bytes that do
    not decode: such a block extends nothing). Entries are produced one at a time, and
    `null_block(seq, tip)` is called only once the entry for seq - 1 has been taken, so a caller
    that extends a speculative chain (the primary validates each re-issued block, then builds the
    next null block on top of it) can do so while it iterates."""
    tip = selection.min_digest
    for seq in range(selection.min_s + 1, selection.max_s + 1):
        proof = selection.best.get(seq)
        pp = None if proof is None else proof.preprepare.body
        assert pp is None or isinstance(pp, PrePrepare)
        block = None if pp is None else block_of(seq, pp.digest)
        if pp is not None and block is not None and _extends(block, tip, parent):
            planned = PlannedBlock(seq, block, pp.digest, proof)
        else:
            block, digest = null_block(seq, tip)
            planned = PlannedBlock(seq, block, digest, None)
        yield planned
        tip = planned.digest


def _extends(block: bytes, tip: bytes, parent: Callable[[bytes], bytes]) -> bool:
    try:
        return parent(block) == tip
    except InvalidBlock:
        return False
