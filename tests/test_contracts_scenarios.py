"""DOMAIN.md's demo scenarios, step by step, against the real state with real keys; and the
shipped scenario files run against the contracts without a network."""

from __future__ import annotations

from typing import Any

import pytest

from consortium import contracts
from consortium.contracts import audit_report, bid_commitment, commission_ceiling_bp
from consortium.crypto import KeyPair, seal, sha256
from consortium.errors import SignatureError
from consortium.scenarios.changes import record_key
from consortium.scenarios.expressions import Values, lookup
from consortium.scenarios.loader import builtin_scenarios
from consortium.scenarios.model import CheckStep, LetStep, Scenario, TogetherStep, TxStep
from tests.contracts_helpers import (
    GENESIS_TOTAL,
    SALTS,
    Network,
    assigned_task,
    overdue_loan,
    published_task,
    recomputed_root,
    sealed_bid,
)


@pytest.fixture
def net() -> Network:
    return Network()


def split_pledged(net: Network) -> tuple[str, str, str]:
    """Scenario 1's first steps: 1,000,000 confirmed, split 600,000 (A) / 400,000 (B), A's part
    pledged to bank-a."""
    parent = net.confirmed("supplier-a", 1_000_000, 90)
    parts = (("supplier-a", 600_000), ("supplier-b", 400_000))
    child_a, child_b = net.run("supplier-a", "receivable.split", receivable=parent, parts=parts)[
        "children"
    ]
    net.run("supplier-a", "receivable.pledge", receivable=child_a, bank="bank-a")
    return parent, child_a, child_b


# Scenario 1 ---------------------------------------------------------------------------------


def test_scenario_1_happy_path_multi_tier(net: Network) -> None:
    parent, child_a, child_b = split_pledged(net)
    assert net.get("rcv/" + parent)["state"] == "CONSUMED"
    a, b = net.get("rcv/" + child_a), net.get("rcv/" + child_b)
    assert (a["holder"], a["amount"], a["state"]) == ("supplier-a", 600_000, "PLEDGED")
    assert (b["holder"], b["amount"], b["state"]) == ("supplier-b", 400_000, "CONFIRMED")
    assert a["debtor"] == b["debtor"] == "core" and a["due_day"] == b["due_day"] == 90

    loan_id = net.run(
        "bank-a",
        "loan.lend",
        borrower="supplier-a",
        principal=570_000,
        amount_due=600_000,
        due_day=90,
        receivable=child_a,
    )["loan"]
    assert net.balance("supplier-a") == 1_000_000 + 570_000
    assert net.balance("bank-a") == 100_000_000 - 570_000

    net.reject("matures on day 90", "core", "receivable.settle", receivable=child_a)
    net.advance_to(90)
    assert net.run("core", "receivable.settle", receivable=child_a) == {
        "to_pledgee": 600_000,
        "to_holder": 0,
    }
    assert net.run("core", "receivable.settle", receivable=child_b) == {
        "to_pledgee": 0,
        "to_holder": 400_000,
    }
    assert net.balance("bank-a") == 100_000_000 + 30_000
    assert net.balance("supplier-b") == 1_000_000 + 400_000
    assert net.balance("core") == 50_000_000 - 1_000_000
    assert net.get("loan/" + loan_id)["state"] == "REPAID"
    assert net.get("rcv/" + child_a)["state"] == "SETTLED"
    assert net.get("credit/core")["used"] == 0

    report = audit_report(net.state)
    assert report["open"] == {
        "receivables": 0,
        "loans": 0,
        "tasks": 0,
        "receipts": 0,
        "tranche_lines": 0,
        "pools": 0,
    }
    assert report["receivables"]["open_pledges"] == []
    assert report["exposure"] == {}
    assert report["problems"] == []
    assert report["total_money"] == GENESIS_TOTAL


# Scenario 2 ---------------------------------------------------------------------------------


