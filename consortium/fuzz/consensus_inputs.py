"""Hostile consensus messages, published as a compromised node on its own pbft topic.

The compromised node has its broker login and its node key, so it can reach every check behind
the signature: views, sequence numbers, digests, quorum proofs. Each generator names the reject
reasons an honest replica should count for it (`EXPECTED`); replays may land on any duplicate or
staleness reason, since what is stale depends on when it comes back.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from consortium import codec
from consortium.certificate import CommitCertificate
from consortium.crypto import HASH_BYTES, SIGNATURE_BYTES, KeyPair
from consortium.errors import CodecError
from consortium.pbft.messages import (
    MAX_FORWARDED_REQUESTS,
    Checkpoint,
    Commit,
    CommittedBlocks,
    FetchBlocks,
    FetchProposals,
    ForwardRequests,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    Proposal,
    Signed,
    Status,
    ViewChange,
    sign,
)

CAPTURE_LIMIT = 2_000
ENORMOUS_VIEW = 2**62
NON_MEMBER = "mallory"
BIG_BLOCK_BYTES = 1_000_000


@dataclass(slots=True)
class BusView:
    """What the compromised node overheard: recent signed messages and the network's progress."""

    captured: deque[bytes] = field(default_factory=lambda: deque(maxlen=CAPTURE_LIMIT))
    blocks: deque[bytes] = field(default_factory=lambda: deque(maxlen=32))
    view: int = 0
    executed: int = 0
    stable: int = 0

    def overhear(self, payload: bytes) -> None:
        try:
            signed = Signed.decode(payload)
        except CodecError:
            return
        self.captured.append(payload)
        body = signed.body
        if isinstance(body, Status):
            self.view = max(self.view, body.view)
            self.executed = max(self.executed, body.executed)
            self.stable = max(self.stable, body.stable_seq)
        elif isinstance(body, PrePrepare) and body.block:
            self.blocks.append(body.block)


@dataclass(frozen=True, slots=True)
class HostileMessage:
    kind: str
    payload: bytes
    to: str | None = None  # None: broadcast on the compromised node's topic


