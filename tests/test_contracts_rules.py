"""Each rule of the contracts on its own: the gate every transaction passes, and the rejection
reasons of every operation that the scenarios do not already walk through."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consortium import contracts
from consortium.contracts import RuleViolation, TxContext, audit_report, execute
from consortium.contracts.pricing import commission, commission_ceiling_bp, overdue_tier
from consortium.crypto import KeyPair, seal, sha256
from consortium.errors import ConfigError
from consortium.keys import KeyDirectory
from consortium.ledger.state import Overlay
from tests.contracts_helpers import (
    BALANCES,
    GENESIS_TOTAL,
    Network,
    assigned_task,
    issued_receipt,
    make_config,
    open_line,
    overdue_loan,
    receipt_loan,
)


@pytest.fixture
def net() -> Network:
    return Network()


def attempt(net: Network, sender: str, op: Any, args: Any) -> str:
    """Execute directly (not through the helper's keyword form) and return the reason."""
    ctx = TxContext(sender, b"\x01" * 32, 1, 0)
    with pytest.raises(RuleViolation) as raised:
        execute(Overlay(net.state), ctx, op, args)
    return raised.value.reason


# The gate -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "op", "args", "reason"),
    [
        ("core", "receivable.forge", {}, "unknown operation 'receivable.forge'"),
        ("core", None, {}, "unknown operation None"),
        ("core", b"clock.advance", {"days": 1}, "unknown operation b'clock.advance'"),
        ("stranger", "clock.advance", {"days": 1}, "stranger is not a member"),
        ("regulator", "clock.advance", None, "arguments must be a map"),
        ("regulator", "clock.advance", ("days", 1), "arguments must be a map"),
        ("regulator", "clock.advance", {}, "missing days"),
        ("regulator", "clock.advance", {"days": 1, "hours": 2}, "unexpected 'hours'"),
        ("regulator", "clock.advance", {"days": 1, 7: 2}, "unexpected 7"),
        ("regulator", "clock.advance", {"days": True}, "days must be an integer"),
        ("regulator", "clock.advance", {"days": "1"}, "days must be an integer"),
        ("regulator", "clock.advance", {"days": 0}, "from 1 to 3650"),
        ("regulator", "clock.advance", {"days": 3651}, "from 1 to 3650"),
        ("regulator", "clock.advance", {"days": 10**5000}, "got a huge integer"),
        (
            "regulator",
            "member.register",
            {"member": "x", "role": "\ud800", "public_key": b"k" * 32},
            "role must be a text",
        ),
        (
            "supplier-a",
            "receivable.draft",
            {"debtor": "core", "amount": -5, "due_day": 9},
            "amount must be an integer",
        ),
        (
            "supplier-a",
            "receivable.draft",
            {"debtor": "core", "amount": 10**16, "due_day": 9},
            "amount must be an integer",
        ),
        (
            "supplier-a",
            "receivable.draft",
            {"debtor": "Core!", "amount": 5, "due_day": 9},
            "debtor must be a member id",
        ),
        (
            "core",
            "receivable.settle",
            {"receivable": "rcv/../bal"},
            "receivable must be an object id",
        ),
    ],
)
def test_the_gate_refuses_bad_calls(
    net: Network, sender: str, op: Any, args: Any, reason: str
) -> None:
    assert reason in attempt(net, sender, op, args)


