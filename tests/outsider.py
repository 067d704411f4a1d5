"""An outside client of a consortium network, written from docs/FORMATS.md alone.

It imports only the standard library, `msgpack`, `cryptography` (ed25519) and `paho-mqtt`,
never `consortium`, and does what any organisation's own software would:

1. reads a member's key file and every node's public key file from `keys/`,
2. reads a client login's password from `run/broker/credentials`,
3. waits for the nodes' status heartbeats, then builds and signs a new transaction,
4. publishes it in a request batch on `req/<client>` and waits for f+1 matching commit notices
   (each checked against its node's public key),
5. asks for its outcome (and for an id nobody knows) on `ask/<client>`, and retransmits the batch,
   checking the signed answers on `commit/<node>/to/<client>`,
6. opens one node's SQLite store read-only and checks the block that holds the transaction: the
   block hash from the stored header bytes, the Merkle roots, the parent link, the state root of
   the head, and the commit certificate's signatures and quorum.

Run as a script, it prints a JSON report and exits 0 when every check passed:

    python tests/outsider.py --root DIR --chain CHAIN --host HOST --port PORT --member supplier-a
"""

from __future__ import annotations

import argparse
import hashlib
import json
import queue
import secrets
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import paho.mqtt.client as mqtt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

TX_DOMAIN = b"consortium/tx"
NOTICE_DOMAIN = "consortium/notice"
UNKNOWN_DOMAIN = "consortium/unknown"
COMMIT_DOMAIN = "consortium/commit"
MERKLE_EMPTY = hashlib.sha256(b"consortium/merkle/empty").digest()
STATE_ACCUMULATOR_BYTES = 256


class CheckFailed(Exception):
    """Something the network or its store said does not match the document."""


def require(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


# --- canonical msgpack ---------------------------------------------------------------------------


def _sorted_maps(value: Any) -> Any:
    if isinstance(value, dict):
        require(all(isinstance(k, str) for k in value), "map key is not a string")
        return {k: _sorted_maps(value[k]) for k in sorted(value, key=lambda k: k.encode())}
    if isinstance(value, list | tuple):
        return [_sorted_maps(v) for v in value]
    require(not isinstance(value, float), "floats are not allowed")
    return value


def pack(value: Any) -> bytes:
    """The canonical encoding: maps sorted by their keys' UTF-8 bytes, str as str, bytes as bin,
    every integer and length in its shortest form (msgpack-python's packer does the last two)."""
    return msgpack.packb(_sorted_maps(value), use_bin_type=True)


def _only_canonical_types(value: Any) -> None:
    if isinstance(value, float | msgpack.ExtType):
        raise CheckFailed(f"{type(value).__name__} is not allowed")
    if isinstance(value, dict):
        keys = list(value)
        require(all(isinstance(k, str) for k in keys), "map key is not a string")
        encoded = [k.encode() for k in keys]
        require(encoded == sorted(set(encoded)), "map keys are not sorted and unique")
        for item in value.values():
            _only_canonical_types(item)
    elif isinstance(value, tuple):
        for item in value:
            _only_canonical_types(item)


def unpack(data: bytes) -> Any:
    """Decode one canonical value (arrays as tuples); anything else raises CheckFailed."""
    try:
        value = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)
    except Exception as exc:
        raise CheckFailed(f"not msgpack: {exc}") from None
    _only_canonical_types(value)
    require(msgpack.packb(value, use_bin_type=True) == data, "not the canonical encoding")
    return value


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- files ---------------------------------------------------------------------------------------


def read_key_file(path: Path, identity: str, kind: str, field: str) -> bytes:
    value = unpack(path.read_bytes())
    require(isinstance(value, dict), f"{path} is not a map")
    require(value.get("id") == identity and value.get("kind") == kind, f"{path}: wrong id/kind")
    raw = value.get(field)
    require(isinstance(raw, bytes) and len(raw) == 32, f"{path}: {field} is not 32 bytes")
    return raw


def member_key(keys_dir: Path, member: str) -> Ed25519PrivateKey:
    seed = read_key_file(keys_dir / f"{member}.member.key", member, "member", "seed")
    public = read_key_file(keys_dir / f"{member}.member.pub", member, "member", "public_key")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    require(key.public_key().public_bytes_raw() == public, f"{member}'s key files disagree")
    return key


