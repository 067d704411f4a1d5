"""A seeded workload of real signed business transactions for the whole-node simulator.

Business flows of DOMAIN.md run as generators: each yields the next step (signer, operation,
arguments) and receives the accepted receipt of the one before, so later steps refer to what
earlier ones created (record ids derive from transaction ids). The flows between them use every
operation of the contracts: receivable financing and settlement, default and collection by
sealed-bid auction, a loan against warehouse goods, a tranche credit line, the regulator's
member operations, and the securitisation of loans (pool, tranches, rating, issue, trade,
waterfall). They mix valid steps with rule breakers (a confirmation with the wrong amount,
a second pledge, a second bid, a frozen member's draft, a loser acting on a task), which must be
ordered and fail with a receipt. Each signer has one transaction in flight, so its nonces commit
in order whatever the network does. Due days count from the business day the receipts tell.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.encoding
import nacl.hash

from consortium.client.wallet import Wallet
from consortium.config import NetworkConfig
from consortium.contracts import (
    amendment_statement,
    bid_commitment,
    confirmation_statement,
    contact_commitment,
    transfer_statement,
)
from consortium.contracts.scoring import MIN_SCORE
from consortium.crypto import KeyPair, sha256
from consortium.ledger.block import Receipt
from consortium.ledger.tx import SignedTransaction

AMOUNT = 100_000
TERM_DAYS = 30
FLOW_KINDS = (
    "financing",
    "financing",
    "settlement",
    "rule_breakers",
    "collection",
    "warehouse",
    "credit_line",
    "membership",
    "securitisation",
)


@dataclass(frozen=True, slots=True)
class Step:
    signer: str
    op: str
    args: dict[str, Any]
    until_day: int | None = None
    """For a clock advance: the day it must reach, its days counted only when it is sent, so
    flows waiting for the same day share one advance instead of each adding their own."""


Flow = Generator[Step, Receipt, None]


def _created(receipt: Receipt, key: str) -> Any:
    return (receipt.result or {}).get(key) if receipt.ok else None


def sealed_for(public_key: bytes, data: bytes, seed: bytes) -> bytes:
    """A real sealed box to the holder of the ed25519 `public_key`, but with its ephemeral key
    drawn from `seed` instead of the system's randomness, so a simulated run stays a function of
    its seed. The recipient opens it with an ordinary sealed box."""
    recipient = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(public_key)
    ephemeral_public, ephemeral_secret = nacl.bindings.crypto_box_seed_keypair(seed)
    nonce = nacl.hash.blake2b(
        ephemeral_public + recipient,
        digest_size=nacl.bindings.crypto_box_NONCEBYTES,
        encoder=nacl.encoding.RawEncoder,
    )
    box = nacl.bindings.crypto_box(data, nonce, recipient, ephemeral_secret)
    return ephemeral_public + box


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
        self.chain_id = config.chain_id
        self.pairs = dict(pairs)
        self.suppliers = sorted(m for m, r in roles.items() if m.startswith("load-"))
        self.banks = sorted(m for m, r in roles.items() if r == "bank")
        self.core = next(m for m, r in roles.items() if r == "core_enterprise")
        self.regulator = next(m for m, r in roles.items() if r == "regulator")
        self.agencies = sorted(m for m, r in roles.items() if r == "collection_agency")
        self.warehouse = next(m for m, r in roles.items() if r == "warehouse")
        self.arranger = next(m for m, r in roles.items() if r == "arranger")
        self.raters = sorted(m for m, r in roles.items() if r == "rating_agency")
        self.investors = sorted(m for m, r in roles.items() if r == "investor")
        self.core_key = pairs[self.core]
        self.core_credit_limit = config.genesis.credit_lines[self.core]
        signers = (*self.suppliers, *self.banks, self.core, self.regulator, *self.agencies)
        self.wallets = {
            m: Wallet(config.chain_id, m, pairs[m], first_nonce=1)
            for m in (*signers, self.warehouse, self.arranger, *self.raters, *self.investors)
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
        self.made = 0  # lots, members, salts and keys made so far: each one's name is unique
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
            if step.until_day is not None:
                step = Step(signer, step.op, {"days": max(1, step.until_day - self.day)})
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
        kind = self.rng.choice(FLOW_KINDS)
        flow: Flow = getattr(self, f"_{kind}")(supplier)
        return flow

    def _fresh(self, what: str) -> bytes:
        """32 bytes no other call of this run returns, derived from the run's random stream."""
        self.made += 1
        return sha256(f"{what}/{self.made}/{self.rng.getrandbits(64)}".encode())

    def _fresh_key(self) -> KeyPair:
        return KeyPair(self._fresh("key"))

    def _confirm(self, receivable: str, amount: int, due_day: int) -> Step:
        signature = self.core_key.sign(
            confirmation_statement(receivable, self.core, amount, due_day)
        )
        args = {
            "receivable": receivable,
            "amount": amount,
            "due_day": due_day,
            "confirmation": signature,
        }
        return Step(self.core, "receivable.confirm", args)

    def _advance_to(self, day: int) -> Step:
        return Step(self.regulator, "clock.advance", {}, until_day=day)

    def _financing(self, supplier: str) -> Flow:
        """Draft, confirm, sometimes split or transfer, pledge, lend, repay; a second pledge
        of the same receivable must fail."""
        amount = AMOUNT + self.rng.randrange(1000)
        due = self.day + TERM_DAYS
        draft = {"debtor": self.core, "amount": amount, "due_day": due}
        receipt = yield Step(supplier, "receivable.draft", draft)
        receivable = _created(receipt, "receivable")
        if receivable is None:
            return
        receipt = yield self._confirm(receivable, amount, due)
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
            "due_day": due,
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
        yield self._advance_to(due)
        for part in _created(receipt, "children") or (receivable,):
            yield Step(self.core, "receivable.settle", {"receivable": part})

    def _rule_breakers(self, supplier: str) -> Flow:
        """Transactions that break a rule: each is ordered and fails with its reason."""
        due = self.day + 3 * TERM_DAYS
        receipt = yield Step(
            supplier, "receivable.draft", {"debtor": self.core, "amount": AMOUNT, "due_day": due}
        )
        receivable = _created(receipt, "receivable")
        if receivable is not None:
            yield self._confirm(receivable, AMOUNT + 1, due)  # the wrong amount
            yield Step(supplier, "receivable.pledge", {"receivable": receivable, "bank": supplier})
            lend = {
                "borrower": supplier,
                "principal": AMOUNT,
                "amount_due": AMOUNT,
                "due_day": due,
                "receivable": receivable,  # not pledged to this bank
            }
            yield Step(self.banks[0], "loan.lend", lend)
        draft = {"debtor": self.core, "amount": 5, "due_day": due}
        yield Step(self.banks[0], "receivable.draft", draft)
        yield Step(supplier, "loan.repay", {"loan": "loan-0000000000000000", "amount": 1})
        yield Step(supplier, "member.freeze", {"member": self.core})
        line = {"borrower": supplier, "amounts": [1], "due_days": [1], "threshold": 0, "rate_bp": 0}
        yield Step(supplier, "creditline.open", {**line})

    def _collection(self, supplier: str) -> Flow:
        """A loan goes unpaid past its due day; the bank publishes a collection task, agencies
        bid sealed and reveal, the lowest rate wins and alone gets the debtor's contact data
        (sealed to it and the regulator); it recovers part, the commission settles once, and
        the bank writes the rest off. A second bid, a false reveal and a loser's action fail."""
        bank = self.rng.choice(self.banks)
        due = self.day + 2
        lend = {
            "borrower": supplier,
            "principal": 40_000,
            "amount_due": 44_000,
            "due_day": due,
            "receivable": None,
        }
        receipt = yield Step(bank, "loan.lend", lend)
        loan = _created(receipt, "loan")
        if loan is None:
            return
        yield self._advance_to(due + 1)
        yield Step(bank, "loan.mark_overdue", {"loan": loan})
        yield Step(bank, "loan.record_repayment", {"loan": loan, "amount": 1_000})
        contact = f"{supplier}: contact {self.made}".encode()
        publish = {
            "loan": loan,
            "bid_deadline": self.day + 2,
            "reveal_deadline": self.day + 10,
            "contact_commitment": contact_commitment(contact),
        }
        receipt = yield Step(bank, "collection.publish", publish)
        task = _created(receipt, "task")
        if task is None:
            return
        bidders = self.agencies[:2]
        rates = {agency: self.rng.randrange(100, 1000) for agency in bidders}
        salts = {agency: self._fresh("salt")[:16] for agency in bidders}
        for agency in bidders:
            commitment = bid_commitment(task, agency, rates[agency], salts[agency])
            yield Step(agency, "collection.bid", {"task": task, "commitment": commitment})
        again = bid_commitment(task, bidders[-1], 1, salts[bidders[-1]])
        yield Step(bidders[-1], "collection.bid", {"task": task, "commitment": again})
        yield self._advance_to(publish["bid_deadline"] + 1)
        false_reveal = {"task": task, "rate_bp": rates[bidders[0]] + 1, "salt": salts[bidders[0]]}
        yield Step(bidders[0], "collection.reveal", false_reveal)
        for agency in bidders:
            reveal = {"task": task, "rate_bp": rates[agency], "salt": salts[agency]}
            yield Step(agency, "collection.reveal", reveal)
        receipt = yield Step(bank, "collection.assign", {"task": task})
        winner = _created(receipt, "agency")
        if winner is None:
            return
        ciphertexts = {
            reader: sealed_for(self.pairs[reader].public_key, contact, self._fresh("seal"))
            for reader in sorted((winner, self.regulator))
        }
        yield Step(bank, "collection.grant_data", {"task": task, "ciphertexts": ciphertexts})
        yield Step(winner, "collection.log_action", {"task": task, "action": "phoned"})
        loser = next(a for a in bidders if a != winner)
        yield Step(loser, "collection.log_action", {"task": task, "action": "visited"})
        yield Step(winner, "collection.report_recovery", {"task": task, "amount": 10_000})
        yield Step(bank, "collection.settle", {"task": task})
        yield Step(bank, "collection.settle", {"task": task})
        yield Step(bank, "loan.write_off", {"loan": loan})

    def _warehouse(self, supplier: str) -> Flow:
        """Goods in a warehouse back a loan: a receipt (not a second for the same lot), amended
        with the owner's consent, pledged, lent on (not by another bank); half repaid frees half
        the goods (none leave before); then default, and the bank liquidates the rest."""
        lot = f"lot-{self.made}"
        inspection = self._fresh("inspection")
        terms = {"commodity": "copper", "quantity": 100, "grade": "A", "inspection": inspection}
        issue = {"owner": supplier, "lot": lot, **terms}
        receipt = yield Step(self.warehouse, "warehouse.issue", issue)
        held = _created(receipt, "receipt")
        if held is None:
            return
        yield Step(self.warehouse, "warehouse.issue", {**issue, "inspection": self._fresh("copy")})
        amended = {**terms, "quantity": 120}
        statement = amendment_statement(held, 0, "copper", 120, "A", inspection)
        consent = self.wallets[supplier].key.sign(statement)
        amend = {"receipt": held, **amended, "consent": consent}
        yield Step(self.warehouse, "warehouse.amend", amend)
        bank, other_bank = self.rng.sample(self.banks, 2) if len(self.banks) > 1 else self.banks * 2
        yield Step(supplier, "warehouse.pledge", {"receipt": held, "bank": bank})
        due = self.day + 5
        lend = {"receipt": held, "principal": 30_000, "amount_due": 33_000, "due_day": due}
        if other_bank != bank:
            yield Step(other_bank, "warehouse.lend", lend)
        receipt = yield Step(bank, "warehouse.lend", lend)
        loan = _created(receipt, "loan")
        if loan is None:
            return
        yield Step(self.warehouse, "warehouse.outbound", {"receipt": held, "quantity": 10})
        yield Step(supplier, "loan.repay", {"loan": loan, "amount": 16_500})
        yield Step(bank, "warehouse.release", {"receipt": held, "quantity": 60})
        yield Step(self.warehouse, "warehouse.outbound", {"receipt": held, "quantity": 60})
        yield self._advance_to(due + 1)
        yield Step(bank, "loan.mark_overdue", {"loan": loan})
        yield Step(bank, "warehouse.liquidate", {"receipt": held, "proceeds": 20_000})

    def _credit_line(self, supplier: str) -> Flow:
        """A bank opens a line of two tranches for a supplier; repaying the first in full
        releases the second, which is repaid too."""
        bank = self.rng.choice(self.banks)
        line = {
            "borrower": supplier,
            "amounts": [20_000, 30_000],
            "due_days": [TERM_DAYS, TERM_DAYS],
            "threshold": MIN_SCORE,
            "rate_bp": 500,
        }
        receipt = yield Step(bank, "creditline.open", line)
        first = _created(receipt, "loan")
        if first is None:
            return
        receipt = yield Step(supplier, "loan.repay", {"loan": first, "amount": 21_000})
        second = _created(receipt, "tranche_loan")
        if second is not None:
            yield Step(supplier, "loan.repay", {"loan": second, "amount": 31_500})

    def _membership(self, supplier: str) -> Flow:
        """The regulator registers a supplier, which drafts; frozen, its draft fails; unfrozen,
        it rotates its key and signs with the new one. The regulator also resets the core
        enterprise's credit line to the limit it has."""
        newcomer = f"member-{self.made}"
        key = self._fresh_key()
        register = {"member": newcomer, "role": "supplier", "public_key": key.public_key}
        receipt = yield Step(self.regulator, "member.register", register)
        if not receipt.ok:
            return
        self.wallets[newcomer] = Wallet(self.chain_id, newcomer, key, first_nonce=1)
        self.queues[newcomer] = deque()
        draft = {"debtor": self.core, "amount": 500, "due_day": self.day + TERM_DAYS}
        yield Step(newcomer, "receivable.draft", draft)
        yield Step(self.regulator, "member.freeze", {"member": newcomer})
        yield Step(newcomer, "receivable.draft", draft)
        yield Step(self.regulator, "member.unfreeze", {"member": newcomer})
        rotated = self._fresh_key()
        rotate = {"member": newcomer, "public_key": rotated.public_key}
        receipt = yield Step(newcomer, "member.rotate_key", rotate)
        if receipt.ok:
            self.wallets[newcomer].key = rotated
        yield Step(newcomer, "receivable.draft", draft)
        limit = {"member": self.core, "limit": self.core_credit_limit}
        yield Step(self.regulator, "credit.set_line", limit)

    def _securitisation(self, supplier: str) -> Flow:
        """A bank pools two loans (a loan pooled again fails), the arranger structures two tranches
        (too large a structure fails), a granted rating agency rates (an ungranted one fails), two
        investors subscribe, the issue closes, a unit trade settles against payment, the loans are
        repaid into the pool and two distributions pay the waterfall (a junior-first instruction
        fails); the second is the pool's last."""
        bank = self.rng.choice(self.banks)
        due = self.day + 5
        loans = []
        for principal in (40_000, 20_000):
            lend = {
                "borrower": supplier,
                "principal": principal,
                "amount_due": principal * 105 // 100,
                "due_day": due,
                "receivable": None,
            }
            receipt = yield Step(bank, "loan.lend", lend)
            if _created(receipt, "loan") is None:
                return
            loans.append(_created(receipt, "loan"))
        tape = f"loans of {supplier}: {self.made}".encode()
        create = {
            "loans": loans,
            "arranger": self.arranger,
            "period_days": 1,
            "default_days": 30,
            "data_commitment": sha256(tape),
        }
        receipt = yield Step(bank, "pool.create", create)
        pool = _created(receipt, "pool")
        if pool is None:
            return
        yield Step(bank, "pool.create", {**create, "loans": loans[:1]})
        too_big = [["senior", 50_000, 50, 300], ["junior", 20_000, 20, 900]]
        yield Step(self.arranger, "pool.structure", {"pool": pool, "tranches": too_big})
        tranches = [["senior", 45_000, 45, 300], ["junior", 15_000, 15, 900]]
        receipt = yield Step(self.arranger, "pool.structure", {"pool": pool, "tranches": tranches})
        if not receipt.ok:
            return
        rater, other = self.raters[0], self.raters[-1]
        ciphertexts = {
            reader: sealed_for(self.pairs[reader].public_key, tape, self._fresh("seal"))
            for reader in sorted((rater, self.regulator))
        }
        grant = {"pool": pool, "agency": rater, "ciphertexts": ciphertexts}
        yield Step(bank, "pool.grant_data", grant)
        rating = {"pool": pool, "grades": ["AAA", "B"], "report": self._fresh("report")}
        if other != rater:
            yield Step(other, "pool.rate", rating)
        yield Step(rater, "pool.rate", rating)
        buyer, seller = self.investors[0], self.investors[-1]
        yield Step(seller, "pool.subscribe", {"pool": pool, "tranche": "senior", "units": 45})
        yield Step(buyer, "pool.subscribe", {"pool": pool, "tranche": "junior", "units": 10})
        receipt = yield Step(self.arranger, "pool.close", {"pool": pool})
        if not receipt.ok:
            return
        trade = f"trade-{self.made}"
        self.made += 1
        consent = self.wallets[buyer].key.sign(
            transfer_statement(pool, trade, "senior", seller, buyer, 5, 4_000)
        )
        transfer = {
            "pool": pool,
            "trade": trade,
            "tranche": "senior",
            "seller": seller,
            "buyer": buyer,
            "units": 5,
            "price": 4_000,
            "consent": consent,
        }
        yield Step(seller, "pool.transfer_units", transfer)
        yield Step(supplier, "loan.repay", {"loan": loans[0], "amount": 42_000})
        yield self._advance_to(self.day + 1)
        yield Step(bank, "pool.distribute", {"pool": pool, "payments": [0, 42_000]})
        yield Step(bank, "pool.distribute", {"pool": pool, "payments": None})
        yield Step(supplier, "loan.repay", {"loan": loans[1], "amount": 21_000})
        yield self._advance_to(self.day + 1)
        yield Step(bank, "pool.distribute", {"pool": pool, "payments": None})

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