WRONG_ROLE = [
    ("bank-a", "member.register", {"member": "x", "role": "bank", "public_key": b"k" * 32}),
    ("core", "member.freeze", {"member": "agency"}),
    ("agency", "member.unfreeze", {"member": "agency"}),
    ("bank-a", "clock.advance", {"days": 1}),
    ("core", "credit.set_line", {"member": "core", "limit": 10**12}),
    ("bank-a", "receivable.draft", {"debtor": "core", "amount": 1, "due_day": 9}),
    ("supplier-a", "receivable.settle", {"receivable": "rcv-1"}),
    (
        "core",
        "loan.lend",
        {
            "borrower": "supplier-a",
            "principal": 1,
            "amount_due": 1,
            "due_day": 9,
            "receivable": None,
        },
    ),
    ("supplier-a", "loan.record_repayment", {"loan": "loan-1", "amount": 1}),
    ("regulator", "loan.mark_overdue", {"loan": "loan-1"}),
    ("agency", "loan.write_off", {"loan": "loan-1"}),
    (
        "agency",
        "collection.publish",
        {
            "loan": "loan-1",
            "bid_deadline": 1,
            "reveal_deadline": 2,
            "contact_commitment": b"c" * 32,
        },
    ),
    ("bank-a", "collection.bid", {"task": "task-1", "commitment": b"c" * 32}),
    ("supplier-a", "collection.reveal", {"task": "task-1", "rate_bp": 5, "salt": b"s" * 16}),
    ("agency", "collection.grant_data", {"task": "task-1", "ciphertexts": {"agency": b"x"}}),
    ("agency", "collection.settle", {"task": "task-1"}),
    (
        "bank-a",
        "warehouse.issue",
        {
            "owner": "supplier-a",
            "lot": "lot-1",
            "commodity": "rice",
            "quantity": 1,
            "grade": "A",
            "inspection": b"i" * 32,
        },
    ),
    (
        "supplier-a",
        "warehouse.amend",
        {
            "receipt": "whr-1",
            "commodity": "rice",
            "quantity": 1,
            "grade": "A",
            "inspection": b"i" * 32,
            "consent": b"s" * 64,
        },
    ),
    (
        "supplier-a",
        "warehouse.lend",
        {"receipt": "whr-1", "principal": 1, "amount_due": 1, "due_day": 9},
    ),
    ("bank-a", "warehouse.outbound", {"receipt": "whr-1", "quantity": 1}),
    ("warehouse-1", "warehouse.liquidate", {"receipt": "whr-1", "proceeds": 1}),
    (
        "supplier-a",
        "creditline.open",
        {
            "borrower": "supplier-a",
            "amounts": (1,),
            "due_days": (1,),
            "threshold": 0,
            "rate_bp": 0,
        },
    ),
]


@pytest.mark.parametrize(("sender", "op", "args"), WRONG_ROLE, ids=[w[1] for w in WRONG_ROLE])
def test_each_role_checked_operation_refuses_other_roles(
    net: Network, sender: str, op: str, args: dict[str, Any]
) -> None:
    assert "may do this" in attempt(net, sender, op, args)


def test_every_operation_is_reachable_and_documented() -> None:
    assert set(contracts.PARAMETERS) == contracts.OPERATIONS
    assert all(name.count(".") == 1 for name in contracts.OPERATIONS)
    assert len(contracts.OPERATIONS) == 41


# Genesis and registry ------------------------------------------------------------------------


def test_genesis_has_members_balances_credit_lines_and_day_zero(net: Network) -> None:
    assert contracts.business_day(net.state) == 0
    assert net.total_money() == GENESIS_TOTAL
    assert all(net.balance(m) == amount for m, amount in BALANCES.items())
    assert net.get("credit/core") == {"limit": 20_000_000, "used": 0}
    assert net.get("role/collection_agency") == ("agency", "agency-2", "agency-3")
    for member_id, pair in net.keys.items():
        assert contracts.member_public_key(net.state, member_id) == pair.public_key
    assert contracts.member_public_key(net.state, "stranger") is None


def test_genesis_refuses_inconsistent_configuration(net: Network) -> None:
    keys = {k: v.public_key for k, v in net.keys.items()}
    with pytest.raises(ConfigError, match="not a core enterprise"):
        contracts.genesis_writes(make_config(credit_lines={"bank-a": 5}), KeyDirectory(keys, {}))
    with pytest.raises(ConfigError, match="no member key for core"):
        missing = {k: v for k, v in keys.items() if k != "core"}
        contracts.genesis_writes(make_config(), KeyDirectory(missing, {}))
    with pytest.raises(ConfigError, match="used by another member"):
        shared = {**keys, "core": keys["bank-a"]}
        contracts.genesis_writes(make_config(), KeyDirectory(shared, {}))