def node_keys(keys_dir: Path) -> dict[str, bytes]:
    keys = {}
    for path in sorted(keys_dir.glob("*.node.pub")):
        node = path.name.removesuffix(".node.pub")
        keys[node] = read_key_file(path, node, "node", "public_key")
    require(len(keys) >= 4, f"{len(keys)} node keys in {keys_dir}, PBFT needs 4")
    return keys


def broker_password(run_dir: Path, username: str) -> str:
    value = unpack((run_dir / "broker" / "credentials").read_bytes())
    password = value["users"][username]
    require(isinstance(password, str), f"no password for {username}")
    return password


def max_faulty(n: int) -> int:
    return (n - 1) // 3


def quorum_size(n: int) -> int:
    return (n + max_faulty(n) + 2) // 2


# --- ledger objects ------------------------------------------------------------------------------


def sign_transaction(
    key: Ed25519PrivateKey, chain: str, sender: str, nonce: int, op: str, args: dict[str, Any]
) -> tuple[bytes, bytes]:
    """The encoded transaction `[body, signature]` and its id."""
    body = pack([chain, sender, nonce, op, args])
    tx_id = sha256(body)
    signature = key.sign(TX_DOMAIN + tx_id)
    return pack([body, signature]), tx_id


def transaction_id(raw: bytes) -> bytes:
    body, signature = unpack(raw)
    require(isinstance(body, bytes) and isinstance(signature, bytes), "transaction shape")
    require(len(signature) == 64, "transaction signature is not 64 bytes")
    return sha256(body)


