"""What a contract sees: a state view and the facts of the transaction being executed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from consortium.crypto import verify

SignatureCheck = Callable[[bytes, bytes, bytes], bool]
"""(public key, message, signature) -> valid: how a contract checks a signature it carries."""

SignatureClaim = tuple[bytes, bytes, bytes]
"""A (public key, message, signature) a transaction's execution will check, known beforehand."""


class StateView(Protocol):
    """Reads and writes of one transaction; dropped as a whole if the transaction fails."""

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys_with_prefix(self, prefix: str) -> list[str]: ...


@dataclass(slots=True)
class TxContext:
    """The transaction's identity and position: the only inputs besides state and arguments.
    `check_signature` is ed25519 verification; the ledger passes one that first consults the
    signatures this node already verified (same verdicts, each checked once). Contracts only
    read it (not `frozen`: one is built per transaction on the hot path)."""

    sender: str
    tx_id: bytes
    height: int
    index: int
    check_signature: SignatureCheck = verify


class RuleViolation(Exception):
    """A business rule refused the transaction: it gets a failed receipt with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
