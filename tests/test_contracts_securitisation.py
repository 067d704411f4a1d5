"""Securitisation of SME loans (DOMAIN.md, "Securitising SME loans (ABS) on the same chain"):
pooling, tranches, granted data and ratings, subscription and closing, the waterfall with its
rounding rule, servicing reports, and delivery-versus-payment transfers of units. Every rule is
tried both ways; a broken rule leaves the state exactly as it was (`Network.reject`)."""

from __future__ import annotations

from typing import Any

import pytest

from consortium import contracts
from consortium.contracts import audit_report
from consortium.contracts.records import PoolTranche
from consortium.contracts.waterfall import distribute, interest, per_unit
from consortium.crypto import sha256
from consortium.errors import SignatureError
from tests.contracts_helpers import (
    GENESIS_TOTAL,
    LOAN_TAPE,
    Network,
    assigned_task,
    inspection_hash,
    issued_pool,
    pool_loans,
    pooled,
    sealed_tape,
    seeded_key,
    structured_pool,
    unit_consent,
)


@pytest.fixture
def net() -> Network:
    return Network()


def pool_record(net: Network, pool: str) -> dict[str, Any]:
    return net.get("pool/" + pool)


def tranche(net: Network, pool: str, name: str) -> dict[str, Any]:
    return next(t for t in pool_record(net, pool)["tranches"] if t["name"] == name)


def account(net: Network, pool: str) -> int:
    return net.balance(pool + "/collection")


def create_args(pooled_loans: list[str], **changes: Any) -> dict[str, Any]:
    return {
        "loans": pooled_loans,
        "arranger": "arranger",
        "period_days": 30,
        "default_days": 20,
        "data_commitment": sha256(LOAN_TAPE),
    } | changes


def repay_in_full(net: Network, loan: str) -> None:
    record = net.get("loan/" + loan)
    net.run(record["borrower"], "loan.repay", loan=loan, amount=record["amount_due"])


# Pooling ------------------------------------------------------------------------------------


def test_a_bank_pools_its_active_loans(net: Network) -> None:
    loans = pool_loans(net)
    result = net.run("bank-a", "pool.create", **create_args(loans))
    pool = pool_record(net, result["pool"])
    assert result["principal"] == pool["principal"] == 1_600_000
    assert (pool["state"], pool["bank"], pool["arranger"]) == ("FORMING", "bank-a", "arranger")
    assert pool["loans"] == tuple(loans)
    assert all(net.get("pooled/" + loan) == result["pool"] for loan in loans)
    assert all(net.get("loan/" + loan)["state"] == "ACTIVE" for loan in loans)


def test_a_loan_goes_into_one_pool_ever(net: Network) -> None:
    loans = pool_loans(net)
    pool = pooled(net, loans)
    reason = net.reject("already", "bank-a", "pool.create", **create_args([loans[0]]))
    assert reason == f"loan {loans[0]} is in pool {pool} already"
    net.reject("distinct", "bank-a", "pool.create", **create_args([loans[1], loans[1]]))


@pytest.mark.parametrize(
    ("sender", "changes", "reason"),
    [
        ("supplier-a", {}, "only a bank may do this"),
        ("bank-b", {}, "was lent by bank-a, not bank-b"),
        ("bank-a", {"arranger": "investor-1"}, "arranger investor-1 is not a arranger"),
        ("bank-a", {"period_days": 0}, "period_days must be an integer"),
        ("bank-a", {"data_commitment": b"short"}, "data_commitment must be 32 to 32 bytes"),
        ("bank-a", {"loans": []}, "must be a list of 1 to 64 distinct object ids"),
        ("bank-a", {"loans": ["loan-0000000000000000"]}, "no loan loan-0000000000000000"),
    ],
)
def test_pooling_refuses_the_wrong_bank_arranger_or_terms(
    net: Network, sender: str, changes: dict[str, Any], reason: str
) -> None:
    loans = pool_loans(net)
    net.reject(reason, sender, "pool.create", **create_args(loans, **changes))


def test_only_active_loans_not_past_their_due_day_are_pooled(net: Network) -> None:
    late, repaid, fresh = pool_loans(
        net, (("supplier-a", 1_000, 5), ("supplier-b", 1_000, 50), ("supplier-c", 1_000, 50))
    )
    repay_in_full(net, repaid)
    net.reject("is REPAID", "bank-a", "pool.create", **create_args([repaid]))
    net.advance_to(6)
    net.reject("not past its due day", "bank-a", "pool.create", **create_args([fresh, late]))
    net.run("bank-a", "loan.mark_overdue", loan=late)
    net.reject("is OVERDUE", "bank-a", "pool.create", **create_args([late]))
    assert net.run("bank-a", "pool.create", **create_args([fresh]))["principal"] == 1_000


