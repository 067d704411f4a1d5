"""The whole node core in one process: four `NodeCore`s over the real ledger and store, wired by
a tiny in-memory bus and carried out by `effects.carry_out`, the code the node process uses.

What it pins: a client whose notices were lost learns its outcome from the nodes' answers (to a
retransmission or a query); a step's records are written and synced before anything it sends
leaves; an unexpected error escapes the step instead of being swallowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from consortium import codec
from consortium.client.protocol import ClientCore, Refused
from consortium.client.wallet import Wallet
from consortium.devnet import Devnet, make_devnet
from consortium.ledger.ledger import Ledger, store_path
from consortium.ledger.tx import SignedTransaction
from consortium.node.core import NodeCore, Publish
from consortium.node.effects import carry_out
from consortium.notices import (
    Answer,
    CommitNotice,
    OverloadedNotice,
    UnknownNotice,
    decode_answer,
    encode_outcome_query,
)
from consortium.roles import max_faulty
from consortium.transport import topics

CLIENT = "load-0000"


@dataclass
class Shell:
    """One node's disk, bus and timers, recording the order of what is carried out."""

    name: str
    core: NodeCore
    net: CoreNet
    timers: dict[str, int] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    def write_consensus_records(self, writes: list[tuple[str, bytes | None]]) -> None:
        self.events.append("write")
        self.core.ledger.store.write_consensus_records(writes)

    def sync(self) -> None:
        self.events.append("sync")
        self.core.ledger.store.sync()

    def publish(self, item: Publish) -> None:
        self.events.append("publish")
        self.net.queue.append((self.name, item))

    def set_timer(self, name: str, at_ms: int) -> None:
        self.timers[name] = at_ms

    def cancel_timer(self, name: str) -> None:
        self.timers.pop(name, None)


class CoreNet:
    def __init__(self, tmp: Path, nodes: int = 4, **overrides: object) -> None:
        self.devnet: Devnet = make_devnet(tmp / "net", nodes=nodes, load_signers=1, **overrides)
        config = self.devnet.config
        self.chain = config.chain_id
        self.now = 0
        self.queue: list[tuple[str, Publish]] = []
        self.to_clients: list[tuple[str, Publish]] = []
        self.shells: dict[str, Shell] = {}
        for node_id in config.node_ids:
            ledger = Ledger(config, self.devnet.keys, store_path(config, node_id))
            core = NodeCore(
                config, self.devnet.keys, node_id, self.devnet.node_pairs[node_id], ledger
            )
            self.shells[node_id] = Shell(node_id, core, self)
        for shell in self.shells.values():
            self.carry(shell, shell.core.start(self.now))

    def carry(self, shell: Shell, step) -> None:
        carry_out(step, shell, shell, shell)

    def request(self, node_id: str, txs: list[SignedTransaction]) -> None:
        """A client batch on `req/<client>` as one node receives it, then admitted."""
        shell = self.shells[node_id]
        topic = topics.request_topic(self.chain, CLIENT)
        payload = codec.encode_flat([t.raw for t in txs])
        self.carry(shell, shell.core.on_message(topic, payload, self.now))
        while shell.core.has_queued_requests:
            self.carry(shell, shell.core.admit_next(self.now))

    def ask(self, node_id: str, tx_ids: list[bytes]) -> None:
        shell = self.shells[node_id]
        topic = topics.ask_topic(self.chain, CLIENT)
        self.carry(shell, shell.core.on_message(topic, encode_outcome_query(tx_ids), self.now))

    def deliver(self) -> None:
        while self.queue:
            sender, item = self.queue.pop(0)
            parsed = topics.parse_topic(self.chain, item.topic)
            if parsed.kind is not topics.TopicKind.PBFT:
                self.to_clients.append((sender, item))
                continue
            for node_id, shell in self.shells.items():
                if node_id != sender and parsed.dest in (None, node_id):
                    self.carry(shell, shell.core.on_message(item.topic, item.payload, self.now))

    def advance(self, ms: int) -> None:
        end = self.now + ms
        while True:
            due = sorted(
                (at, node_id, name)
                for node_id, shell in self.shells.items()
                for name, at in shell.timers.items()
                if at <= end
            )
            if not due:
                break
            at, node_id, name = due[0]
            self.now = max(self.now, at)
            shell = self.shells[node_id]
            del shell.timers[name]
            self.carry(shell, shell.core.on_timer(name, self.now))
            self.deliver()
        self.now = end

    def answers(self) -> list[Answer]:
        """What the nodes addressed to the client alone (not the broadcast notices)."""
        self.deliver()
        keys = dict(self.devnet.keys.node_keys)
        return [
            decode_answer(item.payload, self.chain, keys)
            for _, item in self.to_clients
            if item.topic.endswith(f"/to/{CLIENT}")
        ]


def _draft(net: CoreNet, nonce: int) -> SignedTransaction:
    wallet = Wallet(net.chain, CLIENT, net.devnet.member_pairs[CLIENT], nonce)
    return wallet.sign("receivable.draft", {"debtor": "core", "amount": 7, "due_day": 90})


def _commit(net: CoreNet, stx: SignedTransaction) -> None:
    for node_id in net.shells:
        net.request(node_id, [stx])
    net.deliver()
    net.advance(100)
    heights = {s.core.ledger.head.height for s in net.shells.values()}
    assert heights == {1}, heights


