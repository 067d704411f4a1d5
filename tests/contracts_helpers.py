"""A small executor for contract tests: genesis from a config, real ed25519 keys, and blocks of
transactions run the way the ledger runs them (one overlay per transaction over one per block,
a failed transaction's overlay dropped, the block's writes applied to the real `State`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consortium import contracts
from consortium.config import NetworkConfig, parse_config
from consortium.contracts import RuleViolation, TxContext, bid_commitment
from consortium.crypto import KeyPair, seal, sha256
from consortium.keys import KeyDirectory
from consortium.ledger.state import Overlay, State

NODES = [
    {"id": "bank-a", "role": "bank"},
    {"id": "bank-b", "role": "bank"},
    {"id": "core", "role": "core_enterprise"},
    {"id": "agency", "role": "collection_agency"},
    {"id": "regulator", "role": "regulator"},
]
MEMBERS = [
    {"id": "supplier-a", "role": "supplier"},
    {"id": "supplier-b", "role": "supplier"},
    {"id": "supplier-c", "role": "supplier"},
    {"id": "core-2", "role": "core_enterprise"},
    {"id": "agency-2", "role": "collection_agency"},
    {"id": "agency-3", "role": "collection_agency"},
    {"id": "warehouse-1", "role": "warehouse"},
    {"id": "arranger", "role": "arranger"},
    {"id": "rating-1", "role": "rating_agency"},
    {"id": "rating-2", "role": "rating_agency"},
    {"id": "investor-1", "role": "investor"},
    {"id": "investor-2", "role": "investor"},
    {"id": "investor-3", "role": "investor"},
]
BALANCES = {
    "bank-a": 100_000_000,
    "bank-b": 100_000_000,
    "core": 50_000_000,
    "core-2": 5_000_000,
    "supplier-a": 1_000_000,
    "supplier-b": 1_000_000,
    "supplier-c": 1_000_000,
    "investor-1": 5_000_000,
    "investor-2": 5_000_000,
    "investor-3": 5_000_000,
}
CREDIT_LINES = {"core": 20_000_000, "core-2": 3_000_000}
GENESIS_TOTAL = sum(BALANCES.values())


def make_config(
    balances: dict[str, int] | None = None, credit_lines: dict[str, int] | None = None
) -> NetworkConfig:
    raw = {
        "chain_id": "contracts-test",
        "nodes": NODES,
        "members": MEMBERS,
        "genesis": {
            "balances": BALANCES if balances is None else balances,
            "credit_lines": CREDIT_LINES if credit_lines is None else credit_lines,
        },
    }
    return parse_config(raw, Path("/nonexistent/nodes.yaml"))


def seeded_key(label: str) -> KeyPair:
    """A deterministic key, so failures replay exactly."""
    return KeyPair(hashlib.sha256(b"contracts-test/" + label.encode()).digest())


@dataclass
class Receipt:
    ok: bool
    reason: str
    result: dict[str, Any] | None
    tx_id: bytes


@dataclass
class Network:
    """Genesis state plus the members' current key pairs; `submit` runs one transaction."""

    config: NetworkConfig = field(default_factory=make_config)
    state: State = field(default_factory=State)
    keys: dict[str, KeyPair] = field(default_factory=dict)
    height: int = 0
    tx_counter: int = 0
    receipts: list[tuple[str, str, Receipt]] = field(default_factory=list)
    history: list[list[tuple[str, str, dict[str, Any]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for m in self.config.members:
            self.keys[m.id] = seeded_key(m.id)
        directory = KeyDirectory({k: v.public_key for k, v in self.keys.items()}, {})
        self.state.apply(contracts.genesis_writes(self.config, directory))

    def next_tx_id(self) -> bytes:
        self.tx_counter += 1
        return hashlib.sha256(b"tx/" + self.tx_counter.to_bytes(8, "big")).digest()

    def block(self, txs: list[tuple[str, str, dict[str, Any]]]) -> list[Receipt]:
        """Execute `txs` (sender, op, args) in one block, in order, and commit the block."""
        self.height += 1
        self.history.append(list(txs))
        block_view = Overlay(self.state)
        receipts = []
        for index, (sender, op, args) in enumerate(txs):
            tx_id = self.next_tx_id()
            ctx = TxContext(sender, tx_id, self.height, index)
            block_view.begin()
            try:
                result = contracts.execute(block_view, ctx, op, args)
            except RuleViolation as violation:
                block_view.roll_back()
                receipt = Receipt(False, violation.reason, None, tx_id)
            else:
                block_view.keep()
                receipt = Receipt(True, "", result, tx_id)
            receipts.append(receipt)
            self.receipts.append((sender, op, receipt))
        self.state.apply(block_view.writes)
        return receipts

    def submit(self, sender: str, op: str, **args: Any) -> Receipt:
        return self.block([(sender, op, args)])[0]

    def run(self, sender: str, op: str, **args: Any) -> dict[str, Any] | None:
        """Submit a transaction that must succeed."""
        receipt = self.submit(sender, op, **args)
        assert receipt.ok, f"{op} by {sender} failed: {receipt.reason}"
        return receipt.result

    def reject(self, reason_part: str, sender: str, op: str, **args: Any) -> str:
        """Submit a transaction that must fail with a reason containing `reason_part` and must
        leave the state exactly as it was."""
        before = self.state.root
        receipt = self.submit(sender, op, **args)
        assert not receipt.ok, f"{op} by {sender} succeeded but should fail ({reason_part})"
        assert reason_part in receipt.reason, receipt.reason
        assert self.state.root == before
        return receipt.reason

    def get(self, key: str) -> Any:
        return self.state.get(key)

    def balance(self, member_id: str) -> int:
        return self.state.get("bal/" + member_id) or 0

    def total_money(self) -> int:
        return sum(self.state.get(k) for k in self.state.keys_with_prefix("bal/"))

    def confirmation(self, rcv_id: str, signer: str | KeyPair, debtor: str = "core") -> bytes:
        """`signer`'s signature over the receivable's terms as stored (debtor named `debtor`)."""
        rcv = self.state.get("rcv/" + rcv_id)
        key = self.keys[signer] if isinstance(signer, str) else signer
        return key.sign(
            contracts.confirmation_statement(rcv_id, debtor, rcv["amount"], rcv["due_day"])
        )

    def advance_to(self, day: int) -> None:
        today = contracts.business_day(self.state)
        if day > today:
            self.run("regulator", "clock.advance", days=day - today)

    # Common flows ---------------------------------------------------------------------------

    def confirmed(self, supplier: str, amount: int, due_day: int, debtor: str = "core") -> str:
        rcv_id = self.run(
            supplier, "receivable.draft", debtor=debtor, amount=amount, due_day=due_day
        )["receivable"]
        self.run(
            debtor,
            "receivable.confirm",
            receivable=rcv_id,
            amount=amount,
            due_day=due_day,
            confirmation=self.confirmation(rcv_id, debtor, debtor),
        )
        return rcv_id

    def plain_loan(
        self, bank: str, borrower: str, principal: int, amount_due: int, due_day: int
    ) -> str:
        return self.run(
            bank,
            "loan.lend",
            borrower=borrower,
            principal=principal,
            amount_due=amount_due,
            due_day=due_day,
            receivable=None,
        )["loan"]


# Collection flows ------------------------------------------------------------------------------


def overdue_loan(net: Network, days_overdue: int = 31) -> str:
    loan = net.plain_loan("bank-a", "supplier-c", 500_000, 550_000, due_day=30)
    net.advance_to(30 + days_overdue)
    net.run("bank-a", "loan.mark_overdue", loan=loan)
    return loan


def published_task(net: Network, loan: str) -> str:
    today = contracts.business_day(net.state)
    return net.run(
        "bank-a",
        "collection.publish",
        loan=loan,
        bid_deadline=today + 2,
        reveal_deadline=today + 4,
        contact_commitment=sha256(b"supplier-c: +86 10 5555 0100"),
    )["task"]


SALTS = {"agency": b"a" * 16, "agency-2": b"b" * 16, "agency-3": b"c" * 16}


def sealed_bid(net: Network, task: str, agency: str, rate_bp: int) -> None:
    net.run(
        agency,
        "collection.bid",
        task=task,
        commitment=bid_commitment(task, agency, rate_bp, SALTS[agency]),
    )


def assigned_task(net: Network, loan: str, winner: str = "agency", rate_bp: int = 1000) -> str:
    task = published_task(net, loan)
    sealed_bid(net, task, winner, rate_bp)
    net.advance_to(contracts.business_day(net.state) + 3)
    net.run(winner, "collection.reveal", task=task, rate_bp=rate_bp, salt=SALTS[winner])
    net.run("bank-a", "collection.assign", task=task)
    return task


def replayed(history: list[list[tuple[str, str, dict[str, Any]]]]) -> Network:
    """A fresh network that ran the same blocks: the same history must give the same state."""
    net = Network()
    for txs in history:
        net.block(txs)
    return net


def recomputed_root(state: State) -> bytes:
    """The root of a fresh state with the same entries: differs from `state.root` if a stored
    value was changed in place behind the accumulator's back."""
    fresh = State()
    fresh.apply(dict(state.items()))
    return fresh.root


# Warehouse and credit-line flows ----------------------------------------------------------------


def inspection_hash(label: str) -> bytes:
    return sha256(b"inspection documents/" + label.encode())


def issued_receipt(
    net: Network,
    owner: str = "supplier-a",
    quantity: int = 1_000,
    lot: str = "lot-1",
    warehouse: str = "warehouse-1",
) -> str:
    return net.run(
        warehouse,
        "warehouse.issue",
        owner=owner,
        lot=lot,
        commodity="copper cathode",
        quantity=quantity,
        grade="A",
        inspection=inspection_hash(f"{warehouse}/{lot}"),
    )["receipt"]


def receipt_loan(
    net: Network,
    owner: str = "supplier-a",
    bank: str = "bank-a",
    quantity: int = 1_000,
    principal: int = 400_000,
    amount_due: int = 400_000,
    due_day: int = 60,
    lot: str = "lot-1",
) -> tuple[str, str]:
    """A receipt issued to `owner`, pledged to `bank`, and a loan against it: (receipt, loan)."""
    receipt = issued_receipt(net, owner, quantity, lot)
    net.run(owner, "warehouse.pledge", receipt=receipt, bank=bank)
    loan = net.run(
        bank,
        "warehouse.lend",
        receipt=receipt,
        principal=principal,
        amount_due=amount_due,
        due_day=due_day,
    )["loan"]
    return receipt, loan


def consent(
    net: Network, receipt_id: str, signer: str | KeyPair, **changes: Any
) -> tuple[dict[str, Any], bytes]:
    """New terms of a receipt (its current ones with `changes`) and `signer`'s signature over
    them at the receipt's current version."""
    receipt = net.get("whr/" + receipt_id)
    terms = {k: receipt[k] for k in ("commodity", "quantity", "grade", "inspection")} | changes
    key = net.keys[signer] if isinstance(signer, str) else signer
    statement = contracts.amendment_statement(receipt_id, receipt["version"], **terms)
    return terms, key.sign(statement)


def open_line(
    net: Network,
    borrower: str = "supplier-a",
    bank: str = "bank-a",
    amounts: tuple[int, ...] = (100_000, 200_000, 300_000),
    due_days: tuple[int, ...] = (30, 30, 30),
    threshold: int = 500,
    rate_bp: int = 0,
) -> dict[str, Any]:
    result = net.run(
        bank,
        "creditline.open",
        borrower=borrower,
        amounts=amounts,
        due_days=due_days,
        threshold=threshold,
        rate_bp=rate_bp,
    )
    assert result is not None
    return result


# Securitisation flows ---------------------------------------------------------------------------

LOAN_TAPE = b"loan-level data: four SME loans of bank-a"
POOL_LOANS = (
    ("supplier-a", 500_000, 30),
    ("supplier-b", 450_000, 30),
    ("supplier-c", 400_000, 60),
    ("core", 250_000, 30),
)
TRANCHES = (("senior", 1_200_000, 1_200, 400), ("junior", 400_000, 400, 1_000))


def pool_loans(
    net: Network, specs: tuple[tuple[str, int, int], ...] = POOL_LOANS, bank: str = "bank-a"
) -> list[str]:
    """Plain loans with 5 % interest, each due `days` from today."""
    today = contracts.business_day(net.state)
    return [
        net.plain_loan(bank, borrower, principal, principal * 105 // 100, today + days)
        for borrower, principal, days in specs
    ]


def pooled(net: Network, loans: list[str], period_days: int = 30, default_days: int = 20) -> str:
    return net.run(
        "bank-a",
        "pool.create",
        loans=loans,
        arranger="arranger",
        period_days=period_days,
        default_days=default_days,
        data_commitment=sha256(LOAN_TAPE),
    )["pool"]


def sealed_tape(net: Network, *readers: str) -> dict[str, bytes]:
    return {m: seal(net.keys[m].public_key, LOAN_TAPE) for m in sorted(readers)}


def structured_pool(
    net: Network, tranches: tuple[tuple[str, int, int, int], ...] = TRANCHES, **pool_terms: int
) -> tuple[str, list[str]]:
    """Bank-a's four loans pooled, structured, the data granted to rating-1 and rated."""
    loans = pool_loans(net)
    pool = pooled(net, loans, **pool_terms)
    net.run("arranger", "pool.structure", pool=pool, tranches=[list(t) for t in tranches])
    net.run(
        "bank-a",
        "pool.grant_data",
        pool=pool,
        agency="rating-1",
        ciphertexts=sealed_tape(net, "rating-1", "regulator"),
    )
    grades = ["AAA", "BB", "B", "C", "C"][: len(tranches)]
    net.run("rating-1", "pool.rate", pool=pool, grades=grades, report=sha256(b"rating report"))
    return pool, loans


def issued_pool(net: Network, **pool_terms: int) -> tuple[str, list[str]]:
    """Scenario 8's pool: investor-1 1,000 and investor-2 200 senior units, investor-2 300 of
    the 400 junior units (100 cancelled at closing)."""
    pool, loans = structured_pool(net, **pool_terms)
    net.run("investor-1", "pool.subscribe", pool=pool, tranche="senior", units=1_000)
    net.run("investor-2", "pool.subscribe", pool=pool, tranche="senior", units=200)
    net.run("investor-2", "pool.subscribe", pool=pool, tranche="junior", units=300)
    net.run("arranger", "pool.close", pool=pool)
    return pool, loans


def unit_consent(
    net: Network,
    pool: str,
    trade: str,
    tranche: str,
    seller: str,
    buyer: str,
    units: int,
    price: int,
    signer: str | KeyPair | None = None,
) -> bytes:
    key = net.keys[signer or buyer] if not isinstance(signer, KeyPair) else signer
    return key.sign(contracts.transfer_statement(pool, trade, tranche, seller, buyer, units, price))
