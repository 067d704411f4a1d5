"""A seeded workload of real signed business transactions for the whole-node simulator.

Business flows of DOMAIN.md run as generators: each yields the next step (signer, operation,
arguments) and receives the accepted receipt of the one before, so later steps refer to what
earlier ones created (record ids derive from transaction ids). Flows mix valid steps with rule
breakers (a confirmation with the wrong amount, a second pledge, a repayment of someone else's
loan, a draft by a bank), which must be ordered and fail with a receipt. Each signer has one
transaction in flight, so its nonces commit in order whatever the network does.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from consortium.client.wallet import Wallet
from consortium.config import NetworkConfig
from consortium.contracts import confirmation_statement
from consortium.crypto import KeyPair
from consortium.ledger.block import Receipt
from consortium.ledger.tx import SignedTransaction

AMOUNT = 100_000
DUE_DAY = 30


@dataclass(frozen=True, slots=True)
class Step:
    signer: str
    op: str
    args: dict[str, Any]


Flow = Generator[Step, Receipt, None]


def _created(receipt: Receipt, key: str) -> Any:
    return (receipt.result or {}).get(key) if receipt.ok else None


class BusinessWorkload:
    def __init__(
        self,
        config: NetworkConfig,
        pairs: dict[str, KeyPair],
        rng: random.Random,
        max_txs: int = 240,
    ) -> None:
        self.rng = rng
        self.max_txs = max_txs
        self.genesis_money = sum(config.genesis.balances.values())
        roles = {m.id: m.role for m in config.members}
        self.suppliers = sorted(m for m, r in roles.items() if m.startswith("load-"))
        self.banks = sorted(m for m, r in roles.items() if r == "bank")
        self.core = next(m for m, r in roles.items() if r == "core_enterprise")
        self.regulator = next(m for m, r in roles.items() if r == "regulator")
        self.core_key = pairs[self.core]
        self.wallets = {
            m: Wallet(config.chain_id, m, pairs[m], first_nonce=1)
            for m in (*self.suppliers, *self.banks, self.core, self.regulator)
        }
        self.queues: dict[str, deque[tuple[int, Step]]] = {m: deque() for m in self.wallets}
        self.flows: dict[int, Flow] = {}
        self.in_flight: dict[bytes, tuple[int, Step]] = {}
        self.sent = 0
        self.accepting_new_flows = True
        self.operations: dict[str, int] = {}
        self.pledged: dict[str, str] = {}  # receivable -> the bank of its one successful pledge
        self.violations: list[str] = []
        self.next_flow = 0
        self.day = 0  # the business day as the accepted clock advances tell it
        for supplier in self.suppliers:
            self._start(self._flow_for(supplier))

    # -- what the simulation asks -------------------------------------------------------

    def next_transactions(self, busy: set[str]) -> list[tuple[str, SignedTransaction]]:
        """The next transaction of every signer with nothing in flight, in signer order."""
        out = []
        for signer in sorted(self.queues):
            queue = self.queues[signer]
            if signer in busy or not queue:
                continue
            flow_id, step = queue.popleft()
            stx = self.wallets[signer].sign(step.op, step.args)
            self.in_flight[stx.tx_id] = (flow_id, step)
            self.sent += 1
            out.append((signer, stx))
        return out

    def on_outcome(self, signer: str, stx: SignedTransaction, receipt: Receipt) -> None:
        flow_id, step = self.in_flight.pop(stx.tx_id)
        name = step.op if receipt.ok else f"{step.op}:failed"
        self.operations[name] = self.operations.get(name, 0) + 1
        self._watch(step, receipt)
        flow = self.flows[flow_id]
        try:
            following = flow.send(receipt)
        except StopIteration:
            del self.flows[flow_id]
            if self.accepting_new_flows and self.sent < self.max_txs:
                self._start(self._flow_for(self.rng.choice(self.suppliers)))
            return
        self.queues[following.signer].append((flow_id, following))

    def stop_new_flows(self) -> None:
        """After the heal: finish the flows under way, start no more."""
        self.accepting_new_flows = False

    def done(self) -> bool:
        return not self.flows

    def remaining(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # -- flows --------------------------------------------------------------------------

    def _start(self, flow: Flow) -> None:
        flow_id = self.next_flow
        self.next_flow += 1
        self.flows[flow_id] = flow
        first = next(flow)
        self.queues[first.signer].append((flow_id, first))

    def _flow_for(self, supplier: str) -> Flow:
        kind = self.rng.choice(("financing", "financing", "settlement", "rule_breakers"))
        if kind == "settlement":
            return self._settlement(supplier)
        if kind == "rule_breakers":
            return self._rule_breakers(supplier)
        return self._financing(supplier)

    def _confirm(self, receivable: str, amount: int) -> Step:
        signature = self.core_key.sign(
            confirmation_statement(receivable, self.core, amount, DUE_DAY)
        )
        args = {
            "receivable": receivable,
            "amount": amount,
            "due_day": DUE_DAY,
            "confirmation": signature,
        }
        return Step(self.core, "receivable.confirm", args)

    def _financing(self, supplier: str) -> Flow:
        """Draft, confirm, sometimes split or transfer, pledge, lend, repay; a second pledge
        of the same receivable must fail."""
        amount = AMOUNT + self.rng.randrange(1000)
        draft = {"debtor": self.core, "amount": amount, "due_day": DUE_DAY}
        receipt = yield Step(supplier, "receivable.draft", draft)
        receivable = _created(receipt, "receivable")
        if receivable is None:
            return
        receipt = yield self._confirm(receivable, amount)
        holder = supplier
        if self.rng.random() < 0.3:
            other = self.rng.choice([s for s in self.suppliers if s != supplier])
            receipt = yield Step(
                holder, "receivable.transfer", {"receivable": receivable, "to": other}
            )
            if receipt.ok:
                holder = other
        bank = self.rng.choice(self.banks)
        other_bank = self.rng.choice([b for b in self.banks if b != bank] or [bank])
        receipt = yield Step(holder, "receivable.pledge", {"receivable": receivable, "bank": bank})
        yield Step(holder, "receivable.pledge", {"receivable": receivable, "bank": other_bank})
        lend = {
            "borrower": holder,
            "principal": amount * 9 // 10,
            "amount_due": amount,
            "due_day": DUE_DAY,
            "receivable": receivable,
        }
        receipt = yield Step(bank, "loan.lend", lend)
        loan = _created(receipt, "loan")
        if loan is None:
            return
        yield Step(holder, "loan.repay", {"loan": loan, "amount": amount // 4})
        yield Step(self.rng.choice(self.suppliers), "loan.repay", {"loan": loan, "amount": 1})

    def _settlement(self, supplier: str) -> Flow:
        """A receivable confirmed, split, then settled by the core enterprise at maturity."""
        amount = AMOUNT
        due = self.day + 1
        receipt = yield Step(
            supplier, "receivable.draft", {"debtor": self.core, "amount": amount, "due_day": due}
        )
        receivable = _created(receipt, "receivable")
        if receivable is None:
            return
        signature = self.core_key.sign(confirmation_statement(receivable, self.core, amount, due))
        confirm = {"receivable": receivable, "amount": amount, "due_day": due}
        receipt = yield Step(
            self.core, "receivable.confirm", {**confirm, "confirmation": signature}
        )
        other = self.rng.choice(self.suppliers)
        parts = [[supplier, amount // 2], [other, amount - amount // 2]]
        receipt = yield Step(
            supplier, "receivable.split", {"receivable": receivable, "parts": parts}
        )
        yield Step(self.regulator, "clock.advance", {"days": 1})
        for part in _created(receipt, "children") or (receivable,):
            yield Step(self.core, "receivable.settle", {"receivable": part})

    def _rule_breakers(self, supplier: str) -> Flow:
        """Transactions that break a rule: each is ordered and fails with its reason."""
        receipt = yield Step(
            supplier, "receivable.draft", {"debtor": self.core, "amount": AMOUNT, "due_day": 90}
        )
        receivable = _created(receipt, "receivable")
        if receivable is not None:
            yield self._confirm(receivable, AMOUNT + 1)  # the wrong amount
            yield Step(supplier, "receivable.pledge", {"receivable": receivable, "bank": supplier})
            lend = {
                "borrower": supplier,
                "principal": AMOUNT,
                "amount_due": AMOUNT,
                "due_day": 90,
                "receivable": receivable,  # not pledged to this bank
            }
            yield Step(self.banks[0], "loan.lend", lend)
        yield Step(
            self.banks[0], "receivable.draft", {"debtor": self.core, "amount": 5, "due_day": 9}
        )
        yield Step(supplier, "loan.repay", {"loan": "loan-0000000000000000", "amount": 1})

    # -- invariants seen in receipts ------------------------------------------------------

    def _watch(self, step: Step, receipt: Receipt) -> None:
        if step.op == "clock.advance" and receipt.ok:
            self.day = max(self.day, _created(receipt, "day"))
        if step.op == "receivable.pledge" and receipt.ok:
            receivable = step.args["receivable"]
            if receivable in self.pledged:
                self.violations.append(
                    f"receivable {receivable} pledged twice: to {self.pledged[receivable]} and "
                    f"{step.args['bank']}"
                )
            self.pledged[receivable] = step.args["bank"]
