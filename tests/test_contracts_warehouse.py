"""Warehouse receipts, one rule at a time: issuing, amending with the owner's consent, the one
pledge, lending, releases that follow repayments, outbound within releases, liquidation."""

from __future__ import annotations

import pytest

from consortium.contracts import amendment_statement, audit_report, credit_report
from consortium.crypto import KeyPair, sha256
from tests.contracts_helpers import (
    GENESIS_TOTAL,
    Network,
    consent,
    inspection_hash,
    issued_receipt,
    published_task,
    receipt_loan,
    seeded_key,
)


@pytest.fixture
def net() -> Network:
    return Network()


def receipt(net: Network, receipt_id: str) -> dict:
    return net.get("whr/" + receipt_id)


def issue_args(**changes: object) -> dict[str, object]:
    return {
        "owner": "supplier-a",
        "lot": "lot-9",
        "commodity": "soybeans",
        "quantity": 500,
        "grade": "No. 2",
        "inspection": inspection_hash("lot-9"),
    } | changes


# Issuing -----------------------------------------------------------------------------------


def test_a_warehouse_issues_a_receipt_to_the_goods_owner(net: Network) -> None:
    receipt_id = net.run("warehouse-1", "warehouse.issue", **issue_args())["receipt"]
    assert receipt(net, receipt_id) == {
        "id": receipt_id,
        "warehouse": "warehouse-1",
        "owner": "supplier-a",
        "lot": "lot-9",
        "commodity": "soybeans",
        "quantity": 500,
        "grade": "No. 2",
        "inspection": inspection_hash("lot-9"),
        "version": 0,
        "state": "ISSUED",
        "pledgee": None,
        "loan": None,
        "released": 0,
        "shipped": 0,
        "liquidated": 0,
        "proceeds": None,
    }
    assert net.get("lot/warehouse-1/lot-9") == receipt_id
    assert net.get("inspection/" + inspection_hash("lot-9").hex()) == receipt_id


@pytest.mark.parametrize(
    ("sender", "changes", "reason"),
    [
        ("supplier-a", {}, "only a warehouse may do this"),
        ("bank-a", {}, "only a warehouse may do this"),
        ("warehouse-1", {"owner": "bank-a"}, "owner bank-a is not a supplier"),
        ("warehouse-1", {"owner": "nobody"}, "owner nobody is not a supplier"),
        ("warehouse-1", {"quantity": 0}, "quantity must be an integer from 1"),
        ("warehouse-1", {"quantity": 2.5}, "quantity must be an integer"),
        ("warehouse-1", {"inspection": b"short"}, "inspection must be 32 to 32 bytes"),
        ("warehouse-1", {"commodity": ""}, "commodity must be a text"),
        ("warehouse-1", {"lot": "Lot 9"}, "lot must be an object id"),
    ],
)
def test_issuing_rules(net: Network, sender: str, changes: dict, reason: str) -> None:
    net.reject(reason, sender, "warehouse.issue", **issue_args(**changes))


def test_a_lot_or_its_inspection_documents_get_one_receipt_ever(net: Network) -> None:
    net.run("warehouse-1", "warehouse.issue", **issue_args())
    net.reject(
        "lot lot-9 of warehouse-1 has receipt",
        "warehouse-1",
        "warehouse.issue",
        **issue_args(inspection=inspection_hash("other papers")),
    )
    net.reject(
        "back a receipt already", "warehouse-1", "warehouse.issue", **issue_args(lot="lot-10")
    )
    # another warehouse may use the same lot number, never the same documents
    net.run(
        "regulator",
        "member.register",
        member="warehouse-2",
        role="warehouse",
        public_key=seeded_key("warehouse-2").public_key,
    )
    net.reject("back a receipt already", "warehouse-2", "warehouse.issue", **issue_args())
    net.run("warehouse-2", "warehouse.issue", **issue_args(inspection=inspection_hash("w2")))


def test_a_frozen_owner_or_warehouse_gets_no_receipt(net: Network) -> None:
    net.run("regulator", "member.freeze", member="supplier-a")
    net.reject("owner supplier-a is frozen", "warehouse-1", "warehouse.issue", **issue_args())
    net.run("regulator", "member.unfreeze", member="supplier-a")
    net.run("regulator", "member.freeze", member="warehouse-1")
    net.reject("warehouse-1 is frozen", "warehouse-1", "warehouse.issue", **issue_args())
    net.run("regulator", "member.unfreeze", member="warehouse-1")
    net.run("warehouse-1", "warehouse.issue", **issue_args())


