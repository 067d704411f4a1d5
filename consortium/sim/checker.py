"""The outside observer: one canonical history that every honest replica must agree with.

It sees only what replicas report (committed blocks, views) and what clients submitted and
accepted, never replica internals, so a bug in the replica cannot hide itself here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consortium.pbft.actions import CommittedBlock


@dataclass
class Checker:
    submitted: set[bytes] = field(default_factory=set)
    canonical: dict[int, bytes] = field(default_factory=dict)
    canonical_ids: dict[int, tuple[bytes, ...]] = field(default_factory=dict)
    executed_at: dict[bytes, int] = field(default_factory=dict)
    heights: dict[str, int] = field(default_factory=dict)
    views: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    quorum: int = 0
    commit_votes: dict[tuple[int, int, bytes], set[str]] = field(default_factory=dict)
    certified: dict[int, bytes] = field(default_factory=dict)
    conflicting: set[int] = field(default_factory=set)

    def _violate(self, message: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(message)

    def on_commit(self, replica: str, block: CommittedBlock) -> None:
        self.on_committed(replica, block.height, block.certificate.block_hash, block.request_ids)

    def on_committed(
        self, replica: str, height: int, digest: bytes, request_ids: tuple[bytes, ...]
    ) -> None:
        """Agreement, prefix order, validity and exactly-once, checked at every commit."""
        previous = self.heights.get(replica, 0)
        if height != previous + 1:
            self._violate(f"{replica} committed height {height} after {previous}")
        self.heights[replica] = max(previous, height)
        known = self.canonical.get(height)
        if known is None:
            self.canonical[height] = digest
            self.canonical_ids[height] = request_ids
            for rid in request_ids:
                if rid not in self.submitted:
                    self._violate(f"height {height} executes a request no client submitted")
                first = self.executed_at.get(rid)
                if first is not None:
                    self._violate(f"request executed at heights {first} and {height}")
                else:
                    self.executed_at[rid] = height
        elif known != digest:
            self._violate(f"{replica} committed a different block at height {height}")

    def on_commit_vote(self, sender: str, view: int, seq: int, digest: bytes) -> None:
        """Two commit quorums for different blocks at one height break safety even if no
        replica has executed either yet: watch the votes on the wire, not only the ledgers."""
        voters = self.commit_votes.setdefault((view, seq, digest), set())
        voters.add(sender)
        if self.quorum and len(voters) == self.quorum:
            known = self.certified.setdefault(seq, digest)
            if known != digest and seq not in self.conflicting:
                self.conflicting.add(seq)
                self._violate(f"two commit quorums for different blocks at height {seq}")

    def on_view(self, replica: str, view: int) -> None:
        before = self.views.get(replica, 0)
        if view < before:
            self._violate(f"{replica} went back from view {before} to {view}")
        self.views[replica] = max(before, view)

    def on_accept(self, request_id: bytes, height: int, digest: bytes) -> None:
        """A client accepted f + 1 matching replies: they must describe the canonical block."""
        if self.canonical.get(height) != digest or request_id not in self.canonical_ids.get(
            height, ()
        ):
            self._violate(f"a client accepted a reply for height {height} that is not canonical")

    @property
    def height(self) -> int:
        return len(self.canonical)
