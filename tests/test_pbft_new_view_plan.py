"""The NEW-VIEW planner alone (PBFT section 4.4 with hash-chained blocks): which sequence numbers
re-issue a prepared block and which get a null block, over a stand-in chain where a block is its
parent's digest followed by a label."""

from __future__ import annotations

import pytest

from consortium.crypto import KeyPair, sha256
from consortium.errors import RemoteError
from consortium.pbft.app import InvalidBlock
from consortium.pbft.messages import PreparedProof, PrePrepare, ViewChange, sign
from consortium.pbft.new_view import PlannedBlock, plan_new_view
from consortium.pbft.proofs import Selection, select_prepared

GENESIS = sha256(b"genesis")
PRIMARY_KEY = KeyPair(bytes(32))


def block_on(parent: bytes, label: str) -> bytes:
    return parent + label.encode()


def parent_of(block: bytes) -> bytes:
    if len(block) < 32:
        raise InvalidBlock("not a block")
    return block[:32]


HELD: dict[tuple[int, bytes], bytes] = {}  # the blocks the planning replica holds


def proof(view: int, seq: int, block: bytes) -> PreparedProof:
    """A certificate as a VIEW-CHANGE quotes it (by digest); its block is held."""
    pp = PrePrepare(view, seq, sha256(block), block)
    HELD[(seq, pp.digest)] = block
    return PreparedProof(sign(PRIMARY_KEY, "test", "n00", pp), ()).without_block()


def held_block(seq: int, digest: bytes) -> bytes:
    return HELD[(seq, digest)]


class NullBuilder:
    """Builds the null block at seq on tip, recording each request."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, bytes]] = []

    def __call__(self, seq: int, tip: bytes) -> tuple[bytes, bytes]:
        self.asked.append((seq, tip))
        block = block_on(tip, f"null {seq}")
        return block, sha256(block)


def plan(selection: Selection, nulls: NullBuilder) -> list[PlannedBlock]:
    return list(plan_new_view(selection, held_block, parent_of, nulls))


def test_a_prepared_chain_is_kept_whole() -> None:
    b3 = block_on(GENESIS, "three")  # the stable checkpoint at 2 has digest GENESIS here
    b4 = block_on(sha256(b3), "four")
    b5 = block_on(sha256(b4), "five")
    best = {3: proof(0, 3, b3), 4: proof(1, 4, b4), 5: proof(0, 5, b5)}
    nulls = NullBuilder()
    planned = plan(Selection(2, GENESIS, best, 5), nulls)
    assert [(p.seq, p.block, p.digest) for p in planned] == [
        (3, b3, sha256(b3)),
        (4, b4, sha256(b4)),
        (5, b5, sha256(b5)),
    ]
    assert [p.proof for p in planned] == [best[3], best[4], best[5]]
    assert nulls.asked == []


def test_a_gap_is_filled_with_null_blocks_and_what_follows_it_too() -> None:
    b1 = block_on(GENESIS, "one")
    lost_b2 = block_on(sha256(b1), "two")  # prepared nowhere in the quorum
    b3 = block_on(sha256(lost_b2), "three")
    nulls = NullBuilder()
    planned = plan(Selection(0, GENESIS, {1: proof(0, 1, b1), 3: proof(0, 3, b3)}, 3), nulls)
    null2 = block_on(sha256(b1), "null 2")
    null3 = block_on(sha256(null2), "null 3")
    assert [(p.seq, p.block, p.proof is None) for p in planned] == [
        (1, b1, False),
        (2, null2, True),
        (3, null3, True),
    ]
    assert nulls.asked == [(2, sha256(b1)), (3, sha256(null2))]


def test_a_prepared_block_that_does_not_extend_the_tip_is_replaced_by_a_null_block() -> None:
    b1 = block_on(GENESIS, "one")
    fork2 = block_on(sha256(b"another block 1"), "two")
    on_fork3 = block_on(sha256(fork2), "three")
    best = {
        1: proof(0, 1, b1),
        2: proof(1, 2, fork2),
        3: proof(1, 3, on_fork3),
        4: proof(1, 4, b"?"),
    }
    planned = plan(Selection(0, GENESIS, best, 4), NullBuilder())
    null2 = block_on(sha256(b1), "null 2")
    null3 = block_on(sha256(null2), "null 3")
    null4 = block_on(sha256(null3), "null 4")  # a block whose parent cannot be read extends nothing
    assert [p.block for p in planned] == [b1, null2, null3, null4]
    assert [p.proof is None for p in planned] == [False, True, True, True]


def test_the_certificate_of_the_higher_view_is_preferred() -> None:
    old1 = block_on(GENESIS, "one, view 0")
    old2 = block_on(sha256(old1), "two, view 0")
    new1 = block_on(GENESIS, "one, view 1")
    new2 = block_on(sha256(new1), "two, view 1")
    behind = ViewChange(2, 0, GENESIS, (), (proof(0, 1, old1), proof(0, 2, old2)))
    ahead = ViewChange(2, 0, GENESIS, (), (proof(1, 1, new1),))
    lagging = ViewChange(2, 0, GENESIS, (), ())
    nulls = NullBuilder()
    planned = plan(select_prepared([behind, ahead, lagging]), nulls)
    # Seq 1 takes view 1's block, so view 0's block 2 no longer extends the chain.
    assert [p.block for p in planned] == [new1, block_on(sha256(new1), "null 2")]
    assert planned[0].proof is not None
    assert new2 not in [p.block for p in planned]
    assert nulls.asked == [(2, sha256(new1))]


def test_nothing_above_the_checkpoint_plans_nothing() -> None:
    assert plan(Selection(4, GENESIS, {}, 4), NullBuilder()) == []


def test_null_blocks_are_asked_for_only_once_the_previous_entry_is_taken() -> None:
    """A primary validates each re-issued block before it builds the next null block on top."""
    b1 = block_on(GENESIS, "one")
    events: list[str] = []
    nulls = NullBuilder()

    def null_block(seq: int, tip: bytes) -> tuple[bytes, bytes]:
        events.append(f"build {seq}")
        return nulls(seq, tip)

    for planned in plan_new_view(
        Selection(0, GENESIS, {1: proof(0, 1, b1)}, 3), held_block, parent_of, null_block
    ):
        events.append(f"take {planned.seq}")
    assert events == ["take 1", "build 2", "take 2", "build 3", "take 3"]


def test_a_null_block_the_callback_rejects_stops_the_plan() -> None:
    """A backup checking a NEW-VIEW reports a bad null block by raising; nothing is planned past it."""

    def received(seq: int, tip: bytes) -> tuple[bytes, bytes]:
        raise RemoteError(f"bad null block at {seq}")

    b1 = block_on(GENESIS, "one")
    taken = []
    with pytest.raises(RemoteError, match="bad null block at 2"):
        for planned in plan_new_view(
            Selection(0, GENESIS, {1: proof(0, 1, b1)}, 3), held_block, parent_of, received
        ):
            taken.append(planned.seq)
    assert taken == [1]
