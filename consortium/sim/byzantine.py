"""Byzantine behaviours as rewrites of an honest replica's outgoing messages.

A byzantine node runs the honest replica and lies on the way out, signing its lies with its own
key: the only thing a real attacker has. Twins (equivocation by two honest copies of one node
placed in different partitions) need no rewriting and live in the network instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from consortium.crypto import KeyPair, sha256
from consortium.pbft.actions import Send
from consortium.pbft.messages import (
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    Signed,
    Status,
    ViewChange,
    sign,
)
from consortium.sim.app import SimBlock


class Liar:
    def __init__(
        self,
        behaviour: str,
        node_id: str,
        key: KeyPair,
        chain_id: str,
        nodes: Sequence[str],
        rng: random.Random,
        corrupt_block: Callable[[PrePrepare, random.Random], bytes] | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.corrupt_block = corrupt_block or corrupt_sim_block
        self.node_id = node_id
        self.key = key
        self.chain_id = chain_id
        self.peers = [n for n in nodes if n != node_id]
        self.rng = rng
        self.lies = 0

    def _encode(self, body: object) -> bytes:
        return sign(self.key, self.chain_id, self.node_id, body).encode()  # type: ignore[arg-type]

    def rewrite(self, sends: list[Send], decode: object) -> list[Send]:
        """The messages the byzantine node actually sends instead of `sends`."""
        if self.behaviour == "silent":
            self.lies += len(sends)
            return []
        out: list[Send] = []
        for send in sends:
            signed: Signed = decode(send.data)  # type: ignore[operator]
            out.extend(self._rewrite_one(send, signed))
        return out

    def _rewrite_one(self, send: Send, signed: Signed) -> list[Send]:
        body = signed.body
        behaviour = self.behaviour
        if behaviour == "invalid_blocks" and isinstance(body, PrePrepare):
            self.lies += 1
            return [Send(send.to, self._encode(self._corrupt(body)))]
        if behaviour == "bad_sequence" and isinstance(body, PrePrepare):
            self.lies += 1
            shift = self.rng.choice([-1, 1, 2])
            moved = PrePrepare(body.view, max(body.seq + shift, 1), body.digest, body.block)
            return [send, Send(send.to, self._encode(moved))]
        if (
            behaviour == "conflicting_votes"
            and isinstance(body, Prepare | Commit)
            and send.to is None
        ):
            self.lies += 1
            fake = sha256(body.digest + b"conflict")
            lie = type(body)(body.view, body.seq, fake)
            half = set(self.rng.sample(self.peers, len(self.peers) // 2))
            return [
                Send(peer, self._encode(lie) if peer in half else send.data) for peer in self.peers
            ]
        if behaviour == "stale_and_future_views" and isinstance(body, Status):
            self.lies += 1
            far = ViewChange(body.view + 10**9, 0, b"\x00" * 32, (), ())
            near = ViewChange(body.view + 3, 0, b"\x00" * 32, (), ())
            stale = Prepare(max(body.view - 1, 0), body.executed + 1, b"\x11" * 32)
            bogus = NewView(body.view + 10**6, (), ())
            lies = [far, near, stale, bogus]
            return [send, *(Send(None, self._encode(lie)) for lie in lies)]
        return [send]

    def _corrupt(self, pp: PrePrepare) -> PrePrepare:
        block = self.corrupt_block(pp, self.rng)
        return PrePrepare(pp.view, pp.seq, sha256(block), block)


def corrupt_sim_block(pp: PrePrepare, rng: random.Random) -> bytes:
    """A model block with a wrong parent, a wrong height, or bytes that are no block at all."""
    choice = rng.randrange(3)
    if choice == 0:
        return b"\x93garbage" + pp.block[:8]
    try:
        decoded = SimBlock.decode(pp.block)
    except Exception:
        return pp.block
    if choice == 1:
        decoded = SimBlock(
            decoded.height, decoded.view, decoded.proposer, sha256(b"x"), decoded.requests
        )
    else:
        decoded = SimBlock(
            decoded.height + 1, decoded.view, decoded.proposer, decoded.parent, decoded.requests
        )
    return decoded.encode()