def test_a_partly_repaid_loan_pools_its_outstanding_principal(net: Network) -> None:
    (loan,) = pool_loans(net, (("supplier-a", 100_000, 30),))  # 105,000 due
    net.run("supplier-a", "loan.repay", loan=loan, amount=45_000)  # interest first
    assert net.run("bank-a", "pool.create", **create_args([loan]))["principal"] == 60_000


# Repayments of pooled loans go to the pool ---------------------------------------------------


def test_repayments_of_a_pooled_loan_go_to_the_collection_account(net: Network) -> None:
    loans = pool_loans(net)
    pool = pooled(net, loans)
    bank_before = net.balance("bank-a")
    net.run("supplier-a", "loan.repay", loan=loans[0], amount=25_000)
    net.run("bank-a", "loan.record_repayment", loan=loans[1], amount=10_000)
    assert account(net, pool) == 35_000
    assert net.balance("bank-a") == bank_before - 10_000  # passed on what it got off the chain
    assert net.total_money() == GENESIS_TOTAL
    unpooled = net.plain_loan("bank-a", "supplier-b", 1_000, 1_000, 40)
    before = net.balance("bank-a")
    net.run("bank-a", "loan.record_repayment", loan=unpooled, amount=500)
    net.run("supplier-b", "loan.repay", loan=unpooled, amount=500)
    assert net.balance("bank-a") == before + 500 and account(net, pool) == 35_000


def test_a_pooled_loans_receivable_and_collection_pay_the_pool(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 100_000, 20)
    net.run("supplier-a", "receivable.pledge", receivable=rcv, bank="bank-a")
    secured = net.run(
        "bank-a",
        "loan.lend",
        borrower="supplier-a",
        principal=90_000,
        amount_due=95_000,
        due_day=20,
        receivable=rcv,
    )["loan"]
    (bad,) = pool_loans(net, (("supplier-c", 500_000, 30),))
    pool = pooled(net, [secured, bad])
    net.advance_to(20)
    assert net.run("core", "receivable.settle", receivable=rcv) == {
        "to_pledgee": 95_000,
        "to_holder": 5_000,
    }
    assert account(net, pool) == 95_000
    net.advance_to(61)
    net.run("bank-a", "loan.mark_overdue", loan=bad)
    task = assigned_task(net, bad)
    net.run("agency", "collection.report_recovery", task=task, amount=200_000)
    assert account(net, pool) == 295_000 and net.total_money() == GENESIS_TOTAL


def test_goods_liquidated_for_a_pooled_loan_pay_the_pool(net: Network) -> None:
    receipt = net.run(
        "warehouse-1",
        "warehouse.issue",
        owner="supplier-a",
        lot="lot-9",
        commodity="copper cathode",
        quantity=100,
        grade="A",
        inspection=inspection_hash("lot-9"),
    )["receipt"]
    net.run("supplier-a", "warehouse.pledge", receipt=receipt, bank="bank-a")
    loan = net.run(
        "bank-a", "warehouse.lend", receipt=receipt, principal=50_000, amount_due=55_000, due_day=10
    )["loan"]
    pool = pooled(net, [loan])
    net.advance_to(11)
    net.run("bank-a", "loan.mark_overdue", loan=loan)
    net.run("bank-a", "warehouse.liquidate", receipt=receipt, proceeds=60_000)
    assert account(net, pool) == 55_000 and net.get("loan/" + loan)["state"] == "REPAID"


# Structure ----------------------------------------------------------------------------------


def test_the_arranger_structures_tranches_within_the_outstanding_principal(net: Network) -> None:
    loans = pool_loans(net)
    pool = pooled(net, loans)
    net.reject(
        "tranches total 1700000, more than the pool's outstanding principal 1600000",
        "arranger",
        "pool.structure",
        pool=pool,
        tranches=[["senior", 1_300_000, 1_300, 400], ["junior", 400_000, 400, 1_000]],
    )
    terms = [["senior", 1_200_000, 1_200, 400], ["junior", 400_000, 400, 1_000]]
    assert net.run("arranger", "pool.structure", pool=pool, tranches=terms) == {
        "tranches": 2,
        "principal": 1_600_000,
    }
    senior, junior = pool_record(net, pool)["tranches"]
    assert (senior["name"], senior["face"], senior["coupon_bp"]) == ("senior", 1_000, 400)
    assert (junior["size"], junior["units"], junior["sold"]) == (400_000, 400, 0)
    assert pool_record(net, pool)["state"] == "STRUCTURED"
    net.reject(
        "is STRUCTURED, not FORMING", "arranger", "pool.structure", pool=pool, tranches=terms
    )


def test_repayments_before_structuring_shrink_what_may_be_structured(net: Network) -> None:
    loans = pool_loans(net)
    pool = pooled(net, loans)
    repay_in_full(net, loans[3])
    net.reject(
        "outstanding principal 1350000",
        "arranger",
        "pool.structure",
        pool=pool,
        tranches=[["senior", 1_400_000, 1_400, 400]],
    )


