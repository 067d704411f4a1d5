"""A member's signing wallet: builds transactions with increasing nonces and signs them."""

from __future__ import annotations

import time
from typing import Any

from consortium.crypto import KeyPair
from consortium.ledger.tx import SignedTransaction, Transaction


class Wallet:
    """Signs as one member. Nonces start at the current time in microseconds unless given, so a
    wallet that restarts without remembering its last nonce still exceeds every committed one."""

    def __init__(
        self, chain_id: str, member_id: str, key: KeyPair, first_nonce: int | None = None
    ) -> None:
        self.chain_id = chain_id
        self.member_id = member_id
        self.key = key
        self.next_nonce = first_nonce if first_nonce is not None else time.time_ns() // 1000

    def sign(self, op: str, args: dict[str, Any]) -> SignedTransaction:
        nonce = self.next_nonce
        self.next_nonce += 1
        return Transaction(self.chain_id, self.member_id, nonce, op, args).sign(self.key)