def test_scenario_2_double_financing_is_rejected_and_recorded(net: Network) -> None:
    parent, child_a, _ = split_pledged(net)
    net.reject(
        "PLEDGED, not CONFIRMED",
        "supplier-a",
        "receivable.pledge",
        receivable=child_a,
        bank="bank-b",
    )
    net.reject(
        "PLEDGED, not CONFIRMED",
        "supplier-a",
        "receivable.transfer",
        receivable=child_a,
        to="supplier-c",
    )
    net.reject(
        "CONSUMED, not CONFIRMED",
        "supplier-a",
        "receivable.split",
        receivable=parent,
        parts=(("supplier-a", 500_000), ("supplier-c", 500_000)),
    )
    net.reject(
        "not pledged to bank-b",
        "bank-b",
        "loan.lend",
        borrower="supplier-a",
        principal=100_000,
        amount_due=100_000,
        due_day=90,
        receivable=child_a,
    )

    attempts = [r for _, op, r in net.receipts if not r.ok]
    assert len(attempts) == 4
    assert all(r.reason for r in attempts)
    assert audit_report(net.state)["receivables"]["open_pledges"] == [
        {
            "receivable": child_a,
            "bank": "bank-a",
            "holder": "supplier-a",
            "amount": 600_000,
            "loan": None,
        }
    ]


def test_scenario_2_two_pledges_in_one_block_first_wins(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 300_000, 60)
    first, second = net.block(
        [
            ("supplier-a", "receivable.pledge", {"receivable": rcv, "bank": "bank-b"}),
            ("supplier-a", "receivable.pledge", {"receivable": rcv, "bank": "bank-a"}),
        ]
    )
    assert first.ok and not second.ok
    assert "PLEDGED" in second.reason
    assert net.get("rcv/" + rcv)["pledgee"] == "bank-b"


def test_a_pledge_backs_one_loan_of_at_most_its_face_value(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 300_000, 60)
    net.run("supplier-a", "receivable.pledge", receivable=rcv, bank="bank-a")
    loan = dict(borrower="supplier-a", amount_due=320_000, due_day=60, receivable=rcv)
    net.reject("exceeds the face value", "bank-a", "loan.lend", principal=300_001, **loan)
    net.reject(
        "held by supplier-a",
        "bank-a",
        "loan.lend",
        principal=100,
        **{**loan, "borrower": "supplier-b"},
    )
    net.run("bank-a", "loan.lend", principal=300_000, **loan)
    net.reject("already backs loan", "bank-a", "loan.lend", principal=1, **loan)


# Scenario 3 ---------------------------------------------------------------------------------


def test_scenario_3_forged_confirmations_are_rejected(net: Network) -> None:
    rcv = net.run("supplier-a", "receivable.draft", debtor="core", amount=1_000_000, due_day=90)[
        "receivable"
    ]
    terms = dict(receivable=rcv, amount=1_000_000, due_day=90)
    own = net.confirmation(rcv, "supplier-a")
    for sender in ("supplier-a", "core"):
        net.reject(
            "not signed by the current key of core",
            sender,
            "receivable.confirm",
            confirmation=own,
            **terms,
        )

    old_core_key = net.keys["core"]
    old_signature = net.confirmation(rcv, "core")
    new_core_key = KeyPair(sha256(b"core's second key"))
    net.run("core", "member.rotate_key", member="core", public_key=new_core_key.public_key)
    net.keys["core"] = new_core_key
    assert contracts.member_public_key(net.state, "core") == new_core_key.public_key
    net.reject(
        "not signed by the current key",
        "core",
        "receivable.confirm",
        confirmation=old_signature,
        **terms,
    )

    inflated = new_core_key.sign(contracts.confirmation_statement(rcv, "core", 2_000_000, 90))
    net.reject(
        "differ from the draft",
        "core",
        "receivable.confirm",
        receivable=rcv,
        amount=2_000_000,
        due_day=90,
        confirmation=inflated,
    )
    net.reject(
        "not signed by the current key",
        "core",
        "receivable.confirm",
        confirmation=inflated,
        **terms,
    )
    later = new_core_key.sign(contracts.confirmation_statement(rcv, "core", 1_000_000, 91))
    net.reject(
        "not signed by the current key", "core", "receivable.confirm", confirmation=later, **terms
    )

    good = net.confirmation(rcv, "core")
    net.reject(
        "neither the debtor nor the holder",
        "bank-a",
        "receivable.confirm",
        confirmation=good,
        **terms,
    )
    net.reject("not CONFIRMED", "supplier-a", "receivable.pledge", receivable=rcv, bank="bank-a")
    net.run("supplier-a", "receivable.confirm", confirmation=good, **terms)
    assert net.get("rcv/" + rcv)["state"] == "CONFIRMED"
    net.reject("DRAFTED", "core", "receivable.confirm", confirmation=good, **terms)
    assert old_core_key.public_key != new_core_key.public_key