@pytest.mark.parametrize(
    ("sender", "tranches", "reason"),
    [
        ("bank-a", [["senior", 1_000, 1, 0]], "only a arranger may do this"),
        ("arranger", [["a", 1_000, 1, 0], ["a", 1_000, 1, 0]], "tranche names must differ"),
        ("arranger", [["senior", 1_000, 3, 0]], "is not a whole number of 3 units"),
        ("arranger", [["senior", 1_000, 1, 5_001]], "coupon from 0 to 5000 bp"),
        ("arranger", [["senior", 0, 1, 0]], "each tranche of tranches must be"),
        ("arranger", [["x", 1, 1, 0]] * 6, "must be a list of 1 to 5"),
        ("arranger", [], "must be a list of 1 to 5"),
    ],
)
def test_a_malformed_structure_is_refused(
    net: Network, sender: str, tranches: list[Any], reason: str
) -> None:
    pool = pooled(net, pool_loans(net))
    net.reject(reason, sender, "pool.structure", pool=pool, tranches=tranches)


def test_only_the_named_arranger_structures(net: Network) -> None:
    pool = pooled(net, pool_loans(net))
    net.run(
        "regulator",
        "member.register",
        member="arranger-2",
        role="arranger",
        public_key=seeded_key("arranger-2").public_key,
    )
    net.keys["arranger-2"] = seeded_key("arranger-2")
    net.reject(
        "arranged by arranger, not arranger-2",
        "arranger-2",
        "pool.structure",
        pool=pool,
        tranches=[["senior", 1_000, 1, 0]],
    )


# Data grant and rating --------------------------------------------------------------------------


def test_the_granted_agency_and_the_regulator_open_the_pools_data(net: Network) -> None:
    pool = pooled(net, pool_loans(net))
    net.run(
        "bank-a",
        "pool.grant_data",
        pool=pool,
        agency="rating-1",
        ciphertexts=sealed_tape(net, "rating-1", "regulator"),
    )
    boxes = net.get(f"grant/{pool}/rating-1")
    assert sorted(boxes) == ["rating-1", "regulator"]
    for reader in ("rating-1", "regulator"):
        opened = net.keys[reader].open_sealed(boxes[reader])
        assert sha256(opened) == pool_record(net, pool)["data_commitment"]
    for outsider in ("rating-2", "investor-1", "bank-b"):
        for box in boxes.values():
            with pytest.raises(SignatureError):
                net.keys[outsider].open_sealed(box)
    assert pool_record(net, pool)["granted"] == ("rating-1",)


@pytest.mark.parametrize(
    ("sender", "agency", "readers", "reason"),
    [
        ("bank-b", "rating-1", ("rating-1", "regulator"), "belongs to bank-a, not bank-b"),
        ("bank-a", "investor-1", ("investor-1", "regulator"), "is not a rating_agency"),
        ("bank-a", "rating-1", ("rating-1",), "recipients must be exactly rating-1, regulator"),
        ("bank-a", "rating-1", ("rating-1", "rating-2", "regulator"), "recipients must be"),
    ],
)
def test_a_grant_goes_to_exactly_one_rating_agency_and_the_regulators(
    net: Network, sender: str, agency: str, readers: tuple[str, ...], reason: str
) -> None:
    pool = pooled(net, pool_loans(net))
    net.reject(
        reason,
        sender,
        "pool.grant_data",
        pool=pool,
        agency=agency,
        ciphertexts=sealed_tape(net, *readers),
    )


def test_data_is_granted_once_per_agency_and_boxes_must_be_sealed_boxes(net: Network) -> None:
    pool = pooled(net, pool_loans(net))
    short = {"rating-2": b"x" * 48, "regulator": b"y" * 48}
    net.reject(
        "too short", "bank-a", "pool.grant_data", pool=pool, agency="rating-2", ciphertexts=short
    )
    args = {
        "pool": pool,
        "agency": "rating-1",
        "ciphertexts": sealed_tape(net, "rating-1", "regulator"),
    }
    net.run("bank-a", "pool.grant_data", **args)
    net.reject("was granted the data of pool", "bank-a", "pool.grant_data", **args)


