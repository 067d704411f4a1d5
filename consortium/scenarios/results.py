"""What a scenario run found: per step, what was expected and what the chain answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NOT_RUN = "not run"


@dataclass(slots=True)
class StepResult:
    name: str
    expected: str
    outcome: str
    passed: bool
    height: int | None = None
    via: str | None = None
    actor: str | None = None
    op: str | None = None
    tx_id: str | None = None
    block_hash: str | None = None
    reason: str = ""
    details: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expected": self.expected,
            "outcome": self.outcome,
            "passed": self.passed,
            "height": self.height,
            "via": self.via,
            "as": self.actor,
            "op": self.op,
            "tx_id": self.tx_id,
            "block_hash": self.block_hash,
        }


@dataclass(slots=True)
class ScenarioResult:
    name: str
    title: str
    passed: bool
    steps: list[StepResult]
    duration_s: float
    failure: str | None = None
    saved: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "passed": self.passed,
            "failure": self.failure,
            "duration_s": round(self.duration_s, 3),
            "steps": [step.as_json() for step in self.steps],
        }