def test_a_revoked_key_can_never_come_back(net: Network) -> None:
    old = net.keys["core"].public_key
    net.run(
        "regulator",
        "member.rotate_key",
        member="core",
        public_key=KeyPair(sha256(b"k2")).public_key,
    )
    net.reject("cannot be reused", "core", "member.rotate_key", member="core", public_key=old)
    net.reject(
        "cannot be reused",
        "regulator",
        "member.register",
        member="core-3",
        role="core_enterprise",
        public_key=old,
    )
    net.reject(
        "cannot be reused",
        "regulator",
        "member.register",
        member="core-3",
        role="core_enterprise",
        public_key=net.keys["bank-a"].public_key,
    )
    assert audit_report(net.state)["revoked_keys"] == {"core": 1}


def test_confirmation_is_capped_by_the_credit_line(net: Network) -> None:
    net.confirmed("supplier-a", 2_500_000, 30, debtor="core-2")
    rcv = net.run("supplier-b", "receivable.draft", debtor="core-2", amount=500_001, due_day=30)[
        "receivable"
    ]
    net.reject(
        "credit line of core-2 exceeded",
        "core-2",
        "receivable.confirm",
        receivable=rcv,
        amount=500_001,
        due_day=30,
        confirmation=net.confirmation(rcv, "core-2", "core-2"),
    )
    net.run("regulator", "credit.set_line", member="core-2", limit=3_000_001)
    net.run(
        "core-2",
        "receivable.confirm",
        receivable=rcv,
        amount=500_001,
        due_day=30,
        confirmation=net.confirmation(rcv, "core-2", "core-2"),
    )
    assert net.get("credit/core-2") == {"limit": 3_000_001, "used": 3_000_001}


# Scenario 4 ---------------------------------------------------------------------------------


def test_scenario_4_default_to_collection(net: Network) -> None:
    loan = overdue_loan(net)
    assert net.get("loan/" + loan)["state"] == "OVERDUE"
    assert audit_report(net.state)["overdue"]["31-60"] == {"count": 1, "outstanding": 550_000}
    contact = b"supplier-c: +86 10 5555 0100"
    result = net.run(
        "bank-a",
        "collection.publish",
        loan=loan,
        bid_deadline=63,
        reveal_deadline=65,
        contact_commitment=contracts.contact_commitment(contact),
    )
    task = result["task"]
    assert result["ceiling_bp"] == commission_ceiling_bp(550_000, 31) == 1500
    assert net.get("loan/" + loan)["state"] == "COLLECTION"
    net.reject(
        "needs an OVERDUE loan",
        "bank-a",
        "collection.publish",
        loan=loan,
        bid_deadline=63,
        reveal_deadline=65,
        contact_commitment=sha256(contact),
    )

    rates = {"agency": 1200, "agency-2": 900, "agency-3": 900}
    for agency, rate in rates.items():
        sealed_bid(net, task, agency, rate)
    net.reject("has bid on task", "agency", "collection.bid", task=task, commitment=b"x" * 32)
    net.reject("a collection_agency", "bank-b", "collection.bid", task=task, commitment=b"x" * 32)
    net.reject(
        "takes reveals after day 63",
        "agency",
        "collection.reveal",
        task=task,
        rate_bp=1200,
        salt=SALTS["agency"],
    )

    net.advance_to(64)
    net.reject(
        "takes no bids",
        "agency",
        "collection.bid",
        task=task,
        commitment=b"x" * 32,
    )
    net.reject(
        "do not match", "agency", "collection.reveal", task=task, rate_bp=1100, salt=SALTS["agency"]
    )
    for agency, rate in rates.items():
        net.run(agency, "collection.reveal", task=task, rate_bp=rate, salt=SALTS[agency])
    net.reject(
        "revealed its bid",
        "agency",
        "collection.reveal",
        task=task,
        rate_bp=1200,
        salt=SALTS["agency"],
    )
    net.reject("can be assigned after day 65", "agency-2", "collection.assign", task=task)
    assert net.run("bank-a", "collection.assign", task=task) == {
        "agency": "agency-2",
        "rate_bp": 900,
    }
    net.reject("not BIDDING", "regulator", "collection.assign", task=task)

    regulator_key = net.keys["regulator"]
    winner_key = net.keys["agency-2"]
    boxes = {
        "agency-2": seal(winner_key.public_key, contact),
        "regulator": seal(regulator_key.public_key, contact),
    }
    wrong = {
        "agency": seal(net.keys["agency"].public_key, contact),
        "regulator": boxes["regulator"],
    }
    net.reject(
        "recipients must be exactly agency-2, regulator",
        "bank-a",
        "collection.grant_data",
        task=task,
        ciphertexts=wrong,
    )
    net.reject(
        "recipients must be exactly",
        "bank-a",
        "collection.grant_data",
        task=task,
        ciphertexts={**boxes, "agency": wrong["agency"]},
    )
    net.reject("belongs to bank-a", "bank-b", "collection.grant_data", task=task, ciphertexts=boxes)
    net.run("bank-a", "collection.grant_data", task=task, ciphertexts=boxes)
    stored = net.get("grant/" + task)
    assert winner_key.open_sealed(stored["agency-2"]) == contact
    assert regulator_key.open_sealed(stored["regulator"]) == contact
    assert sha256(contact) == net.get("task/" + task)["contact_commitment"]
    for box in stored.values():
        with pytest.raises(SignatureError):
            net.keys["agency"].open_sealed(box)
    net.reject("granted already", "bank-a", "collection.grant_data", task=task, ciphertexts=boxes)

    net.reject(
        "not assigned to agency",
        "agency",
        "collection.log_action",
        task=task,
        action="called the debtor",
    )
    net.run("agency-2", "collection.log_action", task=task, action="called the debtor")
    before = (net.balance("supplier-c"), net.balance("bank-a"))
    net.run("agency-2", "collection.report_recovery", task=task, amount=200_000)
    assert (net.balance("supplier-c"), net.balance("bank-a")) == (
        before[0] - 200_000,
        before[1] + 200_000,
    )
    assert net.get("loan/" + loan)["recovered"] == 200_000
    assert net.run("bank-a", "collection.settle", task=task) == {"commission": 18_000}
    assert net.balance("agency-2") == 18_000
    net.reject("nothing to settle", "bank-a", "collection.settle", task=task)
    net.reject("not ASSIGNED", "agency-2", "collection.log_action", task=task, action="again")
    assert net.get("loan/" + loan)["state"] == "OVERDUE"
    report = audit_report(net.state)
    assert report["collection"]["commissions_paid"] == {"agency-2": 18_000}
    assert report["total_money"] == GENESIS_TOTAL and report["problems"] == []
    net.run("bank-a", "loan.write_off", loan=loan)
    assert net.get("loan/" + loan)["state"] == "WRITTEN_OFF"