def test_only_a_granted_agency_rates_every_tranche_with_its_report(net: Network) -> None:
    pool, _ = structured_pool(net)
    rating = net.get(f"rating/{pool}/rating-1")
    assert rating["grades"] == ("AAA", "BB") and rating["report"] == sha256(b"rating report")
    assert rating["version"] == 1 and pool_record(net, pool)["rated_by"] == ("rating-1",)
    report = sha256(b"second report")
    net.reject(
        "has not been granted the data",
        "rating-2",
        "pool.rate",
        pool=pool,
        grades=["A", "B"],
        report=report,
    )
    net.reject(
        "has 2 tranches, not 1 grades",
        "rating-1",
        "pool.rate",
        pool=pool,
        grades=["A"],
        report=report,
    )
    net.reject(
        "only a rating_agency may do this",
        "bank-a",
        "pool.rate",
        pool=pool,
        grades=["A", "B"],
        report=report,
    )
    assert net.run("rating-1", "pool.rate", pool=pool, grades=["AA", "B"], report=report) == {
        "version": 2
    }
    assert net.get(f"rating/{pool}/rating-1")["grades"] == ("AA", "B")


def test_a_pool_is_rated_only_once_structured(net: Network) -> None:
    pool = pooled(net, pool_loans(net))
    net.run(
        "bank-a",
        "pool.grant_data",
        pool=pool,
        agency="rating-1",
        ciphertexts=sealed_tape(net, "rating-1", "regulator"),
    )
    net.reject(
        "is FORMING, not STRUCTURED or ISSUED",
        "rating-1",
        "pool.rate",
        pool=pool,
        grades=["A"],
        report=sha256(b"r"),
    )


# Subscription and closing -------------------------------------------------------------------------


def test_investors_subscribe_at_face_value_into_the_subscription_account(net: Network) -> None:
    pool, _ = structured_pool(net)
    before = net.balance("investor-1")
    result = net.run("investor-1", "pool.subscribe", pool=pool, tranche="senior", units=1_000)
    assert result == {"paid": 1_000_000, "held": 1_000}
    assert net.balance("investor-1") == before - 1_000_000
    assert net.balance(pool + "/subscriptions") == 1_000_000
    net.reject(
        "only 200 units of tranche senior are left, not 201",
        "investor-2",
        "pool.subscribe",
        pool=pool,
        tranche="senior",
        units=201,
    )
    net.reject(
        "has no tranche mezzanine",
        "investor-2",
        "pool.subscribe",
        pool=pool,
        tranche="mezzanine",
        units=1,
    )
    net.reject(
        "only a investor may do this",
        "bank-b",
        "pool.subscribe",
        pool=pool,
        tranche="senior",
        units=1,
    )
    assert tranche(net, pool, "senior")["holders"] == {"investor-1": 1_000}


def test_a_subscription_needs_the_money(net: Network) -> None:
    pool = pooled(net, pool_loans(net, (("core", 6_000_000, 30),)))
    net.run("arranger", "pool.structure", pool=pool, tranches=[["senior", 6_000_000, 1, 400]])
    net.reject(
        "investor-1 has 5000000, needs 6000000",
        "investor-1",
        "pool.subscribe",
        pool=pool,
        tranche="senior",
        units=1,
    )


def test_no_subscription_before_structuring_or_after_closing(net: Network) -> None:
    pool = pooled(net, pool_loans(net))
    net.reject(
        "is FORMING, not open for subscription",
        "investor-1",
        "pool.subscribe",
        pool=pool,
        tranche="senior",
        units=1,
    )


def test_closing_pays_the_bank_and_cancels_unsold_units(net: Network) -> None:
    bank_before = net.balance("bank-a")
    pool, _ = issued_pool(net)
    record = pool_record(net, pool)
    assert record["state"] == "ISSUED" and record["issued_day"] == record["last_day"] == 0
    senior, junior = record["tranches"]
    assert (senior["units"], senior["size"], senior["cancelled"]) == (1_200, 1_200_000, 0)
    assert (junior["units"], junior["size"], junior["cancelled"]) == (300, 300_000, 100)
    loans_lent = 1_600_000
    assert net.balance("bank-a") == bank_before - loans_lent + 1_500_000
    assert net.balance(pool + "/subscriptions") == 0
    net.reject(
        "is ISSUED, not open for subscription",
        "investor-3",
        "pool.subscribe",
        pool=pool,
        tranche="junior",
        units=1,
    )
    net.reject("is ISSUED, not STRUCTURED", "arranger", "pool.close", pool=pool)


def test_a_pool_closes_only_rated_with_units_sold_by_its_arranger(net: Network) -> None:
    loans = pool_loans(net)
    pool = pooled(net, loans)
    net.run("arranger", "pool.structure", pool=pool, tranches=[["senior", 1_000_000, 1_000, 300]])
    net.run("investor-1", "pool.subscribe", pool=pool, tranche="senior", units=10)
    net.reject("is not rated", "arranger", "pool.close", pool=pool)
    net.run(
        "bank-a",
        "pool.grant_data",
        pool=pool,
        agency="rating-2",
        ciphertexts=sealed_tape(net, "rating-2", "regulator"),
    )
    net.run("rating-2", "pool.rate", pool=pool, grades=["A"], report=sha256(b"r"))
    net.reject("only a arranger may do this", "bank-a", "pool.close", pool=pool)
    assert net.run("arranger", "pool.close", pool=pool) == {"proceeds": 10_000, "cancelled": (990,)}

    other = pooled(net, pool_loans(net))
    net.run("arranger", "pool.structure", pool=other, tranches=[["senior", 1_000, 1, 0]])
    net.run(
        "bank-a",
        "pool.grant_data",
        pool=other,
        agency="rating-1",
        ciphertexts=sealed_tape(net, "rating-1", "regulator"),
    )
    net.run("rating-1", "pool.rate", pool=other, grades=["A"], report=sha256(b"r"))
    net.reject("no units of pool", "arranger", "pool.close", pool=other)


