"""The client protocol in process, fed real signed notices: when an outcome is accepted (f+1
distinct nodes signing the same claim), when a transaction is unknown (n-f nodes saying so), what
is retransmitted or asked again and when, how big batches and queries are cut, and that bad
notices are counted and change nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from consortium import codec
from consortium.client.client import ChainClient, ClientLogin
from consortium.client.client import Outcome as ReexportedOutcome
from consortium.client.protocol import (
    MAX_BACKOFF_MS,
    MAX_BATCH,
    ClientCore,
    ClientStep,
    Outcome,
    Refused,
    Unknown,
)
from consortium.client.wallet import Wallet
from consortium.crypto import KeyPair
from consortium.devnet import Devnet, make_devnet
from consortium.ledger.block import Receipt
from consortium.ledger.tx import SignedTransaction
from consortium.notices import (
    MAX_ASKED_TXS,
    CommitNotice,
    OverloadedNotice,
    UnknownNotice,
    decode_outcome_query,
)
from consortium.roles import max_faulty
from consortium.transport import topics
from consortium.transport.credentials import BrokerLogin
from consortium.transport.mqtt import IncomingMessage

CLIENT = "load-0"
SIGNER = "load-0000"
BLOCK = b"\x11" * 32
OTHER_BLOCK = b"\x22" * 32


@dataclass
class Net:
    devnet: Devnet
    wallet: Wallet

    @property
    def chain(self) -> str:
        return self.devnet.config.chain_id

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.devnet.config.node_ids

    @property
    def f(self) -> int:
        return max_faulty(len(self.nodes))

    def core(self, **options: int) -> ClientCore:
        return ClientCore(
            self.chain, self.devnet.keys.node_keys, len(self.nodes), CLIENT, **options
        )

    def sign(self, count: int = 1) -> list[SignedTransaction]:
        args = {"debtor": "core", "amount": 5, "due_day": 90}
        return [self.wallet.sign("receivable.draft", args) for _ in range(count)]

    def notice(
        self,
        node: str,
        receipts: list[Receipt],
        height: int = 3,
        block_hash: bytes = BLOCK,
        day: int = 12,
        key: KeyPair | None = None,
        chain: str | None = None,
    ) -> bytes:
        signer = key or self.devnet.node_pairs[node]
        notice = CommitNotice(node, height, block_hash, day, tuple(receipts))
        return notice.signed(chain or self.chain, signer)

    def unknown(self, node: str, tx_ids: list[bytes], height: int = 3) -> bytes:
        statement = UnknownNotice(node, height, tuple(tx_ids))
        return statement.signed(self.chain, self.devnet.node_pairs[node])

    def overloaded(self, node: str, tx_ids: list[bytes], retry_after_ms: int) -> bytes:
        refusal = OverloadedNotice(node, 3, tuple(tx_ids), retry_after_ms)
        return refusal.signed(self.chain, self.devnet.node_pairs[node])

    def broadcast(self, node: str) -> str:
        return topics.commit_topic(self.chain, node)

    def answer(self, node: str, client: str = CLIENT) -> str:
        return topics.commit_direct_topic(self.chain, node, client)


def _make_net(root: Path, nodes: int) -> Net:
    devnet = make_devnet(root / f"net-{nodes}", nodes=nodes, load_signers=1)
    return Net(devnet, Wallet(devnet.config.chain_id, SIGNER, devnet.member_pairs[SIGNER], 1))


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Net]:
    root = tmp_path_factory.mktemp("client-protocol")
    return {n: _make_net(root, n) for n in (4, 7)}


@pytest.fixture(params=[4, 7], ids=["n4", "n7"])
def net(request: pytest.FixtureRequest, nets: dict[int, Net]) -> Net:
    return nets[request.param]


@pytest.fixture
def net4(nets: dict[int, Net]) -> Net:
    return nets[4]


def ok(tx: SignedTransaction, reason: str = "") -> Receipt:
    return Receipt(tx.tx_id, True, reason, {"receivable": "rcv-1"})


def _batches(step: ClientStep, topic: str) -> list[tuple[bytes, ...]]:
    return [codec.decode(p.payload) for p in step.publish if p.topic == topic]


# -- acceptance ------------------------------------------------------------------------------


def test_an_outcome_is_accepted_on_f_plus_1_matching_notices_and_not_on_f(net: Net) -> None:
    core = net.core()
    (tx,) = net.sign()
    core.submit([tx], now_ms=0)
    payload_of = {node: net.notice(node, [ok(tx)]) for node in net.nodes}
    for node in net.nodes[: net.f]:
        assert core.on_message(net.broadcast(node), payload_of[node], 10).decided == []
    assert core.is_tracked(tx.tx_id)
    deciding = net.nodes[net.f]
    step = core.on_message(net.broadcast(deciding), payload_of[deciding], 11)
    assert step.decided == [Outcome(tx.tx_id, 3, BLOCK, 12, True, "", {"receivable": "rcv-1"})]
    assert not core.is_tracked(tx.tx_id) and step.wake_at_ms is None
    # Decided once: the remaining nodes' notices decide nothing more.
    for node in net.nodes[net.f + 1 :]:
        assert core.on_message(net.broadcast(node), payload_of[node], 12).decided == []
    assert core.rejected_notices == 0
    assert core.heights == dict.fromkeys(net.nodes, 3)


@pytest.mark.parametrize(
    "disagreement",
    [
        {"receipt": Receipt(b"", False, "insufficient balance", None)},
        {"receipt": Receipt(b"", True, "", {"receivable": "rcv-other"})},
        {"block_hash": OTHER_BLOCK},
        {"height": 4},
        {"day": 13},
    ],
    ids=["failed-receipt", "other-result", "block-hash", "height", "business-day"],
)
def test_notices_that_disagree_on_any_part_of_the_claim_do_not_add_up(
    net: Net, disagreement: dict
) -> None:
    core = net.core()
    (tx,) = net.sign()
    core.submit([tx], now_ms=0)
    disagreement = dict(disagreement)
    receipt = disagreement.pop("receipt", None)
    other = Receipt(tx.tx_id, receipt.ok, receipt.reason, receipt.result) if receipt else ok(tx)
    # f nodes back the true claim, f others a claim differing in one part: 2f > f+1 notices, but
    # no claim has f+1 behind it.
    true_side, other_side = net.nodes[: net.f], net.nodes[net.f : 2 * net.f]
    for node in true_side:
        assert core.on_message(net.broadcast(node), net.notice(node, [ok(tx)]), 1).decided == []
    for node in other_side:
        payload = net.notice(node, [other], **disagreement)
        assert core.on_message(net.broadcast(node), payload, 2).decided == []
    assert core.is_tracked(tx.tx_id)
    last = net.nodes[2 * net.f]
    step = core.on_message(net.broadcast(last), net.notice(last, [ok(tx)]), 3)
    assert [(o.height, o.block_hash, o.ok, o.result) for o in step.decided] == [
        (3, BLOCK, True, {"receivable": "rcv-1"})
    ]


def test_a_node_counts_once_however_often_and_wherever_it_repeats_itself(net: Net) -> None:
    core = net.core()
    (tx,) = net.sign()
    core.submit([tx], now_ms=0)
    node = net.nodes[0]
    again = net.notice(node, [ok(tx)])
    for _ in range(net.f + 2):
        assert core.on_message(net.broadcast(node), again, 1).decided == []
        assert core.on_message(net.answer(node), again, 1).decided == []
    # Also when a block's notice and an answer listing the same receipt differ as messages.
    (tx2,) = net.sign()
    both = net.notice(node, [ok(tx), ok(tx2)])
    assert core.on_message(net.broadcast(node), both, 2).decided == []
    assert core.is_tracked(tx.tx_id)
    helper = net.nodes[1]
    decided = core.on_message(net.broadcast(helper), net.notice(helper, [ok(tx)]), 3).decided
    assert [o.tx_id for o in decided] == ([tx.tx_id] if net.f == 1 else [])


def test_forged_foreign_and_garbled_notices_are_counted_and_change_nothing(net4: Net) -> None:
    net = net4
    core = net.core()
    (tx,) = net.sign()
    core.submit([tx], now_ms=0)
    stranger = KeyPair.generate()
    a, b, c = net.nodes[:3]
    signed_by_a = net.devnet.node_pairs[a]
    genuine = net.notice(a, [ok(tx)])
    bad: list[tuple[str, bytes]] = [
        # f+1 distinct claimed nodes, each forged: accepting them would decide.
        (net.broadcast(b), net.notice(b, [ok(tx)], key=signed_by_a)),
        (net.broadcast(c), net.notice(c, [ok(tx)], key=stranger)),
        (net.broadcast(b), net.notice("mallory", [ok(tx)], key=stranger)),
        # Properly signed, but for another chain.
        (net.broadcast(b), net.notice(b, [ok(tx)], chain="another-chain")),
        # Not a notice at all.
        (net.broadcast(b), b"\xc1"),
        (net.broadcast(b), genuine[:-5]),
        (net.broadcast(b), codec.encode(["x", b"y"])),
        # A genuine notice, but where no notice belongs: another client's answers, a status
        # topic, another chain's commit topic, no topic of this layout.
        (net.answer(a, client="load-9"), genuine),
        (topics.status_topic(net.chain, a), genuine),
        (topics.commit_topic("another-chain", a), genuine),
        ("nonsense", genuine),
    ]
    for count, (topic, payload) in enumerate(bad, start=1):
        step = core.on_message(topic, payload, 5)
        assert step.decided == [] and step.publish == []
        assert core.rejected_notices == count
    assert core.rejects == {"bad_notice": 7, "wrong_topic": 4}
    assert core.heights == {} and core.is_tracked(tx.tx_id)
    # One genuine notice is still one vote, not f+1 with the forged ones.
    assert core.on_message(net.broadcast(a), genuine, 6).decided == []
    assert core.is_tracked(tx.tx_id)


def test_an_answer_on_the_client_topic_counts_like_a_broadcast_notice(net: Net) -> None:
    core = net.core()
    (tx,) = net.sign()
    core.submit([tx], now_ms=0)
    for node in net.nodes[: net.f]:
        assert core.on_message(net.broadcast(node), net.notice(node, [ok(tx)]), 1).decided == []
    last = net.nodes[net.f]
    step = core.on_message(net.answer(last), net.notice(last, [ok(tx)]), 2)
    assert [o.tx_id for o in step.decided] == [tx.tx_id]
    # And answers alone make an outcome, as for a client that missed every broadcast.
    (tx2,) = net.sign()
    core.submit([tx2], now_ms=3)
    decided = [
        o
        for node in net.nodes[: net.f + 1]
        for o in core.on_message(net.answer(node), net.notice(node, [ok(tx2)]), 4).decided
    ]
    assert [o.tx_id for o in decided] == [tx2.tx_id]


# -- retransmission --------------------------------------------------------------------------


def test_unanswered_transactions_are_retransmitted_at_the_deadline_and_not_before(
    net4: Net,
) -> None:
    net = net4
    core = net.core()
    first, second = net.sign(2)
    request = topics.request_topic(net.chain, CLIENT)
    step = core.submit([first, second], now_ms=1_000)
    assert _batches(step, request) == [(first.raw, second.raw)]
    assert step.wake_at_ms == 1_000 + 5_000
    assert core.tick(5_999).publish == []
    # `first` is decided before the deadline: only `second` goes again.
    for node in net.nodes[:2]:
        core.on_message(net.broadcast(node), net.notice(node, [ok(first)]), 3_000)
    step = core.tick(6_000)
    assert _batches(step, request) == [(second.raw,)]
    assert step.wake_at_ms == 11_000
    assert core.tick(10_999).publish == []
    assert _batches(core.tick(11_000), request) == [(second.raw,)]
    # A late tick sends once and counts the next deadline from when it ran.
    step = core.tick(20_000)
    assert _batches(step, request) == [(second.raw,)] and step.wake_at_ms == 25_000
    core.forget([second.tx_id])
    assert core.next_wake_ms() is None and core.tick(30_000).publish == []


def test_the_retransmission_interval_is_per_submission(net4: Net) -> None:
    core = net4.core(retransmit_ms=300)
    fast, slow = net4.sign(2)
    assert core.submit([fast], now_ms=0).wake_at_ms == 300
    assert core.submit([slow], now_ms=0, retransmit_ms=1_000).wake_at_ms == 300
    request = topics.request_topic(net4.chain, CLIENT)
    for at in (300, 600, 900):
        assert _batches(core.tick(at), request) == [(fast.raw,)]
    assert _batches(core.tick(1_000), request) == [(slow.raw,)]
    assert core.next_wake_ms() == 1_200


# -- asking ----------------------------------------------------------------------------------


def test_f_plus_1_refusals_hold_the_retransmission_for_the_wait_they_ask(net: Net) -> None:
    core = net.core(retransmit_ms=100)
    (tx,) = net.sign()
    core.submit([tx], now_ms=0)
    waits = [300 + 100 * i for i in range(len(net.nodes))]
    for node, wait in list(zip(net.nodes, waits, strict=True))[: net.f]:
        step = core.on_message(net.answer(node), net.overloaded(node, [tx.tx_id], wait), 10)
        assert step.refused == []  # f nodes, possibly all lying, are not enough
    node, wait = net.nodes[net.f], waits[net.f]
    step = core.on_message(net.answer(node), net.overloaded(node, [tx.tx_id], wait), 20)
    assert step.refused == [Refused(tx.tx_id, waits[net.f])]  # the longest wait asked
    assert step.wake_at_ms == 20 + waits[net.f]
    assert core.tick(100).publish == []  # the usual retransmission waits for the backoff
    assert core.tick(19 + waits[net.f]).publish == []
    assert len(core.tick(20 + waits[net.f]).publish) == 1
    assert core.is_tracked(tx.tx_id)  # refused is not an outcome: it may still commit


def test_a_refusal_never_holds_a_client_longer_than_the_cap(net4: Net) -> None:
    core = net4.core()
    (tx,) = net4.sign()
    core.submit([tx], now_ms=0)
    for node in net4.nodes[: net4.f + 1]:
        step = core.on_message(net4.answer(node), net4.overloaded(node, [tx.tx_id], 10**9), 0)
    assert step.refused == [Refused(tx.tx_id, MAX_BACKOFF_MS)]


def test_a_refusal_for_another_transaction_or_forged_changes_nothing(net4: Net) -> None:
    core = net4.core()
    (tx,) = net4.sign()
    core.submit([tx], now_ms=0)
    stranger = KeyPair(b"\x07" * 32)
    forged = OverloadedNotice(net4.nodes[0], 3, (tx.tx_id,), 100).signed(net4.chain, stranger)
    assert core.on_message(net4.answer(net4.nodes[0]), forged, 0).refused == []
    assert core.rejects == {"bad_notice": 1}
    for node in net4.nodes:
        payload = net4.overloaded(node, [bytes(32)], 100)
        assert core.on_message(net4.answer(node), payload, 0).refused == []


def test_unknown_is_decided_after_n_minus_f_unknown_answers(net: Net) -> None:
    core = net.core()
    missing = b"\x33" * 32
    step = core.ask([missing], now_ms=0)
    assert _batches(step, topics.ask_topic(net.chain, CLIENT)) == [(missing,)]
    enough = len(net.nodes) - net.f
    for height, node in enumerate(net.nodes[: enough - 1], start=1):
        assert (
            core.on_message(net.answer(node), net.unknown(node, [missing], height), 1).decided == []
        )
        # Repeating does not make a node count twice.
        again = net.unknown(node, [missing], height)
        assert core.on_message(net.answer(node), again, 1).decided == []
    last = net.nodes[enough - 1]
    step = core.on_message(net.answer(last), net.unknown(last, [missing], 9), 2)
    heights = {node: h for h, node in enumerate(net.nodes[: enough - 1], start=1)} | {last: 9}
    assert step.decided == [Unknown(missing, heights)]
    assert not core.is_tracked(missing) and core.next_wake_ms() is None


def test_asking_is_repeated_until_decided_and_an_outcome_ends_it(net4: Net) -> None:
    net = net4
    core = net.core(ask_every_ms=2_000)
    (tx,) = net.sign()
    ask = topics.ask_topic(net.chain, CLIENT)
    assert core.ask([tx.tx_id, tx.tx_id], now_ms=0).wake_at_ms == 2_000
    assert core.tick(1_999).publish == []
    step = core.tick(2_000)
    assert _batches(step, ask) == [(tx.tx_id,)] and step.wake_at_ms == 4_000
    decided = [
        o
        for node in net.nodes[:2]
        for o in core.on_message(net.answer(node), net.notice(node, [ok(tx)]), 3_000).decided
    ]
    assert [type(o) for o in decided] == [Outcome]
    assert core.tick(4_000).publish == [] and core.next_wake_ms() is None


def test_a_submitted_transaction_called_unknown_is_still_retransmitted(net4: Net) -> None:
    net = net4
    core = net.core()
    (tx,) = net.sign()
    core.submit([tx], now_ms=0)
    core.ask([tx.tx_id], now_ms=0)
    decided = [
        r
        for node in net.nodes[:3]
        for r in core.on_message(net.answer(node), net.unknown(node, [tx.tx_id]), 1).decided
    ]
    assert decided == [Unknown(tx.tx_id, dict.fromkeys(net.nodes[:3], 3))]
    step = core.tick(5_000)
    assert _batches(step, topics.request_topic(net.chain, CLIENT)) == [(tx.raw,)]
    assert _batches(step, topics.ask_topic(net.chain, CLIENT)) == []
    # It may still commit, and then its outcome is decided as usual.
    decided = [
        r
        for node in net.nodes[:2]
        for r in core.on_message(net.broadcast(node), net.notice(node, [ok(tx)]), 6_000).decided
    ]
    assert [type(r) for r in decided] == [Outcome]


def test_unknown_answers_decide_nothing_for_a_transaction_nobody_asked_about(net4: Net) -> None:
    net = net4
    core = net.core()
    (tx,) = net.sign()
    core.submit([tx], now_ms=0)
    for node in net.nodes:
        assert core.on_message(net.answer(node), net.unknown(node, [tx.tx_id]), 1).decided == []
    assert core.unknown_answers(tx.tx_id) == Unknown(tx.tx_id, dict.fromkeys(net.nodes, 3))
    # Asking later uses the answers already in.
    assert core.ask([tx.tx_id], now_ms=2).decided == [core.unknown_answers(tx.tx_id)]


# -- chunking --------------------------------------------------------------------------------


def test_large_batches_are_cut_into_messages_of_max_batch_in_order(net4: Net) -> None:
    core = net4.core()
    txs = net4.sign(2 * MAX_BATCH + 1)
    request = topics.request_topic(net4.chain, CLIENT)
    step = core.submit(txs, now_ms=0)
    sizes = [len(batch) for batch in _batches(step, request)]
    assert sizes == [MAX_BATCH, MAX_BATCH, 1] and len(step.publish) == 3
    assert [raw for batch in _batches(step, request) for raw in batch] == [t.raw for t in txs]
    assert [len(b) for b in _batches(core.tick(5_000), request)] == sizes
    assert [len(b) for b in map(codec.decode, (p.payload for p in core.requests(txs)))] == sizes


def test_large_queries_are_cut_into_queries_of_max_asked_txs(net4: Net) -> None:
    core = net4.core()
    ids = [i.to_bytes(32, "big") for i in range(2 * MAX_ASKED_TXS + 1)]
    ask = topics.ask_topic(net4.chain, CLIENT)
    step = core.ask(ids, now_ms=0)
    queries = [decode_outcome_query(p.payload) for p in step.publish if p.topic == ask]
    assert [len(q) for q in queries] == [MAX_ASKED_TXS, MAX_ASKED_TXS, 1]
    assert [t for q in queries for t in q] == ids
    step = core.tick(2_000)
    assert [len(decode_outcome_query(p.payload)) for p in step.publish] == [
        MAX_ASKED_TXS,
        MAX_ASKED_TXS,
        1,
    ]


# -- determinism and the shell ---------------------------------------------------------------


def test_the_same_inputs_give_the_same_steps(net4: Net) -> None:
    txs = net4.sign(5)

    def run() -> list[ClientStep]:
        core = net4.core(retransmit_ms=100, ask_every_ms=70)
        steps = [core.submit(txs, 0), core.ask([t.tx_id for t in txs[:3]], 10)]
        node = net4.nodes[0]
        steps.append(core.on_message(net4.broadcast(node), net4.notice(node, [ok(txs[0])]), 20))
        steps += [core.tick(at) for at in range(0, 1_000, 35)]
        return steps

    assert run() == run()


def test_the_chain_client_carries_out_the_core_without_a_broker(
    net4: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asyncio shell: the core's publications go to the transport, its wake-ups become loop
    timers, decided results end the awaiting calls, and nothing is left tracked afterwards."""
    net = net4
    login = ClientLogin(CLIENT, BrokerLogin("mqtt://127.0.0.1:1", CLIENT, "unused"))
    client = ChainClient(net.devnet.config, net.devnet.keys, login)
    sent: list[tuple[str, bytes]] = []
    monkeypatch.setattr(client.transport, "publish", lambda t, p, **_: sent.append((t, p)))
    request = topics.request_topic(net.chain, CLIENT)
    tx, late = net.sign(2)
    missing, unheard = b"\x44" * 32, b"\x55" * 32

    def hear(topic: str, payload: bytes) -> None:
        client._on_message(IncomingMessage(topic, payload))

    async def scenario() -> tuple[Outcome, Outcome | Unknown, Outcome | Unknown]:
        waiting = asyncio.create_task(client.submit([tx], timeout_s=5, retransmit_s=0.05))
        await asyncio.sleep(0.13)
        requests = [p for t, p in sent if t == request]
        assert len(requests) >= 2 and set(requests) == {codec.encode_flat([tx.raw])}
        for node in net.nodes[:2]:
            hear(net.broadcast(node), net.notice(node, [ok(tx)]))
        (outcome,) = await waiting
        asking = asyncio.create_task(client.outcomes([missing], timeout_s=5))
        await asyncio.sleep(0)
        for node in net.nodes[:3]:
            hear(net.answer(node), net.unknown(node, [missing]))
        unknown = (await asking)[0]
        partial = (await client.outcomes([unheard], timeout_s=0.05))[0]
        with pytest.raises(TimeoutError):
            await client.submit([late], timeout_s=0.05)
        return outcome, unknown, partial

    outcome, unknown, partial = asyncio.run(scenario())
    assert ReexportedOutcome is Outcome and outcome.tx_id == tx.tx_id and outcome.height == 3
    assert unknown == Unknown(missing, dict.fromkeys(net.nodes[:3], 3))
    assert partial == Unknown(unheard, {})
    assert client.core.tracked == 0 and client.core.next_wake_ms() is None
    assert client._timer is None
    assert (client.accept_after, client.unknown_after, client.rejected_notices) == (2, 3, 0)
    assert client.heights == dict.fromkeys(net.nodes[:3], 3)