# Amending -----------------------------------------------------------------------------------


def test_the_warehouse_amends_a_receipt_with_the_owners_consent(net: Network) -> None:
    receipt_id = issued_receipt(net)
    terms, signature = consent(net, receipt_id, "supplier-a", quantity=990, grade="B")
    result = net.run(
        "warehouse-1", "warehouse.amend", receipt=receipt_id, consent=signature, **terms
    )
    assert result == {"version": 1}
    amended = receipt(net, receipt_id)
    assert (amended["quantity"], amended["grade"], amended["version"]) == (990, "B", 1)
    # the same consent does not amend twice: it names version 0
    net.reject(
        "consent is not signed",
        "warehouse-1",
        "warehouse.amend",
        receipt=receipt_id,
        consent=signature,
        **terms,
    )


def test_an_amendment_without_the_owners_current_consent_is_refused(net: Network) -> None:
    receipt_id = issued_receipt(net)
    terms, by_warehouse = consent(net, receipt_id, "warehouse-1", quantity=5_000)
    net.reject(
        "consent is not signed by the current key of supplier-a",
        "warehouse-1",
        "warehouse.amend",
        receipt=receipt_id,
        consent=by_warehouse,
        **terms,
    )
    _, for_other_terms = consent(net, receipt_id, "supplier-a", quantity=900)
    net.reject(
        "consent is not signed",
        "warehouse-1",
        "warehouse.amend",
        receipt=receipt_id,
        consent=for_other_terms,
        **terms,
    )
    old_key = net.keys["supplier-a"]
    terms, by_old_key = consent(net, receipt_id, old_key, quantity=5_000)
    new_key = seeded_key("supplier-a rotated")
    net.run("supplier-a", "member.rotate_key", member="supplier-a", public_key=new_key.public_key)
    net.keys["supplier-a"] = new_key
    net.reject(
        "consent is not signed",
        "warehouse-1",
        "warehouse.amend",
        receipt=receipt_id,
        consent=by_old_key,
        **terms,
    )
    terms, good = consent(net, receipt_id, "supplier-a", quantity=5_000)
    net.reject(
        "only a warehouse may do this",
        "supplier-a",
        "warehouse.amend",
        receipt=receipt_id,
        consent=good,
        **terms,
    )
    net.run("warehouse-1", "warehouse.amend", receipt=receipt_id, consent=good, **terms)


def test_an_amendment_cannot_reuse_inspection_documents_or_touch_a_pledged_receipt(
    net: Network,
) -> None:
    first = issued_receipt(net, lot="lot-1")
    second = issued_receipt(net, lot="lot-2")
    terms, signature = consent(
        net, second, "supplier-a", inspection=receipt(net, first)["inspection"]
    )
    net.reject(
        "back a receipt already",
        "warehouse-1",
        "warehouse.amend",
        receipt=second,
        consent=signature,
        **terms,
    )
    net.run("supplier-a", "warehouse.pledge", receipt=first, bank="bank-a")
    terms, signature = consent(net, first, "supplier-a", quantity=1)
    net.reject(
        "is PLEDGED, not ISSUED",
        "warehouse-1",
        "warehouse.amend",
        receipt=first,
        consent=signature,
        **terms,
    )


# Pledging and lending --------------------------------------------------------------------------


def test_a_receipt_is_pledged_once_ever(net: Network) -> None:
    receipt_id = issued_receipt(net)
    net.reject(
        "is owned by supplier-a, not supplier-b",
        "supplier-b",
        "warehouse.pledge",
        receipt=receipt_id,
        bank="bank-a",
    )
    net.reject(
        "pledgee core is not a bank",
        "supplier-a",
        "warehouse.pledge",
        receipt=receipt_id,
        bank="core",
    )
    first, second = net.block(
        [
            ("supplier-a", "warehouse.pledge", {"receipt": receipt_id, "bank": "bank-a"}),
            ("supplier-a", "warehouse.pledge", {"receipt": receipt_id, "bank": "bank-b"}),
        ]
    )
    assert first.ok and not second.ok and "is PLEDGED, not ISSUED" in second.reason
    assert receipt(net, receipt_id)["pledgee"] == "bank-a"
    net.run("bank-a", "warehouse.release", receipt=receipt_id, quantity=1_000)
    net.reject(
        "is RELEASED, not ISSUED",
        "supplier-a",
        "warehouse.pledge",
        receipt=receipt_id,
        bank="bank-b",
    )


