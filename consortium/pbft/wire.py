"""Decode-and-verify memo: every distinct message is decoded and every signature checked once.

A replica sees the same bytes many times (duplicates, retransmissions, votes quoted again inside
VIEW-CHANGE and NEW-VIEW). Both functions are pure, so one cache may be shared by several
replicas in one process, as the simulator does.
"""

from __future__ import annotations

from consortium.crypto import verify
from consortium.pbft.messages import Signed

_DECODE_LIMIT = 50_000
_VERIFY_LIMIT = 200_000
DEFAULT_BUDGET_BYTES = 64 * 1024 * 1024


class WireCache:
    """Both memos start again once they hold a quarter of `budget_bytes` of messages (a decoded
    message holds its bytes about twice: the message and the payload inside it), so that a peer
    flooding distinct large messages (signed or not) cannot make a replica hold more than the
    budget."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._bytes_limit = max(1, budget_bytes // 4)
        self._decoded: dict[bytes, Signed] = {}
        self._decoded_bytes = 0
        self._verified: dict[tuple[bytes, bytes, bytes], bool] = {}
        self._verified_bytes = 0
        self.verifications = 0

    def decode(self, data: bytes, remember: bool = True) -> Signed:
        """`Signed.decode` with a memo; raises `CodecError` for bad bytes (never cached).
        A replica decodes peers' messages with `remember=False` and calls `remember` once the
        sender and signature are checked, so that rejected messages are never kept."""
        found = self._decoded.get(data)
        if found is not None:
            return found
        signed = Signed.decode(data)
        if remember:
            self.remember(data, signed)
        return signed

    def remember(self, data: bytes, signed: Signed) -> None:
        if data in self._decoded:
            return
        if (
            len(self._decoded) >= _DECODE_LIMIT
            or self._decoded_bytes + len(data) > self._bytes_limit
        ):
            self._decoded.clear()
            self._decoded_bytes = 0
        self._decoded[data] = signed
        self._decoded_bytes += len(data)

    def verify(self, public_key: bytes, payload: bytes, signature: bytes) -> bool:
        key = (public_key, signature, payload)
        found = self._verified.get(key)
        if found is not None:
            return found
        self.verifications += 1
        ok = verify(public_key, payload, signature)
        if (
            len(self._verified) >= _VERIFY_LIMIT
            or self._verified_bytes + len(payload) > self._bytes_limit
        ):
            self._verified.clear()
            self._verified_bytes = 0
        self._verified[key] = ok
        self._verified_bytes += len(payload)
        return ok