def test_a_registered_member_acts_and_a_new_regulator_receives_grants(net: Network) -> None:
    supplier = KeyPair(sha256(b"supplier-d"))
    net.reject(
        "unknown role",
        "regulator",
        "member.register",
        member="supplier-d",
        role="pirate",
        public_key=supplier.public_key,
    )
    net.reject(
        "must be 32 to 32 bytes",
        "regulator",
        "member.register",
        member="supplier-d",
        role="supplier",
        public_key=b"short",
    )
    assert net.run(
        "regulator",
        "member.register",
        member="supplier-d",
        role="supplier",
        public_key=supplier.public_key,
    ) == {"member": "supplier-d"}
    net.reject(
        "is a member already",
        "regulator",
        "member.register",
        member="supplier-d",
        role="bank",
        public_key=KeyPair(sha256(b"other")).public_key,
    )
    assert contracts.member_public_key(net.state, "supplier-d") == supplier.public_key
    net.run("supplier-d", "receivable.draft", debtor="core", amount=10, due_day=5)
    net.run(
        "regulator",
        "member.register",
        member="regulator-2",
        role="regulator",
        public_key=KeyPair(sha256(b"regulator-2")).public_key,
    )
    assert net.get("role/regulator") == ("regulator", "regulator-2")

    task = assigned_task(net, overdue_loan(net))
    box = seal(net.keys["agency"].public_key, b"contact")
    two = {"agency": box, "regulator": box}
    net.reject(
        "exactly agency, regulator, regulator-2",
        "bank-a",
        "collection.grant_data",
        task=task,
        ciphertexts=two,
    )
    net.run("bank-a", "collection.grant_data", task=task, ciphertexts={**two, "regulator-2": box})


def test_only_the_member_or_the_regulator_rotates_a_key(net: Network) -> None:
    fresh = KeyPair(sha256(b"fresh")).public_key
    net.reject(
        "may not rotate the key of core",
        "bank-a",
        "member.rotate_key",
        member="core",
        public_key=fresh,
    )
    net.reject(
        "stranger is not a member",
        "regulator",
        "member.rotate_key",
        member="stranger",
        public_key=fresh,
    )
    net.run("core", "member.rotate_key", member="core", public_key=fresh)
    assert contracts.member_public_key(net.state, "core") == fresh


def test_a_frozen_counterparty_is_not_taken_on(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 1000, 50)
    net.run("regulator", "member.freeze", member="supplier-b")
    net.run("regulator", "member.freeze", member="bank-b")
    net.reject(
        "recipient supplier-b is frozen",
        "supplier-a",
        "receivable.transfer",
        receivable=rcv,
        to="supplier-b",
    )
    net.reject(
        "pledgee bank-b is frozen", "supplier-a", "receivable.pledge", receivable=rcv, bank="bank-b"
    )
    net.reject(
        "borrower supplier-b is frozen",
        "bank-a",
        "loan.lend",
        borrower="supplier-b",
        principal=1,
        amount_due=1,
        due_day=9,
        receivable=None,
    )
    net.run("regulator", "member.freeze", member="core")
    net.reject(
        "debtor core is frozen",
        "supplier-a",
        "receivable.draft",
        debtor="core",
        amount=1,
        due_day=9,
    )


# Receivables --------------------------------------------------------------------------------


def test_draft_rules(net: Network) -> None:
    net.reject(
        "debtor supplier-b is not a core_enterprise",
        "supplier-a",
        "receivable.draft",
        debtor="supplier-b",
        amount=10,
        due_day=5,
    )
    net.advance_to(10)
    net.reject(
        "due day 10 is not after today (10)",
        "supplier-a",
        "receivable.draft",
        debtor="core",
        amount=10,
        due_day=10,
    )
    net.reject(
        "amount must be an integer from 1",
        "supplier-a",
        "receivable.draft",
        debtor="core",
        amount=0,
        due_day=11,
    )


