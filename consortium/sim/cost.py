"""The normal-case message count of PBFT (Castro and Liskov, OSDI 1999, section 4.2), per
committed block, in point-to-point messages: what a fault-free run must measure.

The primary multicasts a PRE-PREPARE to the n-1 backups; each of the n-1 backups multicasts a
PREPARE to the n-1 others; each of the n replicas multicasts a COMMIT to the n-1 others. Every
`checkpoint_interval` blocks each replica multicasts a CHECKPOINT. Besides these the node adds
the clients' requests (one per transaction to each node) and commit notices (one per node and
block to each client), counted apart; status heartbeats go to the operators, not to peers.
"""

from __future__ import annotations

PHASES = ("PrePrepare", "Prepare", "Commit", "Checkpoint")


def normal_case_messages(n: int, checkpoint_interval: int) -> dict[str, float]:
    """Messages per committed block by type, as the paper's analysis gives them."""
    return {
        "PrePrepare": n - 1,
        "Prepare": (n - 1) ** 2,
        "Commit": n * (n - 1),
        "Checkpoint": n * (n - 1) / checkpoint_interval,
    }


def normal_case_total(n: int, checkpoint_interval: int) -> float:
    return sum(normal_case_messages(n, checkpoint_interval).values())
