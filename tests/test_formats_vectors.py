"""The test vectors of docs/FORMATS.md, recomputed with the project's code: the document cannot
drift from what the code writes. The signatures are also checked with an independent ed25519
implementation (`cryptography`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from consortium import codec
from consortium.certificate import commit_statement
from consortium.crypto import KeyPair, sha256
from consortium.devnet import make_devnet
from consortium.keys import key_path
from consortium.ledger.block import BlockHeader, Receipt, receipts_root, tx_root
from consortium.ledger.merkle import merkle_root
from consortium.ledger.tx import TX_DOMAIN, Transaction, decode_transaction
from consortium.notices import CommitNotice

FORMATS = Path(__file__).resolve().parent.parent / "docs" / "FORMATS.md"
CHAIN = "consortium-local"
MEMBER = "supplier-a"
NONCE = 1767225600000000
OP = "receivable.draft"
ARGS = {"debtor": "core", "amount": 1000000, "due_day": 90}
MEMBER_SEED = bytes(range(32))
NODE_SEED = bytes(range(32, 64))


def documented_vectors() -> dict[str, bytes]:
    """The `name = hex` lines of the code block in the "Test vectors" section."""
    text = FORMATS.read_text()
    section = text.split("\n## Test vectors\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block is not None, "no vectors block in docs/FORMATS.md"
    vectors = {}
    for line in block.group(1).splitlines():
        name, value = (part.strip() for part in line.split("=", 1))
        assert name not in vectors, f"{name} twice"
        vectors[name] = bytes.fromhex(value)
    return vectors


def computed_vectors() -> dict[str, bytes]:
    key = KeyPair(MEMBER_SEED)
    tx = Transaction(CHAIN, MEMBER, NONCE, OP, ARGS)
    stx = tx.sign(key)
    receipt = Receipt(stx.tx_id, True, "", {"receivable": "rcv-example"})
    header = BlockHeader(
        CHAIN,
        1,
        b"\x11" * 32,
        tx_root([stx]),
        receipts_root([receipt]),
        b"\x22" * 32,
        0,
        "bank-a",
        0,
    )
    node = KeyPair(NODE_SEED)
    statement = commit_statement(CHAIN, 0, 1, header.hash)
    notice = CommitNotice("bank-a", 1, header.hash, 0, (receipt,)).signed(CHAIN, node)
    return {
        "member_seed": MEMBER_SEED,
        "member_public_key": key.public_key,
        "member_key_file": codec.encode({"id": MEMBER, "kind": "member", "seed": MEMBER_SEED}),
        "member_pub_file": codec.encode(
            {"id": MEMBER, "kind": "member", "public_key": key.public_key}
        ),
        "tx_body": tx.body(),
        "tx_id": stx.tx_id,
        "tx_signed_message": TX_DOMAIN + stx.tx_id,
        "tx_signature": stx.signature,
        "tx_encoded": stx.raw,
        "request_batch": codec.encode_flat([stx.raw]),
        "tx_root": tx_root([stx]),
        "receipt": receipt.encoded(),
        "receipts_root": receipts_root([receipt]),
        "header": header.encode(),
        "block_hash": header.hash,
        "node_seed": NODE_SEED,
        "node_public_key": node.public_key,
        "commit_statement": statement,
        "commit_signature": node.sign(statement),
        "commit_notice": notice,
    }


@pytest.fixture(scope="module")
def vectors() -> dict[str, bytes]:
    return documented_vectors()


def test_every_documented_vector_is_what_the_code_computes(vectors):
    computed = computed_vectors()
    assert sorted(vectors) == sorted(computed)
    for name, value in computed.items():
        assert vectors[name].hex() == value.hex(), name


def test_the_key_files_are_what_keys_init_writes(tmp_path, vectors):
    config = make_devnet(tmp_path / "net").config  # runs `init_keys`
    written = codec.decode(key_path(config, MEMBER, "member", True).read_bytes())
    assert set(written) == {"id", "kind", "seed"}
    rewritten = codec.encode({**written, "seed": MEMBER_SEED})
    assert rewritten == vectors["member_key_file"]
    public = codec.decode(key_path(config, MEMBER, "member", False).read_bytes())
    assert set(public) == {"id", "kind", "public_key"}
    assert (
        codec.encode({**public, "public_key": vectors["member_public_key"]})
        == vectors["member_pub_file"]
    )


def test_the_transaction_vector_decodes_to_its_fields(vectors):
    stx = decode_transaction(vectors["tx_encoded"])
    assert (stx.tx.chain_id, stx.tx.sender, stx.tx.nonce, stx.tx.op) == (CHAIN, MEMBER, NONCE, OP)
    assert stx.tx.args == ARGS
    assert stx.tx_id == sha256(vectors["tx_body"]) == vectors["tx_id"]
    assert stx.signature_valid(vectors["member_public_key"])
    assert (
        vectors["tx_encoded"]
        == b"\x92\xc4"
        + bytes([len(vectors["tx_body"])])
        + vectors["tx_body"]
        + b"\xc4\x40"
        + vectors["tx_signature"]
    )
    assert vectors["request_batch"] == b"\x91\xc4" + bytes([len(stx.raw)]) + stx.raw


def test_the_signatures_verify_with_an_independent_ed25519(vectors):
    member = Ed25519PrivateKey.from_private_bytes(vectors["member_seed"])
    assert member.public_key().public_bytes_raw() == vectors["member_public_key"]
    assert member.sign(vectors["tx_signed_message"]) == vectors["tx_signature"]
    assert vectors["tx_signed_message"] == b"consortium/tx" + vectors["tx_id"]
    node = Ed25519PrivateKey.from_private_bytes(vectors["node_seed"])
    assert node.public_key().public_bytes_raw() == vectors["node_public_key"]
    Ed25519PublicKey.from_public_bytes(vectors["node_public_key"]).verify(
        vectors["commit_signature"], vectors["commit_statement"]
    )
    body, signature = codec.decode(vectors["commit_notice"])
    Ed25519PublicKey.from_public_bytes(vectors["node_public_key"]).verify(signature, body)


def test_the_hash_vectors_follow_the_documented_rules(vectors):
    assert vectors["block_hash"] == sha256(vectors["header"])
    assert vectors["tx_root"] == sha256(b"\x00" + vectors["tx_id"])
    assert vectors["receipts_root"] == sha256(b"\x00" + sha256(vectors["receipt"]))
    assert merkle_root([vectors["tx_id"]]) == vectors["tx_root"]
    header = BlockHeader.from_wire(codec.decode(vectors["header"]))
    assert (header.tx_root, header.receipts_root) == (vectors["tx_root"], vectors["receipts_root"])
    domain, chain, view, height, block_hash = codec.decode(vectors["commit_statement"])
    assert (domain, chain, view, height) == ("consortium/commit", CHAIN, 0, 1)
    assert block_hash == vectors["block_hash"]
    notice = CommitNotice.decode(
        vectors["commit_notice"], CHAIN, {"bank-a": vectors["node_public_key"]}
    )
    assert notice.receipts[0].encoded() == vectors["receipt"]