def test_split_rules(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 1000, 50)
    net.reject(
        "parts sum to 999",
        "supplier-a",
        "receivable.split",
        receivable=rcv,
        parts=(("supplier-a", 500), ("supplier-b", 499)),
    )
    net.reject(
        "list of 2 to 16",
        "supplier-a",
        "receivable.split",
        receivable=rcv,
        parts=(("supplier-b", 1000),),
    )
    net.reject(
        "recipient bank-a is not a supplier",
        "supplier-a",
        "receivable.split",
        receivable=rcv,
        parts=(("supplier-a", 500), ("bank-a", 500)),
    )
    net.reject(
        "each part of parts",
        "supplier-a",
        "receivable.split",
        receivable=rcv,
        parts=(("supplier-a", 1000), ("supplier-b", 0)),
    )
    net.reject(
        "held by supplier-a, not supplier-b",
        "supplier-b",
        "receivable.split",
        receivable=rcv,
        parts=(("supplier-a", 500), ("supplier-b", 500)),
    )
    children = net.run(
        "supplier-a",
        "receivable.split",
        receivable=rcv,
        parts=[["supplier-b", 300], ["supplier-b", 300], ["supplier-c", 400]],
    )
    first, second, third = children["children"]
    assert len({first, second, third}) == 3
    grandchildren = net.run(
        "supplier-b",
        "receivable.split",
        receivable=first,
        parts=(("supplier-a", 1), ("supplier-c", 299)),
    )["children"]
    assert [net.get("rcv/" + g)["parent"] for g in grandchildren] == [first, first]
    assert net.get("credit/core")["used"] == 1000
    assert audit_report(net.state)["problems"] == []


def test_transfer_moves_the_token_to_another_supplier(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 1000, 50)
    draft = net.run("supplier-a", "receivable.draft", debtor="core", amount=5, due_day=50)[
        "receivable"
    ]
    net.reject(
        "DRAFTED, not CONFIRMED",
        "supplier-a",
        "receivable.transfer",
        receivable=draft,
        to="supplier-b",
    )
    net.reject(
        "to its holder", "supplier-a", "receivable.transfer", receivable=rcv, to="supplier-a"
    )
    net.reject("not a supplier", "supplier-a", "receivable.transfer", receivable=rcv, to="bank-a")
    net.run("supplier-a", "receivable.transfer", receivable=rcv, to="supplier-b")
    net.reject(
        "held by supplier-b", "supplier-a", "receivable.pledge", receivable=rcv, bank="bank-a"
    )
    net.run("supplier-b", "receivable.pledge", receivable=rcv, bank="bank-a")
    net.reject(
        "not a bank",
        "supplier-c",
        "receivable.pledge",
        receivable=net.confirmed("supplier-c", 1, 50),
        bank="core",
    )


def test_settlement_rules(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 1_000, 20)
    net.run("supplier-a", "receivable.pledge", receivable=rcv, bank="bank-a")
    loan = net.run(
        "bank-a",
        "loan.lend",
        borrower="supplier-a",
        principal=900,
        amount_due=1_500,
        due_day=20,
        receivable=rcv,
    )["loan"]
    net.reject("a core_enterprise", "supplier-a", "receivable.settle", receivable=rcv)
    net.advance_to(20)
    net.reject("owed by core, not core-2", "core-2", "receivable.settle", receivable=rcv)
    assert net.run("core", "receivable.settle", receivable=rcv) == {
        "to_pledgee": 1_000,
        "to_holder": 0,
    }
    record = net.get("loan/" + loan)
    assert (record["state"], record["repaid"]) == ("ACTIVE", 1_000)
    net.reject("SETTLED, not payable", "core", "receivable.settle", receivable=rcv)
    net.reject("exceeds the 500 outstanding", "supplier-a", "loan.repay", loan=loan, amount=501)
    net.run("supplier-a", "loan.repay", loan=loan, amount=500)
    assert net.total_money() == GENESIS_TOTAL