# The waterfall as arithmetic ----------------------------------------------------------------------


def tranche_terms(
    name: str, size: int, units: int, coupon_bp: int, holders: dict[str, int], **state: int
) -> PoolTranche:
    record: PoolTranche = {
        "cancelled": 0,
        "coupon_bp": coupon_bp,
        "face": size // units,
        "holders": holders,
        "interest_due": 0,
        "interest_paid": 0,
        "losses": 0,
        "name": name,
        "principal_paid": 0,
        "residual_paid": 0,
        "size": size,
        "sold": units,
        "units": units,
    }
    return {**record, **state}


def test_interest_and_per_unit_shares_round_down() -> None:
    assert interest(1_200_000, 400, 30) == 3_945  # 3,945.2
    assert per_unit(1_000, {"a": 2, "b": 1}, 3) == (999, {"a": 666, "b": 333})
    assert per_unit(2, {"a": 2, "b": 1}, 3) == (0, {})


def test_the_waterfall_pays_senior_interest_principal_then_junior() -> None:
    senior = tranche_terms("senior", 1_000, 10, 0, {"a": 10})
    junior = tranche_terms("junior", 1_000, 10, 0, {"b": 10})
    plan = distribute((senior, junior), 1_500, 30, 0, final=False)
    assert [p.paid for p in plan.payments] == [1_000, 500]
    assert plan.tranches[0]["principal_paid"] == 1_000 and plan.carried == 0


def test_rounding_leftovers_stay_for_the_next_distribution_not_for_juniors() -> None:
    senior = tranche_terms("senior", 3_000, 3, 0, {"a": 2, "b": 1})
    junior = tranche_terms("junior", 1_000, 1, 0, {"c": 1})
    plan = distribute((senior, junior), 1_001, 30, 0, final=False)
    assert [p.paid for p in plan.payments] == [999, 0]  # 333 a unit; 2 kept, not passed down
    assert plan.payments[0].payouts == {"a": 666, "b": 333}
    assert plan.carried == 2 and plan.paid + plan.carried == 1_001


def test_losses_are_written_off_the_most_junior_tranche_first() -> None:
    senior = tranche_terms("senior", 1_000, 10, 0, {"a": 10})
    mezzanine = tranche_terms("mezzanine", 500, 5, 0, {"b": 5})
    junior = tranche_terms("junior", 300, 3, 0, {"c": 3}, principal_paid=100)
    plan = distribute((senior, mezzanine, junior), 0, 30, 600, final=False)
    assert [p.absorbed for p in plan.payments] == [0, 400, 200]
    assert [p.outstanding for p in plan.payments] == [1_000, 100, 0]
    beyond = distribute((senior, mezzanine, junior), 0, 30, 2_000, final=False)
    assert [p.absorbed for p in beyond.payments] == [1_000, 500, 200]
    assert beyond.unabsorbed == 300


def test_unpaid_interest_is_carried_as_due() -> None:
    senior = tranche_terms("senior", 365_000, 365, 1_000, {"a": 365})
    plan = distribute((senior,), 0, 365, 0, final=False)
    assert plan.tranches[0]["interest_due"] == 36_500
    later = distribute(plan.tranches, 36_500 + 365, 0, 0, final=False)
    assert later.payments[0].interest == 36_500 and later.payments[0].principal == 365


def test_the_last_distribution_pays_the_remainder_to_the_most_junior_tranche() -> None:
    senior = tranche_terms("senior", 1_000, 10, 0, {"a": 10}, principal_paid=1_000)
    junior = tranche_terms("junior", 900, 9, 0, {"b": 4, "c": 4, "d": 1}, principal_paid=900)
    plan = distribute((senior, junior), 1_000, 30, 0, final=True)
    (_, last) = plan.payments
    # 111 a unit for 9 units = 999; the last 1 to the largest holder, b and c tie: b.
    assert last.residual == 1_000 and last.payouts == {"b": 445, "c": 444, "d": 111}
    assert plan.carried == 0 and plan.tranches[1]["residual_paid"] == 1_000
    assert plan.tranches[1]["principal_paid"] == 900  # never above its size