def test_full_recovery_completes_the_task_and_commission_rounds_down(net: Network) -> None:
    loan = overdue_loan(net, days_overdue=95)
    task = assigned_task(net, loan, "agency-3", rate_bp=333)
    net.run("agency-3", "collection.report_recovery", task=task, amount=549_999)
    net.reject(
        "exceeds the 1 outstanding", "agency-3", "collection.report_recovery", task=task, amount=2
    )
    net.run("agency-3", "collection.report_recovery", task=task, amount=1)
    assert net.get("loan/" + loan)["state"] == "RECOVERED"
    assert net.get("task/" + task)["state"] == "COMPLETED"
    net.reject("not ASSIGNED", "agency-3", "collection.log_action", task=task, action="x")
    assert net.run("bank-a", "collection.settle", task=task) == {
        "commission": 333 * 550_000 // 10_000
    }


def test_a_task_nobody_reveals_for_ends_unassigned(net: Network) -> None:
    loan = overdue_loan(net)
    task = published_task(net, loan)
    sealed_bid(net, task, "agency", 700)
    net.reject("can be assigned after day", "bank-a", "collection.assign", task=task)
    net.advance_to(contracts.business_day(net.state) + 5)
    assert net.run("supplier-b", "collection.assign", task=task) == {"agency": None}
    assert net.get("task/" + task)["state"] == "UNASSIGNED"
    assert net.get("loan/" + loan)["state"] == "OVERDUE"
    assert published_task(net, loan) != task


def test_a_rate_above_the_ceiling_is_not_revealed(net: Network) -> None:
    loan = overdue_loan(net, days_overdue=5)
    task = published_task(net, loan)
    ceiling = net.get("task/" + task)["ceiling_bp"]
    sealed_bid(net, task, "agency", ceiling + 1)
    net.advance_to(contracts.business_day(net.state) + 3)
    net.reject(
        "exceeds the ceiling",
        "agency",
        "collection.reveal",
        task=task,
        rate_bp=ceiling + 1,
        salt=SALTS["agency"],
    )


# Scenario 5 ---------------------------------------------------------------------------------