def test_a_repaid_loan_leaves_the_whole_receivable_to_the_holder(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 1_000, 20)
    net.run("supplier-a", "receivable.pledge", receivable=rcv, bank="bank-b")
    loan = net.run(
        "bank-b",
        "loan.lend",
        borrower="supplier-a",
        principal=800,
        amount_due=850,
        due_day=20,
        receivable=rcv,
    )["loan"]
    net.run("supplier-a", "loan.repay", loan=loan, amount=850)
    net.reject("REPAID, not open", "supplier-a", "loan.repay", loan=loan, amount=1)
    net.advance_to(25)
    assert net.run("core", "receivable.settle", receivable=rcv) == {
        "to_pledgee": 0,
        "to_holder": 1_000,
    }


def test_a_loan_is_not_written_off_while_its_collateral_is_unpaid(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 1_000, 100)
    net.run("supplier-a", "receivable.pledge", receivable=rcv, bank="bank-b")
    loan = net.run(
        "bank-b",
        "loan.lend",
        borrower="supplier-a",
        principal=800,
        amount_due=850,
        due_day=20,
        receivable=rcv,
    )["loan"]
    net.advance_to(21)
    net.run("bank-b", "loan.mark_overdue", loan=loan)
    net.reject("pledged for this loan is not settled", "bank-b", "loan.write_off", loan=loan)
    net.advance_to(100)
    net.run("core", "receivable.settle", receivable=rcv)
    assert net.get("loan/" + loan)["state"] == "REPAID"


def test_a_debtor_without_the_money_cannot_settle() -> None:
    net = Network(config=make_config(balances={**BALANCES, "core-2": 999}))
    rcv = net.confirmed("supplier-a", 1_000, 20, debtor="core-2")
    net.advance_to(20)
    net.reject("core-2 has 999, needs 1000", "core-2", "receivable.settle", receivable=rcv)
    assert net.get("rcv/" + rcv)["state"] == "CONFIRMED"


# Loans --------------------------------------------------------------------------------------


def test_lending_rules(net: Network) -> None:
    terms = dict(principal=100, amount_due=110, due_day=30, receivable=None)
    net.reject(
        "borrower bank-b is not a supplier or core enterprise",
        "bank-a",
        "loan.lend",
        borrower="bank-b",
        **terms,
    )
    net.reject(
        "less than the principal",
        "bank-a",
        "loan.lend",
        borrower="supplier-a",
        **{**terms, "amount_due": 99},
    )
    net.reject(
        "not after today", "bank-a", "loan.lend", borrower="supplier-a", **{**terms, "due_day": 0}
    )
    net.reject(
        "bank-a has 100000000, needs 100000001",
        "bank-a",
        "loan.lend",
        borrower="supplier-a",
        **{**terms, "principal": 100_000_001, "amount_due": 100_000_001},
    )
    net.reject(
        "no receivable rcv-0",
        "bank-a",
        "loan.lend",
        borrower="supplier-a",
        **{**terms, "receivable": "rcv-0"},
    )
    loan = net.run("bank-a", "loan.lend", borrower="core", **terms)["loan"]
    assert net.balance("core") == BALANCES["core"] + 100
    record = net.get("loan/" + loan)
    assert (record["state"], record["amount_due"], record["bank"]) == ("ACTIVE", 110, "bank-a")


def test_repayment_and_overdue_rules(net: Network) -> None:
    loan = net.plain_loan("bank-a", "supplier-a", 1_000, 1_100, 30)
    net.reject(
        "owed by supplier-a, not supplier-b", "supplier-b", "loan.repay", loan=loan, amount=1
    )
    net.reject("lent by bank-a, not bank-b", "bank-b", "loan.record_repayment", loan=loan, amount=1)
    net.advance_to(30)
    net.reject("due on day 30, today is 30", "bank-a", "loan.mark_overdue", loan=loan)
    net.reject("not OVERDUE", "bank-a", "loan.write_off", loan=loan)
    net.reject(
        "a task needs an OVERDUE loan",
        "bank-a",
        "collection.publish",
        loan=loan,
        bid_deadline=40,
        reveal_deadline=41,
        contact_commitment=b"c" * 32,
    )
    net.run("supplier-a", "loan.repay", loan=loan, amount=100)
    net.advance_to(31)
    net.reject("lent by bank-a, not bank-b", "bank-b", "loan.mark_overdue", loan=loan)
    net.run("bank-a", "loan.mark_overdue", loan=loan)
    net.reject("OVERDUE, not ACTIVE", "bank-a", "loan.mark_overdue", loan=loan)
    net.run("supplier-a", "loan.repay", loan=loan, amount=1_000)
    assert net.get("loan/" + loan)["state"] == "REPAID"
    net.reject("REPAID, not OVERDUE", "bank-a", "loan.write_off", loan=loan)
    assert net.balance("bank-a") == BALANCES["bank-a"] + 100


