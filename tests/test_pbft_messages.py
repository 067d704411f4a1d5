"""Wire format of the PBFT messages (section 4.1: every message is signed by its sender)."""

from __future__ import annotations

import pytest

from consortium import codec
from consortium.certificate import CommitCertificate, certificate_problems
from consortium.crypto import sha256, verify
from consortium.errors import CodecError
from consortium.pbft.messages import (
    Checkpoint,
    Commit,
    CommittedBlocks,
    FetchBlocks,
    ForwardRequests,
    NewView,
    Prepare,
    PreparedProof,
    PrePrepare,
    Signed,
    Status,
    ViewChange,
    sign,
    signing_bytes,
)
from consortium.sim.runner import CHAIN_ID, node_key

D = sha256(b"block")


def signed(body: object, node: str = "n01") -> Signed:
    return sign(node_key(node), CHAIN_ID, node, body)  # type: ignore[arg-type]


def examples() -> list[object]:
    pp = signed(PrePrepare(0, 1, D, b"block"), "n00")
    proof = PreparedProof(pp, (signed(Prepare(0, 1, D)), signed(Prepare(0, 1, D), "n02")))
    vc = ViewChange(1, 0, D, (signed(Checkpoint(4, D)),), (proof,))
    cert = CommitCertificate(0, 1, D, (("n01", b"s" * 64),))
    return [
        pp.body,
        Prepare(0, 1, D),
        Commit(3, 9, D),
        Checkpoint(16, D),
        vc,
        NewView(1, (signed(vc),), (signed(PrePrepare(1, 1, D, b"block"), "n01"),)),
        Status(2, True, 7, 4),
        FetchBlocks(5),
        CommittedBlocks(((b"block", cert),)),
        ForwardRequests((b"r1", b"r2")),
    ]


@pytest.mark.parametrize("body", examples(), ids=lambda b: type(b).__name__)
def test_every_message_round_trips(body: object) -> None:
    """Section 4.1: every protocol message is a signed, canonical wire value."""
    message = signed(body)
    assert Signed.decode(message.encode()) == message


def test_types_are_checked_strictly() -> None:
    """Section 4.1: a malformed message is rejected by the decoder, field by field."""
    good = signed(Prepare(0, 1, D)).to_wire()
    kind, sender, body, sig = good
    for bad in (
        (kind, sender, (True, 1, D), sig),  # bool where an int belongs
        (kind, sender, (0, -1, D), sig),  # negative sequence number
        (kind, sender, (0, 1, D[:31]), sig),  # short digest
        (kind, sender, (0, 1, D, b"extra"), sig),
        (kind, sender, body, sig[:63]),
        (99, sender, body, sig),  # unknown kind
        (kind, 7, body, sig),
    ):
        with pytest.raises(CodecError):
            Signed.decode(codec.encode_flat(bad))


def test_signatures_are_domain_separated_and_bound_to_the_chain() -> None:
    """Section 4.1: a PREPARE's signature is no COMMIT's, and no other chain's PREPARE."""
    message = signed(Prepare(0, 1, D))
    key = node_key("n01").public_key
    assert verify(key, signing_bytes(CHAIN_ID, "n01", message.body), message.signature)
    assert not verify(key, signing_bytes(CHAIN_ID, "n01", Commit(0, 1, D)), message.signature)
    assert not verify(key, signing_bytes("other-chain", "n01", message.body), message.signature)


def test_commit_votes_form_a_commit_certificate() -> None:
    """Section 4.2: COMMIT signatures are certificate signatures; votes form the block's proof."""
    nodes = ["n00", "n01", "n02", "n03"]
    keys = {n: node_key(n).public_key for n in nodes}
    votes = [signed(Commit(2, 5, D), n) for n in nodes[:3]]
    cert = CommitCertificate(2, 5, D, tuple(sorted((v.sender, v.signature) for v in votes)))
    assert certificate_problems(cert, CHAIN_ID, keys) == []
    short = CommitCertificate(2, 5, D, cert.signatures[:2])
    assert certificate_problems(short, CHAIN_ID, keys) != []