def merkle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return MERKLE_EMPTY
    level = [sha256(b"\x00" + leaf) for leaf in leaves]
    while len(level) > 1:
        paired = [sha256(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def state_root(rows: list[tuple[str, bytes]]) -> bytes:
    accumulator = 0
    for key, value in rows:
        term = hashlib.shake_256(pack(key) + value).digest(STATE_ACCUMULATOR_BYTES)
        accumulator += int.from_bytes(term, "little")
    accumulator %= 1 << (8 * STATE_ACCUMULATOR_BYTES)
    return sha256(accumulator.to_bytes(STATE_ACCUMULATOR_BYTES, "little"))


def read_notice(data: bytes, chain: str, keys: dict[str, bytes]) -> tuple:
    """A commit notice's fields `(node, height, block_hash, day, receipts)`, signature checked."""
    body, signature = unpack(data)
    require(isinstance(body, bytes) and isinstance(signature, bytes), "notice shape")
    domain, notice_chain, node, height, block_hash, day, receipts = unpack(body)
    require(domain == NOTICE_DOMAIN and notice_chain == chain, "notice for another chain")
    require(node in keys and verify(keys[node], body, signature), f"notice not signed by {node}")
    return node, height, block_hash, day, receipts


# --- the bus -------------------------------------------------------------------------------------


class Bus:
    """One MQTT 3.1.1 connection (clean session, QoS 0) delivering into a queue."""

    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.refused: str | None = None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{username}-outsider-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, m: self.inbox.put((m.topic, m.payload))
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        self.connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, reasons: Any, _props: Any) -> None:
        if any(r.is_failure for r in reasons):
            self.refused = f"subscription refused: {reasons}"
        self.subscribed.set()

    def subscribe(self, *filters: str, timeout_s: float = 10.0) -> None:
        require(self.connected.wait(timeout_s), "no CONNACK from the broker")
        require(self.refused is None, f"broker refused: {self.refused}")
        self.client.subscribe([(f, 0) for f in filters])
        require(self.subscribed.wait(timeout_s), "no SUBACK from the broker")
        require(self.refused is None, f"broker refused: {self.refused}")

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=0)

    def next(self, until: float) -> tuple[str, bytes] | None:
        try:
            return self.inbox.get(timeout=max(0.0, min(0.2, until - time.monotonic())))
        except queue.Empty:
            return None

    def drain(self, seconds: float) -> None:
        """Drop whatever arrives for `seconds`."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.next(until)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for_heartbeats(bus: Bus, chain: str, nodes: set[str], timeout_s: float) -> dict:
    """The retained status heartbeats (unsigned maps) until every node has reported once."""
    prefix = f"c/{chain}/status/"
    heard: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while set(heard) != nodes:
        require(time.monotonic() < deadline, f"heartbeats only from {sorted(heard)}")
        message = bus.next(deadline)
        if message is None or not message[0].startswith(prefix):
            continue
        status = unpack(message[1])
        node = message[0].removeprefix(prefix)
        if isinstance(status, dict) and status.get("id") == node and node in nodes:
            heard[node] = status
    return heard


def wait_for_outcome(
    bus: Bus,
    chain: str,
    keys: dict[str, bytes],
    batch_topic: str,
    batch: bytes,
    tx_id: bytes,
    timeout_s: float,
    retransmit_s: float = 5.0,
) -> tuple[tuple, list[str], tuple]:
    """Publish the batch (again every `retransmit_s`) until f+1 distinct nodes sent matching
    commit notices for `tx_id`; returns the claim, its nodes and the receipt."""
    need = max_faulty(len(keys)) + 1
    votes: dict[tuple, set[str]] = {}
    prefix = f"c/{chain}/commit/"
    deadline = time.monotonic() + timeout_s
    resend = 0.0
    while True:
        now = time.monotonic()
        require(now < deadline, f"no {need} matching commit notices within {timeout_s} s")
        if now >= resend:
            bus.publish(batch_topic, batch)
            resend = now + retransmit_s
        message = bus.next(min(deadline, resend))
        if message is None or not message[0].startswith(prefix):
            continue
        try:
            node, height, block_hash, day, receipts = read_notice(message[1], chain, keys)
        except (CheckFailed, ValueError, TypeError):
            continue  # not a valid notice: never counted
        for receipt in receipts:
            if receipt[0] == tx_id:
                claim = (height, block_hash, day, pack(receipt))
                voters = votes.setdefault(claim, set())
                voters.add(node)
                if len(voters) >= need:
                    return claim, sorted(voters), receipt


def read_answer(data: bytes, chain: str, keys: dict[str, bytes]) -> tuple[str, str, tuple]:
    """An answer to one client: `("notice", node, fields)` or `("unknown", node, fields)`."""
    body, signature = unpack(data)
    require(isinstance(body, bytes) and isinstance(signature, bytes), "answer shape")
    fields = unpack(body)
    if fields[0] == NOTICE_DOMAIN:
        return "notice", fields[2], read_notice(data, chain, keys)[1:]
    domain, answer_chain, node, height, tx_ids = fields
    require(domain == UNKNOWN_DOMAIN and answer_chain == chain, "answer for another chain")
    require(node in keys and verify(keys[node], body, signature), f"answer not signed by {node}")
    require(isinstance(height, int) and all(len(t) == 32 for t in tx_ids), "unknown notice types")
    return "unknown", node, (height, tx_ids)


def wait_for_answers(
    bus: Bus,
    chain: str,
    keys: dict[str, bytes],
    client: str,
    topic: str,
    payload: bytes,
    claim: tuple,
    unknown_id: bytes | None,
    timeout_s: float,
    repeat_s: float = 2.0,
) -> tuple[list[str], dict[str, int]]:
    """Publish `payload` on `topic` (again every `repeat_s`) until f+1 nodes answered the known
    transaction of `claim` on `commit/<node>/to/<client>` and, if `unknown_id` is given, n-f nodes
    said they do not know it. Returns who answered what."""
    n, f = len(keys), max_faulty(len(keys))
    tx_id = unpack(claim[3])[0]
    known: set[str] = set()
    unknown: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    again = 0.0
    while len(known) < f + 1 or (unknown_id is not None and len(unknown) < n - f):
        now = time.monotonic()
        require(now < deadline, f"answers: {sorted(known)} known, {sorted(unknown)} unknown")
        if now >= again:
            bus.publish(topic, payload)
            again = now + repeat_s
        message = bus.next(min(deadline, again))
        if message is None:
            continue
        levels = message[0].split("/")
        if levels[2:3] != ["commit"] or levels[4:] != ["to", client]:
            continue
        kind, node, fields = read_answer(message[1], chain, keys)
        require(node == levels[3], f"{node}'s answer on {levels[3]}'s topic")
        if kind == "notice":
            height, block_hash, day, receipts = fields
            asked = {tx_id, unknown_id}
            require(all(r[0] in asked for r in receipts), "an answer lists a receipt not asked")
            for receipt in receipts:
                if (height, block_hash, day, pack(receipt)) == claim:
                    known.add(node)
        else:
            height, tx_ids = fields
            require(tx_id not in tx_ids, f"{node} says it does not know a committed transaction")
            if unknown_id in tx_ids:
                unknown[node] = height
    return sorted(known), unknown


# --- the store -----------------------------------------------------------------------------------


def check_store(
    path: Path, chain: str, keys: dict[str, bytes], raw: bytes, tx_id: bytes, claim: tuple
) -> dict[str, Any]:
    """Check the block holding `tx_id` in one node's store against the accepted outcome."""
    height, block_hash, day, receipt_bytes = claim
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        db.execute("BEGIN")  # one snapshot for every read below
        (stored_chain,) = db.execute("SELECT value FROM meta WHERE key = 'chain_id'").fetchone()
        require(unpack(stored_chain) == chain, "store of another chain")
        rows = db.execute("SELECT height, position FROM txs WHERE tx_id = ?", (tx_id,)).fetchall()
        require(len(rows) == 1, f"transaction indexed {len(rows)} times")
        (row_height, position) = rows[0]
        require(row_height == height, "stored at another height than the notices say")
        stored_hash, header, txs, receipts, certificate = db.execute(
            "SELECT hash, header, txs, receipts, certificate FROM blocks WHERE height = ?",
            (height,),
        ).fetchone()

        # The block hash is SHA-256 of the stored header bytes.
        require(sha256(header) == stored_hash == block_hash, "block hash")
        fields = unpack(header)
        require(len(fields) == 9, "header is not 9 fields")
        h_chain, h_height, parent, tx_root, receipts_root, h_state_root, h_day = fields[:7]
        proposer, view = fields[7:]
        require((h_chain, h_height, h_day) == (chain, height, day), "header chain/height/day")
        (parent_hash,) = db.execute(
            "SELECT hash FROM blocks WHERE height = ?", (height - 1,)
        ).fetchone()
        require(parent == parent_hash, "parent hash")

        raws = unpack(txs)
        require(raws[position] == raw, "stored transaction bytes differ from those sent")
        require(merkle_root([transaction_id(r) for r in raws]) == tx_root, "tx_root")
        stored_receipts = unpack(receipts)
        require(len(stored_receipts) == len(raws), "one receipt per transaction")
        require(pack(stored_receipts[position]) == receipt_bytes, "stored receipt differs")
        leaves = [sha256(pack(r)) for r in stored_receipts]
        require(merkle_root(leaves) == receipts_root, "receipts_root")

        # The commit certificate: a quorum of node signatures over the commit statement.
        require(certificate is not None, "no certificate")
        c_view, c_height, c_hash, signatures = unpack(certificate)
        require((c_height, c_hash) == (height, block_hash), "certificate is for another block")
        statement = pack([COMMIT_DOMAIN, chain, c_view, c_height, c_hash])
        signers = [node for node, _ in signatures]
        require(len(set(signers)) == len(signers), "a node signs twice")
        for node, signature in signatures:
            require(node in keys, f"signer {node} is not a node")
            require(verify(keys[node], statement, signature), f"bad commit signature by {node}")
        need = quorum_size(len(keys))
        require(len(signers) >= need, f"{len(signers)} signatures, a quorum is {need}")

        # The state table matches the state root of the head block.
        (head_header,) = db.execute(
            "SELECT header FROM blocks ORDER BY height DESC LIMIT 1"
        ).fetchone()
        state_rows = db.execute("SELECT key, value FROM state").fetchall()
        require(state_root(state_rows) == unpack(head_header)[5], "state root of the head")
        db.execute("COMMIT")
    finally:
        db.close()
    return {
        "header_view": view,
        "proposer": proposer,
        "position": position,
        "block_txs": len(raws),
        "certificate_view": c_view,
        "certificate_signers": signers,
        "quorum": need,
        "state_entries": len(state_rows),
        "state_root": h_state_root.hex(),
    }