def test_a_borrower_cannot_repay_money_it_does_not_have(net: Network) -> None:
    loan = net.plain_loan("bank-a", "supplier-a", 1, 5_000_000, 30)
    net.reject(
        "supplier-a has 1000001, needs 1000002",
        "supplier-a",
        "loan.repay",
        loan=loan,
        amount=1_000_002,
    )


# Collection ---------------------------------------------------------------------------------


def test_publication_rules(net: Network) -> None:
    loan = overdue_loan(net)
    today = contracts.business_day(net.state)
    base = dict(loan=loan, contact_commitment=sha256(b"contact"))
    net.reject(
        "lent by bank-a, not bank-b",
        "bank-b",
        "collection.publish",
        bid_deadline=today,
        reveal_deadline=today + 1,
        **base,
    )
    net.reject(
        "bid deadline",
        "bank-a",
        "collection.publish",
        bid_deadline=today - 1,
        reveal_deadline=today + 1,
        **base,
    )
    net.reject(
        "bid deadline",
        "bank-a",
        "collection.publish",
        bid_deadline=today + 1,
        reveal_deadline=today + 1,
        **base,
    )
    net.reject(
        "contact_commitment must be 32 to 32 bytes",
        "bank-a",
        "collection.publish",
        bid_deadline=today,
        reveal_deadline=today + 1,
        loan=loan,
        contact_commitment=b"contact",
    )
    net.run("bank-a", "collection.publish", bid_deadline=today, reveal_deadline=today + 1, **base)
    net.reject(
        "needs an OVERDUE loan",
        "bank-a",
        "collection.publish",
        bid_deadline=today,
        reveal_deadline=today + 1,
        **base,
    )


def test_an_assigned_agency_stays_the_only_one(net: Network) -> None:
    loan = overdue_loan(net)
    task = assigned_task(net, loan, "agency-2", 800)
    net.reject("not BIDDING", "bank-a", "collection.assign", task=task)
    net.reject("takes no bids", "agency", "collection.bid", task=task, commitment=b"c" * 32)
    net.reject(
        "not assigned to agency-3", "agency-3", "collection.report_recovery", task=task, amount=1
    )
    net.reject("action must be a text", "agency-2", "collection.log_action", task=task, action="")
    assert net.run("agency-2", "collection.log_action", task=task, action="letter") == {"action": 1}
    assert net.run("agency-2", "collection.log_action", task=task, action="call") == {"action": 2}
    assert net.get(f"action/{task}/000002")["action"] == "call"
    assert net.get("task/" + task)["agency"] == "agency-2"
    net.reject(
        "too short to be a sealed box",
        "bank-a",
        "collection.grant_data",
        task=task,
        ciphertexts={"agency-2": b"x" * 48, "regulator": b"y" * 60},
    )


def test_pricing_model_tiers_and_size_adjustments() -> None:
    assert [overdue_tier(d) for d in (1, 30, 31, 60, 61, 90, 91, 1000)] == [
        "1-30",
        "1-30",
        "31-60",
        "31-60",
        "61-90",
        "61-90",
        ">90",
        ">90",
    ]
    assert commission_ceiling_bp(500_000, 10) == 1000
    assert commission_ceiling_bp(500_000, 45) == 1500
    assert commission_ceiling_bp(500_000, 75) == 2000
    assert commission_ceiling_bp(500_000, 120) == 3000
    assert commission_ceiling_bp(99_999, 10) == 1500
    assert commission_ceiling_bp(100_000, 10) == 1000
    assert commission_ceiling_bp(10_000_000, 120) == 2700
    assert commission(333, 10_000) == 333
    assert commission(1, 9_999) == 0
    assert commission(10_000, 7) == 7