class ConsensusFuzzer:
    def __init__(
        self,
        rng: random.Random,
        chain_id: str,
        victim: str,
        victim_key: KeyPair,
        nodes: tuple[str, ...],
        window: int,
        bus: BusView,
        heavy: bool = True,
    ) -> None:
        """`heavy` includes megabyte arrays that cost every node a long decode."""
        self.rng = rng
        self.chain_id = chain_id
        self.victim = victim
        self.key = victim_key
        self.others = tuple(n for n in nodes if n != victim)
        self.window = window
        self.bus = bus
        self.stranger = KeyPair(rng.randbytes(32))
        self.generators: dict[str, Callable[[], HostileMessage]] = {
            "random_bytes": self.random_bytes,
            "truncated_msgpack": self.truncated,
            "declared_oversize_msgpack": self.declared_oversize,
            "huge_array_msgpack": self.huge_array,
            "big_unsigned_preprepare": self.big_unsigned_preprepare,
            "deep_nesting_msgpack": self.deep_nesting,
            "forged_signature": self.forged_signature,
            "impostor_signature": self.impostor,
            "non_member_key": self.non_member,
            "replay": self.replay,
            "wrong_view_vote": self.wrong_view_vote,
            "wrong_seq_vote": self.wrong_seq_vote,
            "digest_mismatch_preprepare": self.digest_mismatch_preprepare,
            "enormous_view_change": self.enormous_view_change,
            "enormous_new_view": self.enormous_new_view,
            "fetch_beyond_head": self.fetch_beyond_head,
            "forged_certificate_blocks": self.forged_certificate_blocks,
            "fetch_unknown_proposals": self.fetch_unknown_proposals,
            "unasked_proposal": self.unasked_proposal,
            "oversized_forward": self.oversized_forward,
            "garbage_forward": self.garbage_forward,
            "stale_checkpoint": self.stale_checkpoint,
        }
        # Rare heavy inputs: each one costs every node a large decode.
        self.weights = {kind: 1.0 for kind in self.generators}
        self.weights["huge_array_msgpack"] = 0.05 if heavy else 0.0
        self.weights["big_unsigned_preprepare"] = 0.2 if heavy else 0.0
        self.weights["oversized_forward"] = 0.2
        self.weights["replay"] = 3.0

    def next(self) -> HostileMessage:
        kinds = list(self.generators)
        kind = self.rng.choices(kinds, [self.weights[k] for k in kinds])[0]
        return self.generators[kind]()

    # -- helpers ------------------------------------------------------------------------

    def _signed(self, body: Message, sender: str | None = None) -> bytes:
        return sign(self.key, self.chain_id, sender or self.victim, body).encode()

    def _digest(self) -> bytes:
        return self.rng.randbytes(HASH_BYTES)

    def _valid_sample(self) -> bytes:
        if self.bus.captured:
            return self.rng.choice(self.bus.captured)
        return self._signed(Prepare(self.bus.view, 0, self._digest()))  # harmless: seq 0

    # -- undecodable --------------------------------------------------------------------

    def random_bytes(self) -> HostileMessage:
        return HostileMessage("random_bytes", self.rng.randbytes(self.rng.randint(0, 4096)))

    def truncated(self) -> HostileMessage:
        sample = self._valid_sample()
        return HostileMessage("truncated_msgpack", sample[: self.rng.randrange(len(sample))])

    def declared_oversize(self) -> HostileMessage:
        headers = (b"\xdd\xff\xff\xff\xff", b"\xc6\x7f\xff\xff\xff", b"\xdb\xff\xff\xff\xff")
        return HostileMessage(
            "declared_oversize_msgpack", self.rng.choice(headers) + self.rng.randbytes(64)
        )

    def huge_array(self) -> HostileMessage:
        return HostileMessage("huge_array_msgpack", codec.encode_flat([0] * 1_000_000))

    def big_unsigned_preprepare(self) -> HostileMessage:
        """Megabytes from a stranger with a random signature: to be dropped, and forgotten."""
        body = PrePrepare(
            self.bus.view,
            self.bus.executed + 1,
            self._digest(),
            self.rng.randbytes(BIG_BLOCK_BYTES),
        )
        signed = Signed(NON_MEMBER, body, self.rng.randbytes(SIGNATURE_BYTES))
        return HostileMessage("big_unsigned_preprepare", signed.encode())

    def deep_nesting(self) -> HostileMessage:
        depth = self.rng.randint(40, 100_000)
        return HostileMessage("deep_nesting_msgpack", b"\x91" * depth + b"\xc0")

    # -- bad signatures -----------------------------------------------------------------

    def forged_signature(self) -> HostileMessage:
        body = Prepare(self.bus.view, self.bus.executed + 1, self._digest())
        forged = Signed(self.rng.choice(self.others), body, self.rng.randbytes(SIGNATURE_BYTES))
        return HostileMessage("forged_signature", forged.encode())

    def impostor(self) -> HostileMessage:
        body = Commit(self.bus.view, self.bus.executed + 1, self._digest())
        return HostileMessage(
            "impostor_signature", self._signed(body, self.rng.choice(self.others))
        )

    def non_member(self) -> HostileMessage:
        body = Prepare(self.bus.view, self.bus.executed + 1, self._digest())
        signed = sign(self.stranger, self.chain_id, NON_MEMBER, body)
        return HostileMessage("non_member_key", signed.encode())

    def replay(self) -> HostileMessage:
        return HostileMessage("replay", self._valid_sample())

    # -- signed by the compromised key, wrong in content ---------------------------------

    def wrong_view_vote(self) -> HostileMessage:
        ahead = self.rng.choice((self.rng.randint(1, 50), self.rng.randint(10_000, 2**40)))
        view = self.bus.view + ahead
        seq = self.bus.executed + 1
        body = self.rng.choice((Prepare, Commit))(view, seq, self._digest())
        return HostileMessage("wrong_view_vote", self._signed(body))

    def wrong_seq_vote(self) -> HostileMessage:
        seq = self.rng.choice(
            (0, self.bus.stable + self.window + self.rng.randint(1, 10**9), self.bus.stable)
        )
        body = self.rng.choice((Prepare, Commit))(self.bus.view, seq, self._digest())
        return HostileMessage("wrong_seq_vote", self._signed(body))

    def digest_mismatch_preprepare(self) -> HostileMessage:
        """In the current view, at a sequence number ahead of the network but in the window."""
        seq = self.bus.executed + self.rng.randint(self.window // 2, self.window - 1)
        block = self.rng.choice(self.bus.blocks) if self.bus.blocks else self.rng.randbytes(300)
        body = PrePrepare(self.bus.view, seq, self._digest(), block)
        return HostileMessage("digest_mismatch_preprepare", self._signed(body))

    def enormous_view_change(self) -> HostileMessage:
        body = ViewChange(ENORMOUS_VIEW + self.rng.randint(0, 10**6), 0, self._digest(), (), ())
        return HostileMessage("enormous_view_change", self._signed(body))

    def enormous_new_view(self) -> HostileMessage:
        body = NewView(ENORMOUS_VIEW + self.rng.randint(0, 10**6), (), ())
        return HostileMessage("enormous_new_view", self._signed(body))

    def fetch_beyond_head(self) -> HostileMessage:
        body = FetchBlocks(self.bus.executed + self.rng.randint(10**6, 10**12))
        return HostileMessage("fetch_beyond_head", self._signed(body), self.rng.choice(self.others))

    def forged_certificate_blocks(self) -> HostileMessage:
        block = self.rng.choice(self.bus.blocks) if self.bus.blocks else self.rng.randbytes(300)
        signatures = tuple(
            sorted((n, self.rng.randbytes(SIGNATURE_BYTES)) for n in self.others[:3])
        )
        cert = CommitCertificate(self.bus.view, self.bus.executed + 1, self._digest(), signatures)
        body = CommittedBlocks(((block, cert),))
        return HostileMessage(
            "forged_certificate_blocks", self._signed(body), self.rng.choice(self.others)
        )

    def fetch_unknown_proposals(self) -> HostileMessage:
        wanted = tuple((self.bus.executed + i, self._digest()) for i in range(1, 4))
        body = FetchProposals(wanted)
        return HostileMessage(
            "fetch_unknown_proposals", self._signed(body), self.rng.choice(self.others)
        )

    def unasked_proposal(self) -> HostileMessage:
        block = self.rng.choice(self.bus.blocks) if self.bus.blocks else self.rng.randbytes(300)
        body = Proposal(self.bus.executed + 1, block)
        return HostileMessage("unasked_proposal", self._signed(body))

    def oversized_forward(self) -> HostileMessage:
        count = MAX_FORWARDED_REQUESTS + self.rng.randint(1, 1000)
        wire = (ForwardRequests.KIND, self.victim, (b"x",) * count, b"\0" * SIGNATURE_BYTES)
        return HostileMessage("oversized_forward", codec.encode_flat(wire))

    def garbage_forward(self) -> HostileMessage:
        requests = tuple(self.rng.randbytes(self.rng.randint(1, 200)) for _ in range(8))
        return HostileMessage("garbage_forward", self._signed(ForwardRequests(requests)))

    def stale_checkpoint(self) -> HostileMessage:
        body = Checkpoint(max(self.bus.stable, 0), self._digest())
        return HostileMessage("stale_checkpoint", self._signed(body))


EXPECTED: dict[str, tuple[str, ...]] = {
    "random_bytes": ("malformed",),
    "truncated_msgpack": ("malformed",),
    "declared_oversize_msgpack": ("malformed",),
    "huge_array_msgpack": ("malformed",),
    "big_unsigned_preprepare": ("non_member",),
    "deep_nesting_msgpack": ("malformed",),
    "forged_signature": ("bad_signature", "own_message"),
    "impostor_signature": ("bad_signature", "own_message"),
    "non_member_key": ("non_member",),
    "replay": (
        "duplicate",
        "duplicate_vote",
        "own_message",
        "stale_view",
        "out_of_window",
        "stale_checkpoint",
    ),
    "wrong_view_vote": ("future_view", "far_future_view"),
    "wrong_seq_vote": ("out_of_window",),
    "digest_mismatch_preprepare": ("digest_mismatch", "not_primary", "invalid_block"),
    "enormous_view_change": ("far_future_view",),
    "enormous_new_view": ("not_primary", "bad_new_view"),
    "fetch_beyond_head": ("nothing_to_fetch",),
    "forged_certificate_blocks": ("bad_certificate", "useless_blocks", "invalid_block"),
    "fetch_unknown_proposals": ("nothing_to_fetch",),
    "unasked_proposal": ("unwanted_proposal", "invalid_block", "malformed"),
    "oversized_forward": ("malformed",),
    "garbage_forward": ("invalid_request",),
    "stale_checkpoint": ("stale_checkpoint",),
}