def _wait_for_store(path: Path, tx_id: bytes, timeout_s: float) -> None:
    """A node publishes its notice after the block is in its store; allow a moment anyway."""
    deadline = time.monotonic() + timeout_s
    while True:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            if db.execute("SELECT 1 FROM txs WHERE tx_id = ?", (tx_id,)).fetchone():
                return
        require(time.monotonic() < deadline, f"transaction not in {path}")
        time.sleep(0.1)


# --- the whole walk ------------------------------------------------------------------------------


def run(
    root: Path,
    chain: str,
    host: str,
    port: int,
    member: str,
    client: str,
    debtor: str,
    timeout_s: float,
) -> dict[str, Any]:
    keys_dir, run_dir, data_dir = root / "keys", root / "run", root / "data"
    key = member_key(keys_dir, member)
    nodes = node_keys(keys_dir)
    password = broker_password(run_dir, f"client-{client}")
    deadline = time.monotonic() + timeout_s

    bus = Bus(host, port, f"client-{client}", password)
    try:
        bus.subscribe(
            f"c/{chain}/commit/+", f"c/{chain}/commit/+/to/{client}", f"c/{chain}/status/+"
        )
        heartbeats = wait_for_heartbeats(bus, chain, set(nodes), deadline - time.monotonic())
        nonce = time.time_ns() // 1000
        args = {"due_day": 90, "debtor": debtor, "amount": 123_456}  # any order: pack sorts
        raw, tx_id = sign_transaction(key, chain, member, nonce, "receivable.draft", args)
        batch = pack([raw])
        topic = f"c/{chain}/req/{client}"
        claim, voters, receipt = wait_for_outcome(
            bus, chain, nodes, topic, batch, tx_id, deadline - time.monotonic()
        )
        # Ask for the outcome, together with an id no node can know.
        nobody_knows = secrets.token_bytes(32)
        query = pack([tx_id, nobody_knows])
        asked, unknown = wait_for_answers(
            bus,
            chain,
            nodes,
            client,
            f"c/{chain}/ask/{client}",
            query,
            claim,
            nobody_knows,
            deadline - time.monotonic(),
        )
        # Retransmit the committed transaction: the nodes answer with its receipt (the same bytes
        # as their answers to the query, so let the last of those arrive first).
        bus.drain(0.5)
        retransmitted, _ = wait_for_answers(
            bus, chain, nodes, client, topic, batch, claim, None, deadline - time.monotonic()
        )
    finally:
        bus.close()

    store_node = voters[0]
    store = data_dir / store_node / "ledger.sqlite"
    _wait_for_store(store, tx_id, 5.0)
    checked = check_store(store, chain, nodes, raw, tx_id, claim)
    height, block_hash, day, _ = claim
    return {
        "tx_id": tx_id.hex(),
        "tx": raw.hex(),
        "nonce": nonce,
        "height": height,
        "block_hash": block_hash.hex(),
        "business_day": day,
        "ok": receipt[1],
        "reason": receipt[2],
        "result": _jsonable(receipt[3]),
        "notices_from": voters,
        "query_answers_from": asked,
        "unknown_answers": unknown,
        "retransmission_answers_from": retransmitted,
        "heartbeat_heights": {n: s.get("height") for n, s in sorted(heartbeats.items())},
        "store_node": store_node,
        **checked,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the directory of nodes.yaml")
    parser.add_argument("--chain", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--member", required=True, help="the member who signs")
    parser.add_argument("--client", help="the client login's topic name (default: the member)")
    parser.add_argument("--debtor", default="core")
    parser.add_argument("--timeout", type=float, default=30.0)
    options = parser.parse_args(argv)
    try:
        report = run(
            options.root,
            options.chain,
            options.host,
            options.port,
            options.member,
            options.client or options.member,
            options.debtor,
            options.timeout,
        )
    except CheckFailed as failed:
        print(f"check failed: {failed}", file=sys.stderr)
        return 1
    report["consortium_modules"] = sorted(
        m for m in sys.modules if m == "consortium" or m.startswith("consortium.")
    )
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
