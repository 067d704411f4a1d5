"""What one replica step asks its driver to do, in order: persist, then send, then report.

Committed blocks have already been applied through `Application.commit`/`install` when they
appear here; the driver uses them for client replies and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consortium.certificate import CommitCertificate


@dataclass(frozen=True, slots=True)
class Send:
    """Encoded `Signed` bytes; `to` is a node id, or None to broadcast to every other node."""

    to: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Persist:
    """A key-value write (value None deletes) that must be durable before any send."""

    key: str
    value: bytes | None


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire `TimerFired(name)` at `at_ms` (virtual or wall ms); replaces a timer of that name."""

    name: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    height: int
    block: bytes
    certificate: CommitCertificate
    request_ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """Tell a client its request is committed at `height` in the block with `digest`."""

    request_id: bytes
    height: int
    digest: bytes


@dataclass(slots=True)
class Actions:
    persist: list[Persist] = field(default_factory=list)
    send: list[Send] = field(default_factory=list)
    timers: list[SetTimer | CancelTimer] = field(default_factory=list)
    committed: list[CommittedBlock] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

    def extend(self, other: Actions) -> None:
        self.persist += other.persist
        self.send += other.send
        self.timers += other.timers
        self.committed += other.committed
        self.replies += other.replies