def test_a_tranche_with_nothing_sold_takes_no_share() -> None:
    senior = {**tranche_terms("senior", 100, 1, 0, {}), "size": 0, "units": 0, "sold": 0}
    junior = tranche_terms("junior", 100, 1, 0, {"b": 1})
    plan = distribute((senior, junior), 150, 30, 0, final=True)
    assert [p.paid for p in plan.payments] == [0, 150]


# Distributions on the chain -----------------------------------------------------------------------


def run_scenario_8_periods(net: Network) -> tuple[str, list[str]]:
    pool, loans = issued_pool(net)
    net.advance_to(30)
    repay_in_full(net, loans[0])
    repay_in_full(net, loans[1])
    return pool, loans


def test_a_distribution_pays_holders_by_the_waterfall_and_writes_a_report(net: Network) -> None:
    pool, _ = run_scenario_8_periods(net)
    before = {m: net.balance(m) for m in ("investor-1", "investor-2")}
    result = net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    assert result == {"report": 1, "paid": (997_200, 0), "loss": 0, "carried": 300, "final": False}
    # 997,500 collected, all of it the senior's (3,945 interest, the rest principal): 831 a
    # unit of 1,200 is 997,200; the 300 left over stays in the account
    assert net.balance("investor-1") - before["investor-1"] == 831_000
    assert net.balance("investor-2") - before["investor-2"] == 166_200
    assert account(net, pool) == 300 and net.total_money() == GENESIS_TOTAL
    report = net.get(f"report/{pool}/0001")
    assert (report["collected"], report["paid"], report["carried"]) == (997_500, 997_200, 300)
    assert report["tranches"][0] == {
        "absorbed": 0,
        "interest": 3_945,
        "name": "senior",
        "outstanding": 206_745,
        "principal": 993_255,
        "reinstated": 0,
        "residual": 0,
    }
    assert report["pool_principal"] == 650_000 and report["final"] is False
    assert tranche(net, pool, "junior")["interest_due"] == 2_465


def test_a_distribution_waits_for_its_period_and_its_servicer(net: Network) -> None:
    pool, _ = issued_pool(net)
    net.advance_to(29)
    net.reject(
        "the next distribution of pool", "bank-a", "pool.distribute", pool=pool, payments=None
    )
    net.advance_to(30)
    net.reject("only a bank may do this", "arranger", "pool.distribute", pool=pool, payments=None)
    net.reject(
        "serviced by bank-a, not bank-b", "bank-b", "pool.distribute", pool=pool, payments=None
    )
    net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    net.reject("is on day 60", "bank-a", "pool.distribute", pool=pool, payments=None)
    formed = pooled(net, pool_loans(net))
    net.reject("is FORMING, not ISSUED", "bank-a", "pool.distribute", pool=formed, payments=None)


def test_a_servicer_cannot_pay_a_junior_before_the_senior(net: Network) -> None:
    pool, _ = run_scenario_8_periods(net)
    reason = net.reject(
        "cannot be paid before tranche senior",
        "bank-a",
        "pool.distribute",
        pool=pool,
        payments=[0, 997_200],
    )
    assert reason == (
        "tranche junior cannot be paid before tranche senior, which the waterfall pays 997200 "
        "first (the instruction gives it 0)"
    )
    net.reject(
        "the waterfall pays tranche senior 997200, not 997500",
        "bank-a",
        "pool.distribute",
        pool=pool,
        payments=[997_500, 0],
    )
    net.reject(
        "one amount for each of the 2 tranches",
        "bank-a",
        "pool.distribute",
        pool=pool,
        payments=[997_200],
    )
    assert net.run("bank-a", "pool.distribute", pool=pool, payments=[997_200, 0])["report"] == 1


def test_a_defaulted_loan_costs_the_junior_tranche_first(net: Network) -> None:
    pool, loans = run_scenario_8_periods(net)
    net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    net.advance_to(31)
    net.run("bank-a", "loan.mark_overdue", loan=loans[3])
    net.advance_to(60)
    repay_in_full(net, loans[2])
    result = net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    assert result == {
        "report": 2,
        "paid": (206_400, 212_700),
        "loss": 250_000,
        "carried": 1_200,
        "final": False,
    }
    senior, junior = pool_record(net, pool)["tranches"]
    # The junior absorbs the whole 250,000; the period's collections, once the senior has its
    # due, pay the junior's 50,000 balance and win back 159,825 of the write-down.
    assert senior["losses"] == 0 and junior["losses"] == 250_000 - 159_825
    assert pool_record(net, pool)["defaulted"] == (loans[3],)
    report = net.get(f"report/{pool}/0002")
    assert report["defaults"] == (loans[3],) and report["loss"] == 250_000
    assert [t["absorbed"] for t in report["tranches"]] == [0, 250_000]
    assert [t["reinstated"] for t in report["tranches"]] == [0, 159_825]
    assert audit_report(net.state)["problems"] == []


