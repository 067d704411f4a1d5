"""Binary Merkle root over 32-byte leaves, domain-separated so a leaf can never pass for a node."""

from __future__ import annotations

import hashlib

_EMPTY = hashlib.sha256(b"consortium/merkle/empty").digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """Root of the tree whose leaves are `leaves` in order; an odd node is carried up unchanged."""
    if not leaves:
        return _EMPTY
    sha = hashlib.sha256
    level = [sha(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
