"""The simulator's application checks blocks the way a ledger must (PBFT section 4.2's
'valid request' predicate, applied to whole blocks of client requests)."""

from __future__ import annotations

import pytest

from consortium.certificate import CommitCertificate
from consortium.crypto import sha256
from consortium.pbft.app import InvalidBlock, InvalidRequest, MissingParent
from consortium.sim.app import GENESIS, SimApp, SimBlock, make_request
from consortium.sim.runner import CHAIN_ID, node_key

NODES = ["n00", "n01", "n02", "n03"]
KEYS = {n: node_key(n).public_key for n in NODES}


def fresh() -> SimApp:
    return SimApp(CHAIN_ID, KEYS)


def block(height: int, parent: bytes, *requests: bytes, view: int = 0) -> bytes:
    return SimBlock(height, view, "n00", parent, requests).encode()


def test_valid_chain_validates_and_commits() -> None:
    app = fresh()
    r1, r2 = make_request("c", 1, b"a"), make_request("c", 2, b"b")
    first = block(1, GENESIS, r1)
    assert app.validate(1, 0, "n00", first) == sha256(first)
    second = block(2, sha256(first), r2)
    app.validate(2, 0, "n00", second)
    app.commit(1, first, CommitCertificate(0, 1, sha256(first), ()))
    assert app.committed_height() == 1
    assert app.lookup_request(app.request_id(r1)) == 1
    assert app.lookup_request(app.request_id(r2)) is None


@pytest.mark.parametrize(
    "bad",
    [
        block(1, sha256(b"elsewhere"), make_request("c", 1, b"a")),  # wrong parent
        block(2, GENESIS),  # wrong height
        block(1, GENESIS, make_request("c", 1, b"a"), make_request("c", 1, b"a")),  # twice
        block(1, GENESIS, make_request("c", 1, b"a")[:-1] + b"X"),  # forged tag
        block(1, GENESIS, view=9),  # from a future view
        b"\x93not a block",
    ],
)
def test_invalid_blocks_are_rejected(bad: bytes) -> None:
    with pytest.raises(InvalidBlock):
        fresh().validate(1, 0, "n00", bad)


def test_a_committed_request_is_never_accepted_again() -> None:
    app = fresh()
    request = make_request("c", 1, b"a")
    first = block(1, GENESIS, request)
    app.validate(1, 0, "n00", first)
    app.commit(1, first, CommitCertificate(0, 1, sha256(first), ()))
    with pytest.raises(InvalidBlock, match="already committed"):
        app.validate(2, 0, "n00", block(2, sha256(first), request))
    assert app.request_ids(app.propose(2, 0, "n00", [request])) == []


def test_blocks_wait_for_their_parent() -> None:
    with pytest.raises(MissingParent):
        fresh().validate(2, 0, "n00", block(2, GENESIS))


def test_untagged_requests_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        fresh().request_id(b"\x94\xa1c\x01\xc4\x01a\xc4\x00")


def test_install_requires_a_quorum_certificate() -> None:
    app = fresh()
    first = block(1, GENESIS, make_request("c", 1, b"a"))
    with pytest.raises(InvalidBlock):
        app.install(first, CommitCertificate(0, 1, sha256(first), ()))
    assert app.committed_height() == 0
