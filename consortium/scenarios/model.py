"""A scenario as the loader hands it to the runner: typed steps, values still unresolved.

Argument values stay as written (strings like `$rcv` or `today+90`, helper maps) until the step
runs, because they depend on what earlier steps committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

CheckKind = Literal["records", "balances", "audit", "contact_data", "pool_data"]
CHECK_KINDS: tuple[CheckKind, ...] = ("records", "balances", "audit", "contact_data", "pool_data")


@dataclass(frozen=True, slots=True)
class Expectation:
    """Committed, or rejected with a reason containing `reason`."""

    committed: bool
    reason: str = ""

    def describe(self) -> str:
        return "committed" if self.committed else f"rejected: {self.reason}"

    def met_by(self, ok: bool, reason: str) -> bool:
        return ok if self.committed else (not ok and self.reason in reason)


@dataclass(frozen=True, slots=True)
class TxStep:
    """One signed transaction: who signs it, which node's commit notice is shown, what it does."""

    where: str
    name: str
    actor: str
    via: str
    op: str
    args: dict[str, Any]
    expect: Expectation
    save: dict[str, str] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    signed_with: str | None = None


@dataclass(frozen=True, slots=True)
class TogetherStep:
    """Transactions published in one message, meant to be ordered into the same block."""

    where: str
    name: str
    steps: tuple[TxStep, ...]
    same_block: bool = True


@dataclass(frozen=True, slots=True)
class LetStep:
    """Bind names to values computed now (`today+90`, a salt, a fresh key pair)."""

    where: str
    name: str
    bindings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckStep:
    """An assertion about the ledger, read from a node's own store."""

    where: str
    name: str
    kind: CheckKind
    spec: dict[str, Any]


Step = TxStep | TogetherStep | LetStep | CheckStep


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    story: str
    steps: tuple[Step, ...]
    source: str