def test_scenario_5_repayment_stops_collection(net: Network) -> None:
    loan = overdue_loan(net)
    task = assigned_task(net, loan, "agency", rate_bp=1000)
    net.run("agency", "collection.report_recovery", task=task, amount=100_000)
    net.run("supplier-c", "loan.repay", loan=loan, amount=50_000)
    assert net.get("task/" + task)["state"] == "STOPPED"
    assert net.get("loan/" + loan)["state"] == "OVERDUE"
    assert net.get("loan/" + loan)["repaid"] == 150_000
    net.reject(
        "STOPPED, not ASSIGNED", "agency", "collection.log_action", task=task, action="called again"
    )
    net.reject(
        "STOPPED, not ASSIGNED", "agency", "collection.report_recovery", task=task, amount=10
    )
    assert net.run("bank-a", "collection.settle", task=task) == {"commission": 10_000}
    net.reject("nothing to settle", "bank-a", "collection.settle", task=task)


def test_a_recorded_repayment_stops_collection_without_moving_money(net: Network) -> None:
    loan = overdue_loan(net)
    task = assigned_task(net, loan)
    balances = (net.balance("supplier-c"), net.balance("bank-a"))
    net.run("bank-a", "loan.record_repayment", loan=loan, amount=550_000)
    assert (net.balance("supplier-c"), net.balance("bank-a")) == balances
    assert net.get("loan/" + loan)["state"] == "REPAID"
    assert net.get("task/" + task)["state"] == "STOPPED"
    net.reject("not ASSIGNED", "agency", "collection.log_action", task=task, action="visit")
    assert net.run("bank-a", "collection.settle", task=task) == {"commission": 0}


def test_a_repayment_during_bidding_stops_the_task(net: Network) -> None:
    loan = overdue_loan(net)
    task = published_task(net, loan)
    sealed_bid(net, task, "agency", 700)
    net.run("supplier-c", "loan.repay", loan=loan, amount=1)
    assert net.get("task/" + task)["state"] == "STOPPED"
    net.reject("never assigned", "bank-a", "collection.settle", task=task)
    net.reject("takes no bids", "agency-2", "collection.bid", task=task, commitment=b"y" * 32)


def test_scenario_5_freeze_blocks_every_action_until_unfreeze(net: Network) -> None:
    loan = overdue_loan(net)
    task = published_task(net, loan)
    net.run("regulator", "member.freeze", member="agency-3")
    commitment = bid_commitment(task, "agency-3", 800, SALTS["agency-3"])
    before = recomputed_root(net.state)
    net.reject("agency-3 is frozen", "agency-3", "collection.bid", task=task, commitment=commitment)
    net.reject(
        "agency-3 is frozen",
        "agency-3",
        "member.rotate_key",
        member="agency-3",
        public_key=KeyPair(sha256(b"x")).public_key,
    )
    assert recomputed_root(net.state) == before
    assert audit_report(net.state)["frozen"] == ["agency-3"]
    net.reject("already frozen", "regulator", "member.freeze", member="agency-3")
    net.reject("regulator cannot be frozen", "regulator", "member.freeze", member="regulator")
    net.reject("only a regulator", "bank-a", "member.unfreeze", member="agency-3")
    net.run("regulator", "member.unfreeze", member="agency-3")
    net.run("agency-3", "collection.bid", task=task, commitment=commitment)
    net.reject("not frozen", "regulator", "member.unfreeze", member="agency-3")
    assert audit_report(net.state)["frozen"] == []


# The shipped YAML scenarios, run in order on one chain against the contracts alone --------------