def test_goods_released_by_their_owner_cannot_be_pledged_any_more(net: Network) -> None:
    receipt_id = issued_receipt(net)
    net.reject(
        "only supplier-a may release",
        "bank-a",
        "warehouse.release",
        receipt=receipt_id,
        quantity=10,
    )
    assert net.run("supplier-a", "warehouse.release", receipt=receipt_id, quantity=10) == {
        "released": 10,
        "releasable": 1_000,
        "state": "RELEASED",
    }
    net.reject(
        "is RELEASED, not ISSUED",
        "supplier-a",
        "warehouse.pledge",
        receipt=receipt_id,
        bank="bank-a",
    )


def test_the_pledgee_lends_against_the_receipt_once(net: Network) -> None:
    receipt_id = issued_receipt(net)
    args = {"receipt": receipt_id, "principal": 300_000, "amount_due": 320_000, "due_day": 60}
    net.reject("is not pledged to bank-a", "bank-a", "warehouse.lend", **args)
    net.run("supplier-a", "warehouse.pledge", receipt=receipt_id, bank="bank-a")
    net.reject("is not pledged to bank-b", "bank-b", "warehouse.lend", **args)
    net.reject("only a bank may do this", "supplier-a", "warehouse.lend", **args)
    net.reject(
        "is less than the principal", "bank-a", "warehouse.lend", **(args | {"amount_due": 1})
    )
    net.reject("is not after today", "bank-a", "warehouse.lend", **(args | {"due_day": 0}))
    loan_id = net.run("bank-a", "warehouse.lend", **args)["loan"]
    net.reject(f"already backs loan {loan_id}", "bank-a", "warehouse.lend", **args)
    loan = net.get("loan/" + loan_id)
    assert (loan["borrower"], loan["receipt"], loan["state"]) == (
        "supplier-a",
        receipt_id,
        "ACTIVE",
    )
    assert receipt(net, receipt_id)["loan"] == loan_id
    assert net.balance("supplier-a") == 1_300_000
    assert net.total_money() == GENESIS_TOTAL


# Releases follow repayments; goods leave within releases ---------------------------------------


def test_partial_repayments_release_their_share_of_the_goods(net: Network) -> None:
    receipt_id, loan_id = receipt_loan(net, quantity=1_000, amount_due=400_000)
    net.reject(
        "the repaid share allows 0", "bank-a", "warehouse.release", receipt=receipt_id, quantity=1
    )
    net.reject(
        "only bank-a may release", "supplier-a", "warehouse.release", receipt=receipt_id, quantity=1
    )
    net.reject(
        "only bank-a may release",
        "warehouse-1",
        "warehouse.release",
        receipt=receipt_id,
        quantity=1,
    )
    net.run("supplier-a", "loan.repay", loan=loan_id, amount=100_000)  # a quarter
    net.reject(
        "would release 251 of 1000 units; the repaid share allows 250",
        "bank-a",
        "warehouse.release",
        receipt=receipt_id,
        quantity=251,
    )
    assert net.run("bank-a", "warehouse.release", receipt=receipt_id, quantity=200) == {
        "released": 200,
        "releasable": 250,
        "state": "RELEASED",
    }
    net.run("bank-a", "warehouse.release", receipt=receipt_id, quantity=50)
    net.reject(
        "the repaid share allows 250", "bank-a", "warehouse.release", receipt=receipt_id, quantity=1
    )
    net.run("supplier-a", "loan.repay", loan=loan_id, amount=300_000)
    net.reject(
        "would release 1001 of 1000",
        "bank-a",
        "warehouse.release",
        receipt=receipt_id,
        quantity=751,
    )
    net.run("bank-a", "warehouse.release", receipt=receipt_id, quantity=750)
    assert receipt(net, receipt_id)["released"] == 1_000