def test_audit_shows_exposure_and_overdue_tiers(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 1_000, 100)
    net.run("supplier-a", "receivable.pledge", receivable=rcv, bank="bank-a")
    net.run(
        "bank-a",
        "loan.lend",
        borrower="supplier-a",
        principal=900,
        amount_due=1_200,
        due_day=100,
        receivable=rcv,
    )
    net.plain_loan("bank-b", "supplier-b", 500, 600, 10)
    net.plain_loan("bank-b", "supplier-c", 50, 60, 70)
    net.advance_to(75)
    report = audit_report(net.state)
    assert report["exposure"] == {
        "bank-a": {"loans": 1, "outstanding": 1_200, "secured": 1_000, "unsecured": 200},
        "bank-b": {"loans": 2, "outstanding": 660, "secured": 0, "unsecured": 660},
    }
    assert report["overdue"] == {
        "1-30": {"count": 1, "outstanding": 60},
        "31-60": {"count": 0, "outstanding": 0},
        "61-90": {"count": 1, "outstanding": 600},
        ">90": {"count": 0, "outstanding": 0},
    }
    assert report["loans"]["by_state"] == {
        "ACTIVE": {"count": 3, "principal": 1_450, "outstanding": 1_860}
    }
    assert report["receivables"]["by_state"] == {"PLEDGED": {"count": 1, "amount": 1_000}}
    assert report["open"] == {
        "receivables": 1,
        "loans": 3,
        "tasks": 0,
        "receipts": 0,
        "tranche_lines": 0,
        "pools": 0,
    }
    assert report["problems"] == []
    from consortium import codec

    codec.encode(report)


def test_audit_notices_a_ledger_that_does_not_add_up(net: Network) -> None:
    net.confirmed("supplier-a", 1_000, 100)
    net.state.apply({"credit/core": {"limit": 20_000_000, "used": 7}})
    assert audit_report(net.state)["problems"] == [
        "credit used by core is 7, open confirmed is 1000"
    ]


# Any input from the network -----------------------------------------------------------------

codec_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=12)
    | st.binary(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SENDERS = [
    "regulator",
    "bank-a",
    "core",
    "agency",
    "supplier-a",
    "supplier-b",
    "warehouse-1",
    "stranger",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    op=st.sampled_from(sorted(contracts.OPERATIONS)),
    sender=st.sampled_from(SENDERS),
    data=st.data(),
)
def test_execute_raises_only_rule_violations_for_any_arguments(
    op: str, sender: str, data: st.DataObject
) -> None:
    net = _FUZZ_NET
    names = sorted(contracts.PARAMETERS[op])
    args = {name: data.draw(codec_values, label=name) for name in names}
    if data.draw(st.booleans(), label="mangle the key set"):
        args = data.draw(st.dictionaries(st.text(max_size=8), codec_values, max_size=4))
    view = Overlay(net.state)
    try:
        result = execute(view, TxContext(sender, b"\x07" * 32, 3, 0), op, args)
    except RuleViolation as violation:
        assert violation.reason
    else:
        from consortium import codec

        codec.encode(result)
        codec.encode(dict(view.writes))


def _fuzz_network() -> Network:
    """A state with one object of every kind, so fuzzed ids can hit real records."""
    net = Network()
    rcv = net.confirmed("supplier-a", 1_000, 500)
    net.run("supplier-a", "receivable.pledge", receivable=rcv, bank="bank-a")
    assigned_task(net, overdue_loan(net))
    receipt_loan(net, due_day=200)
    issued_receipt(net, lot="lot-2")
    open_line(net, borrower="supplier-b", amounts=(1_000, 2_000), due_days=(5, 5))
    return net


_FUZZ_NET = _fuzz_network()