class _InProcess:
    """Runs scenario files as the live runner does, minus the network: each transaction is a
    block of its own (a `together` step one block), values resolve between steps, and every
    expectation and check is judged the same way."""

    def __init__(self, net: Network) -> None:
        self.net = net

    def helper(self, name: str, fields: dict[str, Any]) -> Any:
        def signer(value: Any) -> KeyPair:
            return value if isinstance(value, KeyPair) else self.net.keys[value]

        if name == "confirmation":
            statement = contracts.confirmation_statement(
                fields["receivable"], fields["debtor"], fields["amount"], fields["due_day"]
            )
            return signer(fields["signed_by"]).sign(statement)
        if name == "bid_commitment":
            return bid_commitment(
                fields["task"], fields["agency"], fields["rate_bp"], fields["salt"]
            )
        if name in ("contact_commitment", "data_commitment"):
            return contracts.contact_commitment(fields["data"].encode())
        if name == "unit_consent":
            terms = [fields[k] for k in ("pool", "trade", "tranche", "seller", "buyer")]
            statement = contracts.transfer_statement(*terms, fields["units"], fields["price"])
            return signer(fields["signed_by"]).sign(statement)
        if name == "sealed":
            data = fields["data"].encode()
            return {m: seal(self.net.keys[m].public_key, data) for m in sorted(fields["to"])}
        if name == "salt":
            self.net.tx_counter += 1
            return sha256(b"salt %d" % self.net.tx_counter)[:16]
        assert name == "keypair"
        self.net.tx_counter += 1
        return KeyPair(sha256(b"keypair %d" % self.net.tx_counter))

    def run(self, scenario: Scenario) -> None:
        values = Values("a1b2c3", contracts.business_day(self.net.state), self.helper)
        start_balances = {k[4:]: self.net.get(k) for k in self.net.state.keys_with_prefix("bal/")}
        start_open = audit_report(self.net.state)["open"]
        for step in scenario.steps:
            if isinstance(step, LetStep):
                for name, value in step.bindings.items():
                    values.variables[name] = values.resolve(value, step.where)
            elif isinstance(step, TxStep | TogetherStep):
                steps = [step] if isinstance(step, TxStep) else list(step.steps)
                txs = [
                    (values.resolve(s.actor, s.where), s.op, values.resolve(s.args, s.where))
                    for s in steps
                ]
                for s, receipt in zip(steps, self.net.block(txs), strict=True):
                    where = f"{scenario.name}: {s.name}"
                    assert s.expect.met_by(receipt.ok, receipt.reason), (where, receipt.reason)
                    values.today = contracts.business_day(self.net.state)
                    for name, wanted in values.resolve(s.result, s.where).items():
                        got = (receipt.result or {}).get(name)
                        assert (list(got) if isinstance(got, tuple) else got) == wanted, (
                            where,
                            name,
                            got,
                        )
                    for name, path in s.save.items():
                        values.variables[name] = lookup(receipt.result, path, where)
            else:
                self.check(step, values.resolve(step.spec, step.where), start_balances, start_open)

    def check(
        self, step: CheckStep, spec: dict[str, Any], balances: dict[str, int], start_open: Any
    ) -> None:
        if step.kind == "records":
            for wanted in spec["records"]:
                record = self.net.get(record_key(wanted["id"]) or "")
                assert record is not None, (step.name, wanted["id"])
                shown = {k: list(v) if isinstance(v, tuple) else v for k, v in record.items()}
                assert {k: shown.get(k) for k in wanted if k != "id"} == {
                    k: v for k, v in wanted.items() if k != "id"
                }, step.name
        elif step.kind == "balances":
            for member, change in spec["changes"].items():
                assert self.net.balance(member) - balances.get(member, 0) == change, step.name
        elif step.kind == "audit":
            report = audit_report(self.net.state)
            assert report["problems"] == [], step.name
            if spec.get("open_unchanged"):
                assert report["open"] == start_open, step.name
        elif step.kind == "pool_data":
            prefix = f"grant/{spec['pool']}/"
            boxes = [
                b for k in self.net.state.keys_with_prefix(prefix) for b in self.net.get(k).values()
            ]
            for member, verdict in spec["readers"].items():
                opened = []
                for box in boxes:
                    try:
                        opened.append(self.net.keys[member].open_sealed(box))
                    except SignatureError:
                        continue
                assert bool(opened) == (verdict == "readable"), (step.name, member)
                assert all(plain == spec["data"].encode() for plain in opened), step.name


def test_the_shipped_scenario_files_hold_against_the_contracts() -> None:
    net = Network()
    runner = _InProcess(net)
    scenarios = builtin_scenarios()
    assert {"warehouse-receipt-loan", "tranche-credit-line", "securitisation"} <= {
        s.name for s in scenarios
    }
    for scenario in scenarios:
        runner.run(scenario)
    report = audit_report(net.state)
    assert report["warehouse_receipts"]["liquidated"][0]["liquidated"] == 500
    (line,) = report["tranche_lines"]
    assert [t["state"] for t in line["tranches"]] == ["RELEASED", "RELEASED", "REFUSED"]
    assert line["state"] == "BLOCKED" and report["problems"] == []
    (pool,) = report["pools"]
    senior, junior = pool["tranches"]
    assert (pool["state"], pool["distributions"], pool["losses"]) == ("ISSUED", 2, 250_000)
    assert (senior["losses"], junior["losses"]) == (0, 250_000 - 159_825)
    assert senior["holders"] == {"investor-1": 600, "investor-2": 200, "investor-3": 400}
    assert pool["last_report"]["tranches"][1]["absorbed"] == 250_000