def test_a_loan_is_lost_once_and_later_recoveries_win_back_the_senior_first(net: Network) -> None:
    pool, loans = issued_pool(net, default_days=0)
    net.advance_to(31)  # loans 0, 1, 3 are past due: all defaulted at once
    result = net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    assert result["loss"] == 1_200_000
    senior, junior = pool_record(net, pool)["tranches"]
    assert (junior["losses"], senior["losses"]) == (300_000, 900_000)
    repay_in_full(net, loans[0])
    net.advance_to(61)
    again = net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    assert again["loss"] == 400_000  # loan 2 is now past due as well; loan 0 not counted again
    senior, junior = pool_record(net, pool)["tranches"]
    assert again["paid"] == (524_400, 0)  # 437 a unit of the 525,000 recovered
    assert senior["losses"] == 1_200_000 - 523_381 and junior["losses"] == 300_000


def test_the_last_distribution_empties_the_account_and_retires_the_pool(net: Network) -> None:
    pool, loans = run_scenario_8_periods(net)
    net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    net.advance_to(31)
    net.run("bank-a", "loan.mark_overdue", loan=loans[3])
    net.advance_to(60)
    repay_in_full(net, loans[2])
    net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    net.run("bank-a", "loan.write_off", loan=loans[3])
    net.advance_to(90)
    junior_before = net.balance("investor-2")
    result = net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    assert result["final"] is True and result["carried"] == 0 and account(net, pool) == 0
    record = pool_record(net, pool)
    assert record["state"] == "RETIRED" and record["losses"] == 250_000
    senior, junior = record["tranches"]
    assert junior["residual_paid"] > 0 and senior["principal_paid"] <= senior["size"]
    assert net.balance("investor-2") > junior_before
    assert net.get(f"report/{pool}/0003")["final"] is True
    net.reject("is RETIRED, not ISSUED", "bank-a", "pool.distribute", pool=pool, payments=None)
    net.reject("is in pool", "bank-a", "pool.create", **create_args([loans[2]]))
    net.reject(
        "is RETIRED",
        "bank-a",
        "pool.grant_data",
        pool=pool,
        agency="rating-2",
        ciphertexts=sealed_tape(net, "rating-2", "regulator"),
    )
    net.reject(
        "is RETIRED, not STRUCTURED or ISSUED",
        "rating-1",
        "pool.rate",
        pool=pool,
        grades=["A", "B"],
        report=sha256(b"late"),
    )
    net.reject(
        "is RETIRED, not ISSUED",
        "investor-1",
        "pool.transfer_units",
        **transfer_args(net, pool, units=1),
    )
    report = audit_report(net.state)
    assert report["problems"] == [] and report["open"]["pools"] == 0
    assert net.total_money() == GENESIS_TOTAL


# Delivery versus payment ----------------------------------------------------------------------------


def transfer_args(net: Network, pool: str, **changes: Any) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "pool": pool,
        "trade": "trade-1",
        "tranche": "senior",
        "seller": "investor-1",
        "buyer": "investor-3",
        "units": 400,
        "price": 70_000,
    } | changes
    signer = terms.pop("signer", None)
    fields = {
        k: terms[k] for k in ("pool", "trade", "tranche", "seller", "buyer", "units", "price")
    }
    return terms | {"consent": unit_consent(net, signer=signer, **fields)}


def test_units_and_their_price_change_hands_in_one_transaction(net: Network) -> None:
    pool, _ = issued_pool(net)
    seller, buyer = net.balance("investor-1"), net.balance("investor-3")
    result = net.run("investor-1", "pool.transfer_units", **transfer_args(net, pool))
    assert result == {"seller_units": 600, "buyer_units": 400}
    assert net.balance("investor-1") == seller + 70_000
    assert net.balance("investor-3") == buyer - 70_000
    assert tranche(net, pool, "senior")["holders"] == {
        "investor-1": 600,
        "investor-2": 200,
        "investor-3": 400,
    }
    trade = net.get(f"trade/{pool}/trade-1")
    assert (trade["seller"], trade["buyer"], trade["units"], trade["price"]) == (
        "investor-1",
        "investor-3",
        400,
        70_000,
    )
    net.reject(
        "trade trade-1 of pool", "investor-1", "pool.transfer_units", **transfer_args(net, pool)
    )


def test_a_seller_selling_all_its_units_leaves_the_holders(net: Network) -> None:
    pool, _ = issued_pool(net)
    net.run(
        "investor-2",
        "pool.transfer_units",
        **transfer_args(net, pool, seller="investor-2", tranche="junior", units=300),
    )
    assert tranche(net, pool, "junior")["holders"] == {"investor-3": 300}