def test_goods_leave_only_within_what_was_released(net: Network) -> None:
    receipt_id, loan_id = receipt_loan(net, quantity=1_000, amount_due=400_000)
    net.reject(
        "would exceed the 0 released",
        "warehouse-1",
        "warehouse.outbound",
        receipt=receipt_id,
        quantity=1,
    )
    net.run("supplier-a", "loan.repay", loan=loan_id, amount=200_000)
    net.run("bank-a", "warehouse.release", receipt=receipt_id, quantity=500)
    net.reject(
        "only a warehouse may do this",
        "bank-a",
        "warehouse.outbound",
        receipt=receipt_id,
        quantity=1,
    )
    net.reject(
        "would exceed the 500 released",
        "warehouse-1",
        "warehouse.outbound",
        receipt=receipt_id,
        quantity=501,
    )
    assert net.run("warehouse-1", "warehouse.outbound", receipt=receipt_id, quantity=300) == {
        "shipped": 300,
        "state": "RELEASED",
    }
    net.reject(
        "would exceed the 200 released and not yet shipped",
        "warehouse-1",
        "warehouse.outbound",
        receipt=receipt_id,
        quantity=201,
    )
    net.run("supplier-a", "loan.repay", loan=loan_id, amount=200_000)
    net.run("bank-a", "warehouse.release", receipt=receipt_id, quantity=500)
    assert net.run("warehouse-1", "warehouse.outbound", receipt=receipt_id, quantity=700) == {
        "shipped": 1_000,
        "state": "CLOSED",
    }
    net.reject("is CLOSED", "bank-a", "warehouse.release", receipt=receipt_id, quantity=1)
    assert audit_report(net.state)["warehouse_receipts"]["by_state"] == {
        "CLOSED": {"count": 1, "quantity": 1_000}
    }


def test_only_the_issuing_warehouse_lets_goods_out(net: Network) -> None:
    net.run(
        "regulator",
        "member.register",
        member="warehouse-2",
        role="warehouse",
        public_key=seeded_key("warehouse-2").public_key,
    )
    receipt_id = issued_receipt(net)
    net.run("supplier-a", "warehouse.release", receipt=receipt_id, quantity=1_000)
    net.reject(
        "was issued by warehouse-1",
        "warehouse-2",
        "warehouse.outbound",
        receipt=receipt_id,
        quantity=1,
    )
    net.run("warehouse-1", "warehouse.outbound", receipt=receipt_id, quantity=1_000)


def test_a_pledge_without_a_loan_may_be_released_whole(net: Network) -> None:
    receipt_id = issued_receipt(net)
    net.run("supplier-a", "warehouse.pledge", receipt=receipt_id, bank="bank-b")
    net.run("bank-b", "warehouse.release", receipt=receipt_id, quantity=1_000)
    net.reject(
        "is RELEASED, not PLEDGED",
        "bank-b",
        "warehouse.lend",
        receipt=receipt_id,
        principal=1,
        amount_due=1,
        due_day=50,
    )


# Default: liquidation ------------------------------------------------------------------------


