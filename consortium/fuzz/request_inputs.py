"""Hostile client requests, published with a client's own broker login on its request topic.

Two families: inputs that must never enter a block (undecodable batches, forged or replayed
transactions, strangers, other chains: refused at admission and counted), and well-formed
transactions that break a business rule (ordered, recorded with a failed receipt, no state change).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from consortium import codec
from consortium.client.wallet import Wallet
from consortium.crypto import KeyPair
from consortium.ledger.tx import SignedTransaction, Transaction
from consortium.node.core import MAX_REQUESTS_PER_MESSAGE


@dataclass(frozen=True, slots=True)
class HostileRequest:
    kind: str
    payload: bytes  # one request message: a msgpack array of raw transactions, or worse


class RequestFuzzer:
    def __init__(
        self,
        rng: random.Random,
        chain_id: str,
        members: dict[str, KeyPair],
        committed: Callable[[], Sequence[bytes]],
        heavy: bool = True,
    ) -> None:
        """`committed` gives raw transactions already committed (to replay); `heavy` includes
        megabyte batches that cost every node a long decode."""
        self.rng = rng
        self.chain_id = chain_id
        self.members = members
        self.committed = committed
        self.stranger = KeyPair(rng.randbytes(32))
        self.generators: dict[str, Callable[[], HostileRequest]] = {
            "request_random_bytes": self.random_bytes,
            "request_not_bytes": self.not_bytes,
            "request_oversized_batch": self.oversized_batch,
            "request_huge_array": self.huge_array,
            "tx_forged_signature": self.forged_signature,
            "tx_non_member": self.non_member,
            "tx_other_chain": self.other_chain,
            "tx_truncated": self.truncated,
            "tx_replay": self.replay,
        }
        self.weights = {kind: 1.0 for kind in self.generators}
        self.weights["request_oversized_batch"] = 0.1
        self.weights["request_huge_array"] = 0.02 if heavy else 0.0

    def next(self) -> HostileRequest:
        kinds = list(self.generators)
        kind = self.rng.choices(kinds, [self.weights[k] for k in kinds])[0]
        return self.generators[kind]()

    def _draft(self, chain_id: str, sender: str, key: KeyPair) -> SignedTransaction:
        args = {"debtor": "core", "amount": self.rng.randint(1, 10**6), "due_day": 90}
        nonce = self.rng.randint(1, 2**62)
        return Transaction(chain_id, sender, nonce, "receivable.draft", args).sign(key)

    def _member(self) -> tuple[str, KeyPair]:
        member = self.rng.choice(sorted(self.members))
        return member, self.members[member]

    @staticmethod
    def _batch(raws: Sequence[Any]) -> bytes:
        return codec.encode_flat(list(raws))

    def random_bytes(self) -> HostileRequest:
        return HostileRequest("request_random_bytes", self.rng.randbytes(self.rng.randint(0, 4096)))

    def not_bytes(self) -> HostileRequest:
        items = [self.rng.randint(-(2**40), 2**40), "text", None, [b"nested"]]
        return HostileRequest("request_not_bytes", self._batch(items))

    def oversized_batch(self) -> HostileRequest:
        return HostileRequest(
            "request_oversized_batch", self._batch([b"x"] * (MAX_REQUESTS_PER_MESSAGE + 1))
        )

    def huge_array(self) -> HostileRequest:
        """Just under the broker's message size limit: millions of one-byte items."""
        return HostileRequest("request_huge_array", self._batch([0] * 4_000_000))

    def forged_signature(self) -> HostileRequest:
        member, _ = self._member()
        forged = self._draft(self.chain_id, member, self.stranger)
        return HostileRequest("tx_forged_signature", self._batch([forged.raw]))

    def non_member(self) -> HostileRequest:
        stx = self._draft(self.chain_id, "mallory", self.stranger)
        return HostileRequest("tx_non_member", self._batch([stx.raw]))

    def other_chain(self) -> HostileRequest:
        member, key = self._member()
        stx = self._draft(self.chain_id + "-other", member, key)
        return HostileRequest("tx_other_chain", self._batch([stx.raw]))

    def truncated(self) -> HostileRequest:
        member, key = self._member()
        raw = self._draft(self.chain_id, member, key).raw
        return HostileRequest("tx_truncated", self._batch([raw[: self.rng.randrange(len(raw))]]))

    def replay(self) -> HostileRequest:
        done = self.committed()
        if not done:
            return self.forged_signature()
        raws = [self.rng.choice(done) for _ in range(self.rng.randint(1, 16))]
        return HostileRequest("tx_replay", self._batch(raws))


# (op, args) that every sender in `rule_breakers` is refused, with why.
def rule_breaking_transactions(debtor: str, bank: str) -> list[tuple[str, str, dict[str, Any]]]:
    zero_signature = b"\0" * 64
    return [
        ("advance the clock without being the regulator", "clock.advance", {"days": 1}),
        ("freeze a member without being the regulator", "member.freeze", {"member": bank}),
        (
            "set a credit line without being the regulator",
            "credit.set_line",
            {"member": debtor, "limit": 10**15},
        ),
        ("an unknown operation", "money.print", {"amount": 10**12}),
        (
            "draft a negative receivable",
            "receivable.draft",
            {"debtor": debtor, "amount": -5, "due_day": 90},
        ),
        (
            "draft with an unknown argument",
            "receivable.draft",
            {"debtor": debtor, "amount": 1, "due_day": 90, "memo": "x"},
        ),
        (
            "draft owed by a stranger",
            "receivable.draft",
            {"debtor": "mallory", "amount": 1, "due_day": 90},
        ),
        (
            "confirm a receivable that does not exist",
            "receivable.confirm",
            {
                "receivable": "rcv-0000000000000000",
                "amount": 1,
                "due_day": 90,
                "confirmation": zero_signature,
            },
        ),
        (
            "pledge a receivable that does not exist",
            "receivable.pledge",
            {"receivable": "rcv-0000000000000000", "bank": bank},
        ),
        (
            "transfer a receivable that does not exist",
            "receivable.transfer",
            {"receivable": "rcv-0000000000000000", "to": debtor},
        ),
        (
            "lend without being a bank",
            "loan.lend",
            {
                "borrower": debtor,
                "principal": 10,
                "amount_due": 11,
                "due_day": 90,
                "receivable": "rcv-0000000000000000",
            },
        ),
        (
            "repay a loan that does not exist",
            "loan.repay",
            {"loan": "loan-0000000000000000", "amount": 1},
        ),
        (
            "assign a task that does not exist",
            "collection.assign",
            {"task": "task-0000000000000000"},
        ),
    ]


def sign_rule_breakers(
    rng: random.Random, wallets: Sequence[Wallet], debtor: str, bank: str
) -> list[tuple[str, SignedTransaction]]:
    """One rule-breaking transaction per wallet (one in flight per sender keeps nonces in order)."""
    menu = rule_breaking_transactions(debtor, bank)
    out = []
    for wallet in wallets:
        why, op, args = rng.choice(menu)
        out.append((why, wallet.sign(op, args)))
    return out