@pytest.mark.parametrize(
    ("sender", "changes", "reason"),
    [
        ("investor-2", {}, "investor-2 cannot sell the units of investor-1"),
        ("investor-1", {"units": 1_001}, "investor-1 holds 1000 units of tranche senior"),
        ("investor-1", {"buyer": "investor-1", "signer": "investor-1"}, "must differ"),
        ("investor-1", {"buyer": "rating-1"}, "buyer rating-1 is not a investor"),
        ("investor-1", {"signer": "investor-2"}, "consent is not signed by the current key"),
        ("investor-1", {"tranche": "mezzanine"}, "has no tranche mezzanine"),
        ("investor-1", {"price": 6_000_000}, "investor-3 has 5000000, needs 6000000"),
        ("investor-1", {"price": 0}, "price must be an integer from 1"),
        ("bank-a", {"seller": "bank-a"}, "only a investor may do this"),
    ],
)
def test_a_transfer_breaking_a_rule_moves_nothing(
    net: Network, sender: str, changes: dict[str, Any], reason: str
) -> None:
    pool, _ = issued_pool(net)
    net.reject(reason, sender, "pool.transfer_units", **transfer_args(net, pool, **changes))


def test_consent_over_other_terms_or_by_a_rotated_key_is_refused(net: Network) -> None:
    pool, _ = issued_pool(net)
    args = transfer_args(net, pool)
    net.reject(
        "consent is not signed", "investor-1", "pool.transfer_units", **(args | {"price": 60_000})
    )
    new_key = seeded_key("investor-3 new")
    net.run("investor-3", "member.rotate_key", member="investor-3", public_key=new_key.public_key)
    net.reject("consent is not signed", "investor-1", "pool.transfer_units", **args)
    net.keys["investor-3"] = new_key
    net.run("investor-1", "pool.transfer_units", **transfer_args(net, pool))


def test_units_trade_only_once_the_pool_is_issued(net: Network) -> None:
    pool, _ = structured_pool(net)
    net.run("investor-1", "pool.subscribe", pool=pool, tranche="senior", units=10)
    net.reject(
        "is STRUCTURED, not ISSUED",
        "investor-1",
        "pool.transfer_units",
        **transfer_args(net, pool, units=10),
    )


def test_the_node_can_check_the_buyers_consent_ahead(net: Network) -> None:
    pool, _ = issued_pool(net)
    args = transfer_args(net, pool)
    key, statement, signature = contracts.signature_claim(net.state, "pool.transfer_units", args)
    assert key == net.keys["investor-3"].public_key and signature == args["consent"]
    assert statement == contracts.transfer_statement(
        pool, "trade-1", "senior", "investor-1", "investor-3", 400, 70_000
    )


# The regulator's view ---------------------------------------------------------------------------


def test_the_audit_shows_pools_tranches_reports_and_holdings(net: Network) -> None:
    pool, _ = run_scenario_8_periods(net)
    net.run("bank-a", "pool.distribute", pool=pool, payments=None)
    report = audit_report(net.state)
    (shown,) = report["pools"]
    assert (shown["pool"], shown["state"], shown["loans"]) == (pool, "ISSUED", 4)
    assert shown["collection_account"] == 300 and shown["outstanding_principal"] == 650_000
    senior, junior = shown["tranches"]
    assert senior["ratings"] == {"rating-1": "AAA"} and senior["outstanding"] == 206_745
    assert junior["cancelled"] == 100 and junior["holders"] == {"investor-2": 300}
    assert shown["last_report"]["number"] == 1
    assert report["holdings"]["investor-2"] == [
        {"pool": pool, "tranche": "senior", "units": 200},
        {"pool": pool, "tranche": "junior", "units": 300},
    ]
    assert report["open"]["pools"] == 1 and report["problems"] == []


def test_the_audit_notices_units_that_do_not_add_up(net: Network) -> None:
    pool, loans = issued_pool(net)
    record = pool_record(net, pool)
    senior, junior = record["tranches"]
    bad_senior = {**senior, "holders": {**senior["holders"], "investor-3": 1}, "losses": 1}
    bad_junior = {**junior, "principal_paid": 300_001}
    net.state.apply({"pool/" + pool: {**record, "tranches": (bad_senior, bad_junior)}})
    net.state.apply({"pooled/" + loans[0]: "pool-0000000000000000"})
    problems = audit_report(net.state)["problems"]
    assert f"tranche senior of pool {pool}: units held do not add up to the units sold" in problems
    assert (
        f"tranche senior of pool {pool} took losses while a more junior tranche had a balance"
        in problems
    )
    assert f"tranche junior of pool {pool} repaid or lost more than its size" in problems
    assert f"loan {loans[0]} of pool {pool} is not marked as pooled there" in problems
    assert f"pooled/{loans[0]} names a pool that does not list the loan" in problems