def test_the_pledgee_liquidates_on_default_and_the_regulator_sees_it(net: Network) -> None:
    receipt_id, loan_id = receipt_loan(net, quantity=1_000, amount_due=400_000, due_day=60)
    net.run("supplier-a", "loan.repay", loan=loan_id, amount=100_000)
    net.run("bank-a", "warehouse.release", receipt=receipt_id, quantity=250)
    net.reject(
        "is ACTIVE, not in default", "bank-a", "warehouse.liquidate", receipt=receipt_id, proceeds=0
    )
    net.advance_to(61)
    net.run("bank-a", "loan.mark_overdue", loan=loan_id)
    net.reject(
        "is not pledged to bank-b", "bank-b", "warehouse.liquidate", receipt=receipt_id, proceeds=0
    )
    net.reject(
        "only a bank may do this",
        "supplier-a",
        "warehouse.liquidate",
        receipt=receipt_id,
        proceeds=0,
    )
    net.reject("are not released or liquidated", "bank-a", "loan.write_off", loan=loan_id)
    result = net.run("bank-a", "warehouse.liquidate", receipt=receipt_id, proceeds=200_000)
    assert result == {"liquidated": 750, "applied": 200_000, "surplus": 0, "loan_state": "OVERDUE"}
    liquidated = receipt(net, receipt_id)
    assert (liquidated["state"], liquidated["released"], liquidated["liquidated"]) == (
        "LIQUIDATED",
        1_000,
        750,
    )
    assert net.get("loan/" + loan_id)["repaid"] == 300_000
    net.reject(
        "has no pledged goods left", "bank-a", "warehouse.liquidate", receipt=receipt_id, proceeds=1
    )
    net.reject("is LIQUIDATED", "bank-a", "warehouse.release", receipt=receipt_id, quantity=1)
    # the owner's released goods and the bank's liquidated ones leave the warehouse
    net.run("warehouse-1", "warehouse.outbound", receipt=receipt_id, quantity=1_000)
    assert receipt(net, receipt_id)["state"] == "LIQUIDATED"
    net.run("bank-a", "loan.write_off", loan=loan_id)
    report = audit_report(net.state)
    assert report["warehouse_receipts"]["liquidated"] == [
        {
            "receipt": receipt_id,
            "bank": "bank-a",
            "owner": "supplier-a",
            "commodity": "copper cathode",
            "liquidated": 750,
            "proceeds": 200_000,
            "loan": loan_id,
        }
    ]
    assert report["warehouse_receipts"]["by_state"] == {
        "LIQUIDATED": {"count": 1, "quantity": 1_000}
    }
    assert report["problems"] == []
    factors = credit_report(net.state, "supplier-a")["factors"]
    assert (factors["liquidated"], factors["overdue"], factors["written_off"]) == (1, 1, 1)


def test_proceeds_above_the_debt_close_the_loan_and_show_the_surplus(net: Network) -> None:
    receipt_id, loan_id = receipt_loan(net, amount_due=400_000, due_day=60)
    net.advance_to(70)
    net.run("bank-a", "loan.mark_overdue", loan=loan_id)
    result = net.run("bank-a", "warehouse.liquidate", receipt=receipt_id, proceeds=450_000)
    assert result == {
        "liquidated": 1_000,
        "applied": 400_000,
        "surplus": 50_000,
        "loan_state": "REPAID",
    }
    assert credit_report(net.state, "supplier-a")["factors"]["late"] == 1


def test_liquidation_stops_a_collection_task(net: Network) -> None:
    receipt_id, loan_id = receipt_loan(net, amount_due=400_000, due_day=60)
    net.advance_to(95)
    net.run("bank-a", "loan.mark_overdue", loan=loan_id)
    task = published_task(net, loan_id)
    net.run("bank-a", "warehouse.liquidate", receipt=receipt_id, proceeds=100_000)
    assert net.get("task/" + task)["state"] == "STOPPED"
    assert net.get("loan/" + loan_id)["state"] == "OVERDUE"


def test_a_frozen_bank_neither_takes_a_pledge_nor_releases(net: Network) -> None:
    receipt_id = issued_receipt(net)
    net.run("regulator", "member.freeze", member="bank-a")
    net.reject(
        "pledgee bank-a is frozen",
        "supplier-a",
        "warehouse.pledge",
        receipt=receipt_id,
        bank="bank-a",
    )
    net.run("regulator", "member.unfreeze", member="bank-a")
    net.run("supplier-a", "warehouse.pledge", receipt=receipt_id, bank="bank-a")
    net.run("regulator", "member.freeze", member="bank-a")
    net.reject(
        "bank-a is frozen by the regulator",
        "bank-a",
        "warehouse.release",
        receipt=receipt_id,
        quantity=1_000,
    )


def test_amendment_statements_differ_for_every_term() -> None:
    base = ("whr-1", 0, "soybeans", 500, "A", sha256(b"x"))
    variants = [
        ("whr-2", 0, "soybeans", 500, "A", sha256(b"x")),
        ("whr-1", 1, "soybeans", 500, "A", sha256(b"x")),
        ("whr-1", 0, "corn", 500, "A", sha256(b"x")),
        ("whr-1", 0, "soybeans", 501, "A", sha256(b"x")),
        ("whr-1", 0, "soybeans", 500, "B", sha256(b"x")),
        ("whr-1", 0, "soybeans", 500, "A", sha256(b"y")),
    ]
    statements = {amendment_statement(*v) for v in [base, *variants]}
    assert len(statements) == 7
    key = KeyPair(sha256(b"k"))
    assert key.sign(amendment_statement(*base)) != key.sign(amendment_statement(*variants[0]))
