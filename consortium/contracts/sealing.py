"""Data only some members may read, stored on the chain as sealed boxes, one per recipient.

The chain cannot read the boxes; it checks that there is exactly one for each entitled member
(the regulators always among them) and that each is long enough to be a sealed box, so nobody
entitled is left out and nobody else is given a copy. What a recipient opens it checks against
a commitment published earlier.
"""

from __future__ import annotations

from consortium.contracts.args import Args
from consortium.contracts.context import RuleViolation, StateView
from consortium.contracts.registry import members_with_role
from consortium.roles import Role

SEALED_BOX_OVERHEAD = 48
MAX_CIPHERTEXT_BYTES = 4096
MAX_RECIPIENTS = 16


def sealed_boxes(view: StateView, args: Args, name: str, readers: set[str]) -> dict[str, bytes]:
    """The boxes in argument `name`: exactly one for each of `readers` and each regulator."""
    sealed = args.blobs_by_member(name, MAX_RECIPIENTS, MAX_CIPHERTEXT_BYTES)
    recipients = sorted(readers | set(members_with_role(view, Role.REGULATOR)))
    if sorted(sealed) != recipients:
        raise RuleViolation(
            f"recipients must be exactly {', '.join(recipients)}, not {', '.join(sorted(sealed))}"
        )
    if any(len(box) <= SEALED_BOX_OVERHEAD for box in sealed.values()):
        raise RuleViolation("a ciphertext is too short to be a sealed box")
    return sealed