def test_a_retransmitted_committed_transaction_gets_its_outcome_from_f_plus_1_nodes(tmp_path):
    net = CoreNet(tmp_path)
    stx = _draft(net, 1)
    _commit(net, stx)
    net.to_clients.clear()  # the broadcast commit notices were lost to this client
    for node_id in net.shells:  # it retransmits; admission refuses the used nonce ...
        net.request(node_id, [stx])
    answers = net.answers()  # ... and each node answers the client alone
    assert len(answers) == len(net.shells)
    claims = set()
    for answer in answers:
        assert isinstance(answer, CommitNotice)
        assert [r.tx_id for r in answer.receipts] == [stx.tx_id]
        claims.add((answer.height, answer.block_hash, answer.receipts[0].leaf()))
    assert len(claims) == 1 and len(answers) >= max_faulty(len(net.shells)) + 1
    assert next(iter(claims))[0] == 1


def test_an_outcome_query_answers_committed_and_unknown_transactions(tmp_path):
    net = CoreNet(tmp_path)
    stx = _draft(net, 1)
    _commit(net, stx)
    net.to_clients.clear()
    never_sent = bytes(32)
    for node_id in net.shells:
        net.ask(node_id, [stx.tx_id, never_sent])
    answers = net.answers()
    notices = [a for a in answers if isinstance(a, CommitNotice)]
    unknown = [a for a in answers if isinstance(a, UnknownNotice)]
    assert len(notices) == len(unknown) == len(net.shells)
    assert {(n.height, n.receipts[0].tx_id, n.receipts[0].ok) for n in notices} == {
        (1, stx.tx_id, True)
    }
    assert {(u.height, u.tx_ids) for u in unknown} == {(1, (never_sent,))}


def test_a_malformed_query_is_counted_and_answered_with_nothing(tmp_path):
    net = CoreNet(tmp_path)
    shell = next(iter(net.shells.values()))
    topic = topics.ask_topic(net.chain, CLIENT)
    for payload in (b"\xc1", codec.encode([]), codec.encode([b"short"]), codec.encode("x")):
        step = shell.core.on_message(topic, payload, 0)
        assert not step.publish
    assert shell.core.rejects.by_reason["malformed_query"] == 4


def test_every_step_writes_and_syncs_its_records_before_anything_it_sends(tmp_path):
    net = CoreNet(tmp_path)
    for nonce in (1, 2, 3):
        stx = _draft(net, nonce)
        for node_id in net.shells:
            net.request(node_id, [stx])
        net.deliver()
        net.advance(100)
    assert {s.core.ledger.head.height for s in net.shells.values()} == {3}
    for shell in net.shells.values():
        assert "write" in shell.events
        unsynced = False
        for event in shell.events:
            if event == "write":
                unsynced = True
            elif event == "sync":
                unsynced = False
            elif event == "publish":
                assert not unsynced, f"{shell.name} published before syncing its records"
        # What was sent is on disk: each block's pre-prepare and prepared certificate, the
        # records a restart reads back.
        records = shell.core.ledger.store.consensus_records()
        for height in (1, 2, 3):
            assert f"pp/{height:012d}" in records and f"proof/{height:012d}" in records


def test_an_unexpected_error_in_a_commit_escapes_the_step(tmp_path, monkeypatch):
    net = CoreNet(tmp_path)
    victim = net.shells[next(iter(net.shells))]

    def broken_commit(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(victim.core.ledger, "commit", broken_commit)
    stx = _draft(net, 1)
    for node_id in net.shells:
        net.request(node_id, [stx])
    with pytest.raises(OSError, match="disk full"):
        net.deliver()
        net.advance(100)


def test_an_overloaded_node_refuses_at_once_and_its_backlog_stays_bounded(tmp_path):
    """A backlog room of 8 (batches of 8, one block in flight, nothing committed yet): each node
    takes 8 of 30 transactions and refuses the other 22 with a signed overloaded notice; the
    client, told so by f+1 nodes, retransmits them after the wait asked, and all 30 commit
    exactly once."""
    small = {"batch_max_txs": 8, "max_inflight_blocks": 1}
    net = CoreNet(tmp_path, consensus=small)
    txs = [_draft(net, nonce) for nonce in range(1, 31)]
    client = ClientCore(net.chain, net.devnet.keys.node_keys, len(net.shells), CLIENT)
    client.submit(txs, net.now)
    for node_id in net.shells:
        net.request(node_id, txs)
        assert len(net.shells[node_id].core.replica.pending) <= 8
    refusals = [a for a in net.answers() if isinstance(a, OverloadedNotice)]
    assert len(refusals) == len(net.shells)
    for refusal in refusals:
        assert refusal.tx_ids == tuple(t.tx_id for t in txs[8:])
        assert 100 <= refusal.retry_after_ms <= 5000
    heard = 0

    def client_hears() -> list[Refused]:
        nonlocal heard
        refused = []
        for _, item in net.to_clients[heard:]:
            refused += client.on_message(item.topic, item.payload, net.now).refused
        heard = len(net.to_clients)
        return refused

    assert {r.tx_id for r in client_hears()} == {t.tx_id for t in txs[8:]}
    for _ in range(60):
        net.advance(500)
        for item in client.tick(net.now).publish:
            for shell in net.shells.values():
                net.carry(shell, shell.core.on_message(item.topic, item.payload, net.now))
                while shell.core.has_queued_requests:
                    net.carry(shell, shell.core.admit_next(net.now))
        net.deliver()
        client_hears()
    for shell in net.shells.values():
        store = shell.core.ledger.store
        assert all(len(store.tx_locations(t.tx_id)) == 1 for t in txs), shell.name
        assert shell.core.rejects.by_reason["overloaded"] >= 22
