"""Credit assessment, one rule at a time: the score formula, the events that feed each factor,
the reports that show them, and tranche credit lines that pay out by themselves."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consortium.contracts import audit_report, credit_report, credit_score
from consortium.contracts.scoring import FACTORS, NO_HISTORY
from tests.contracts_helpers import (
    GENESIS_TOTAL,
    Network,
    assigned_task,
    open_line,
    overdue_loan,
    published_task,
)


@pytest.fixture
def net() -> Network:
    return Network()


def factors(net: Network, member: str) -> dict[str, int]:
    return credit_report(net.state, member)["factors"]


def score(net: Network, member: str) -> int:
    return credit_report(net.state, member)["score"]


def history(**counts: int) -> Any:
    return NO_HISTORY | counts


# The formula ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, 500),
        ({"confirmed": 3, "confirmed_amount": 1_000_000}, 500 + 15 + 20),
        ({"confirmed": 40, "confirmed_amount": 10**12}, 500 + 100 + 200),
        ({"on_time": 2}, 580),
        ({"on_time": 20}, 800),
        ({"on_time": 1, "late": 1, "days_late": 10}, 500 + 40 - 80 - 20),
        ({"days_late": 1_000}, 200),
        ({"overdue": 1, "collection": 1}, 500 - 50 - 120),
        ({"written_off": 1, "liquidated": 1}, 150),
        ({"written_off": 5}, 0),
        ({"confirmed": 99, "confirmed_amount": 10**15, "on_time": 99}, 1000),
    ],
)
def test_the_score_formula(counts: dict[str, int], expected: int) -> None:
    assert credit_score(history(**counts)) == expected


@given(st.fixed_dictionaries({name: st.integers(0, 10**6) for name in FACTORS}))
def test_the_score_is_an_integer_in_range_and_monotone_in_each_factor(
    counts: dict[str, int],
) -> None:
    value = credit_score(counts)  # type: ignore[arg-type]
    assert type(value) is int and 0 <= value <= 1000
    assert credit_score(dict(counts)) == value  # type: ignore[arg-type]
    for name in FACTORS:
        more = credit_score({**counts, name: counts[name] + 1})  # type: ignore[arg-type]
        if name in ("confirmed", "confirmed_amount", "on_time"):
            assert more >= value
        else:
            assert more <= value


# The events behind each factor ----------------------------------------------------------------


def test_no_history_reads_as_the_base_score(net: Network) -> None:
    assert credit_report(net.state, "supplier-b") == {
        "member": "supplier-b",
        "factors": dict(NO_HISTORY),
        "score": 500,
    }
    assert net.get("cfac/supplier-b") is None


def test_a_confirmation_counts_for_the_drafter_not_the_holder_of_a_split(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 1_000_000, 90)
    assert factors(net, "supplier-a") == history(confirmed=1, confirmed_amount=1_000_000)
    assert score(net, "supplier-a") == 525
    net.run(
        "supplier-a",
        "receivable.split",
        receivable=rcv,
        parts=(("supplier-b", 400_000), ("supplier-a", 600_000)),
    )
    assert factors(net, "supplier-b") == dict(NO_HISTORY)
    assert factors(net, "supplier-a")["confirmed"] == 1
    net.run("supplier-a", "receivable.draft", debtor="core", amount=5, due_day=9)
    assert factors(net, "supplier-a")["confirmed"] == 1


def test_repayments_on_time_and_late(net: Network) -> None:
    on_time = net.plain_loan("bank-a", "supplier-b", 100_000, 100_000, due_day=30)
    late = net.plain_loan("bank-a", "supplier-b", 100_000, 100_000, due_day=30)
    net.run("supplier-b", "loan.repay", loan=on_time, amount=60_000)
    assert net.get("cfac/supplier-b") is None  # a partial repayment writes nothing
    net.advance_to(30)
    net.run("supplier-b", "loan.repay", loan=on_time, amount=40_000)
    assert factors(net, "supplier-b") == history(on_time=1)
    net.advance_to(37)
    net.run("bank-a", "loan.record_repayment", loan=late, amount=100_000)
    assert factors(net, "supplier-b") == history(on_time=1, late=1, days_late=7)
    assert score(net, "supplier-b") == 500 + 40 - 80 - 14


def test_settlement_of_a_pledged_receivable_closes_the_loan_on_time(net: Network) -> None:
    rcv = net.confirmed("supplier-a", 600_000, 90)
    net.run("supplier-a", "receivable.pledge", receivable=rcv, bank="bank-a")
    net.run(
        "bank-a",
        "loan.lend",
        borrower="supplier-a",
        principal=570_000,
        amount_due=600_000,
        due_day=90,
        receivable=rcv,
    )
    net.advance_to(90)
    net.run("core", "receivable.settle", receivable=rcv)
    assert factors(net, "supplier-a")["on_time"] == 1


def test_overdue_collection_recovery_and_write_off(net: Network) -> None:
    loan = overdue_loan(net, days_overdue=31)  # supplier-c, due day 30, now day 61
    assert factors(net, "supplier-c") == history(overdue=1)
    task = assigned_task(net, loan)
    assert factors(net, "supplier-c")["collection"] == 1
    net.run("agency", "collection.report_recovery", task=task, amount=550_000)
    today = net.get("clock")
    assert factors(net, "supplier-c") == history(
        overdue=1, collection=1, late=1, days_late=today - 30
    )
    other = net.plain_loan("bank-b", "supplier-c", 10, 10, due_day=today + 1)
    net.advance_to(today + 5)
    net.run("bank-b", "loan.mark_overdue", loan=other)
    net.run("bank-b", "loan.write_off", loan=other)
    f = factors(net, "supplier-c")
    assert (f["overdue"], f["written_off"], f["days_late"]) == (2, 1, today - 30 + 4)


def test_every_factor_and_score_is_in_the_audit(net: Network) -> None:
    net.confirmed("supplier-a", 1_000_000, 90)
    overdue_loan(net)
    report = audit_report(net.state)
    assert report["credit_scores"] == {
        "supplier-a": {"factors": history(confirmed=1, confirmed_amount=1_000_000), "score": 525},
        "supplier-c": {"factors": history(overdue=1), "score": 450},
    }
    assert report["problems"] == []


def test_the_audit_notices_factors_that_disagree_with_the_records(net: Network) -> None:
    net.confirmed("supplier-a", 1_000, 90)
    net.state.apply({"cfac/supplier-a": history(confirmed=2, confirmed_amount=1_000)})
    assert audit_report(net.state)["problems"] == [
        "credit factor confirmed of supplier-a is 2, records show 1"
    ]


def test_the_same_history_gives_the_same_scores() -> None:
    def story() -> Network:
        net = Network()
        net.confirmed("supplier-a", 300_000, 40)
        loan = net.plain_loan("bank-a", "supplier-a", 50_000, 55_000, due_day=20)
        open_line(net, borrower="supplier-b", threshold=450)
        net.advance_to(25)
        net.run("supplier-a", "loan.repay", loan=loan, amount=55_000)
        overdue_loan(net)
        return net

    first, second = story(), story()
    assert first.state.root == second.state.root
    for member in ("supplier-a", "supplier-b", "supplier-c"):
        assert credit_report(first.state, member) == credit_report(second.state, member)
        assert score(first, member) == credit_score(factors(first, member))  # type: ignore[arg-type]


# Tranche credit lines -------------------------------------------------------------------------


def line(net: Network, line_id: str) -> dict[str, Any]:
    return net.get("cline/" + line_id)


def test_opening_a_line_pays_out_the_first_tranche(net: Network) -> None:
    result = open_line(net, amounts=(100_000, 200_000), due_days=(30, 45), rate_bp=500)
    line_id, loan_id = result["line"], result["loan"]
    assert result == {"line": line_id, "loan": f"loan-{line_id[3:]}-0", "score": 500}
    stored = line(net, line_id)
    assert stored["state"] == "DRAWING" and stored["next"] == 1
    assert stored["tranches"][0] == {
        "amount": 100_000,
        "due_days": 30,
        "state": "RELEASED",
        "loan": loan_id,
        "day": 0,
        "score": 500,
        "reason": None,
    }
    assert stored["tranches"][1]["state"] == "PENDING"
    loan = net.get("loan/" + loan_id)
    assert (loan["principal"], loan["amount_due"], loan["due_day"], loan["line"]) == (
        100_000,
        105_000,
        30,
        line_id,
    )
    assert net.balance("supplier-a") == 1_100_000


@pytest.mark.parametrize(
    ("sender", "changes", "reason"),
    [
        ("supplier-a", {}, "only a bank may do this"),
        ("bank-a", {"borrower": "bank-b"}, "borrower bank-b is not a supplier"),
        ("bank-a", {"due_days": (30,)}, "2 tranche amounts but 1 due days"),
        ("bank-a", {"amounts": ()}, "amounts must be a list of 1 to 12"),
        ("bank-a", {"amounts": (1, 0)}, "amounts must be a list"),
        ("bank-a", {"due_days": (30, 0)}, "due_days must be a list"),
        ("bank-a", {"threshold": 1001}, "threshold must be an integer from 0 to 1000"),
        ("bank-a", {"threshold": 501}, "score 500 of supplier-a is below the threshold 501"),
        ("bank-a", {"amounts": (10**14, 1)}, "bank-a has 100000000, needs"),
        ("bank-a", {"rate_bp": 5001}, "rate_bp must be an integer from 0 to 5000"),
    ],
)
def test_opening_rules(net: Network, sender: str, changes: dict[str, Any], reason: str) -> None:
    args = {
        "borrower": "supplier-a",
        "amounts": (100_000, 200_000),
        "due_days": (30, 30),
        "threshold": 500,
        "rate_bp": 0,
    } | changes
    net.reject(reason, sender, "creditline.open", **args)


def test_an_on_time_repayment_releases_the_next_tranche_in_the_same_transaction(
    net: Network,
) -> None:
    net.confirmed("supplier-a", 1_000_000, 200)  # score 525
    opened = open_line(net, amounts=(100_000, 200_000, 300_000), threshold=520)
    net.reject(
        "below the threshold",
        "bank-a",
        "creditline.open",
        borrower="supplier-a",
        amounts=(1,),
        due_days=(1,),
        threshold=541,
        rate_bp=0,
    )
    line_id = opened["line"]
    net.advance_to(10)
    result = net.run("supplier-a", "loan.repay", loan=opened["loan"], amount=100_000)
    second = f"loan-{line_id[3:]}-1"
    assert result == {
        "state": "REPAID",
        "line": line_id,
        "tranche": 1,
        "tranche_state": "RELEASED",
        "score": 565,
        "tranche_loan": second,
    }
    assert score(net, "supplier-a") == 565
    loan = net.get("loan/" + second)
    assert (loan["principal"], loan["due_day"], loan["state"]) == (200_000, 40, "ACTIVE")
    assert line(net, line_id)["tranches"][1]["score"] == 565
    net.advance_to(40)
    result = net.run("supplier-a", "loan.repay", loan=second, amount=200_000)
    assert result["tranche_state"] == "RELEASED"
    assert line(net, line_id)["state"] == "DRAWN"
    third = result["tranche_loan"]
    assert net.run("supplier-a", "loan.repay", loan=third, amount=300_000) == {"state": "REPAID"}
    assert [t["state"] for t in line(net, line_id)["tranches"]] == ["RELEASED"] * 3
    assert net.total_money() == GENESIS_TOTAL


def test_a_late_repayment_refuses_the_next_tranche_and_blocks_the_line(net: Network) -> None:
    opened = open_line(net, amounts=(100_000, 200_000, 300_000), threshold=500)
    line_id = opened["line"]
    net.advance_to(33)
    result = net.run("supplier-a", "loan.repay", loan=opened["loan"], amount=100_000)
    reason = "tranche 0 was not repaid by day 30; score 414 is below the threshold 500"
    assert result == {
        "state": "REPAID",
        "line": line_id,
        "tranche": 1,
        "tranche_state": "REFUSED",
        "score": 414,
        "reason": reason,
    }
    stored = line(net, line_id)
    assert stored["state"] == "BLOCKED" and stored["next"] == 2
    assert stored["tranches"][1] == {
        "amount": 200_000,
        "due_days": 30,
        "state": "REFUSED",
        "loan": None,
        "day": 33,
        "score": 414,
        "reason": reason,
    }
    assert stored["tranches"][2]["state"] == "PENDING"
    assert net.get(f"loan/loan-{line_id[3:]}-1") is None
    assert net.balance("supplier-a") == 1_000_000


def test_a_low_score_alone_refuses_the_next_tranche(net: Network) -> None:
    opened = open_line(net, borrower="supplier-c", amounts=(100_000, 100_000), due_days=(100, 100))
    overdue_loan(net)  # another loan of supplier-c marked overdue on day 61: score 450
    result = net.run("bank-a", "loan.record_repayment", loan=opened["loan"], amount=100_000)
    assert result["reason"] == "score 490 is below the threshold 500"


def test_a_bank_without_the_money_refuses_the_tranche_not_the_repayment() -> None:
    net = Network()
    opened = open_line(net, amounts=(100_000, 99_500_000), due_days=(30, 30))
    net.run(
        "bank-a",
        "loan.lend",
        borrower="supplier-b",
        principal=1_000_000,
        amount_due=1_000_000,
        due_day=50,
        receivable=None,
    )
    result = net.run("supplier-a", "loan.repay", loan=opened["loan"], amount=100_000)
    assert result["state"] == "REPAID"
    assert result["reason"] == "bank bank-a lacks the 99500000"


def test_a_written_off_tranche_refuses_the_next(net: Network) -> None:
    opened = open_line(net, amounts=(100_000, 100_000), due_days=(10, 10))
    net.advance_to(11)
    net.run("bank-a", "loan.mark_overdue", loan=opened["loan"])
    result = net.run("bank-a", "loan.write_off", loan=opened["loan"])
    assert result == {
        "line": opened["line"],
        "tranche": 1,
        "tranche_state": "REFUSED",
        "score": 248,
        "reason": "tranche 0 was not repaid by day 10; score 248 is below the threshold 500",
    }


def test_a_tranche_is_decided_once(net: Network) -> None:
    opened = open_line(net, amounts=(100_000, 100_000), due_days=(10, 10))
    net.run("supplier-a", "loan.repay", loan=opened["loan"], amount=100_000)
    net.reject("is REPAID, not open", "supplier-a", "loan.repay", loan=opened["loan"], amount=1)
    stored = line(net, opened["line"])
    assert [t["state"] for t in stored["tranches"]] == ["RELEASED", "RELEASED"]
    assert stored["state"] == "DRAWN"
    second = stored["tranches"][1]["loan"]
    assert net.run("supplier-a", "loan.repay", loan=second, amount=100_000) == {"state": "REPAID"}
    assert line(net, opened["line"]) == stored
    report = audit_report(net.state)
    (shown,) = report["tranche_lines"]
    assert shown["line"] == opened["line"] and shown["state"] == "DRAWN"
    assert [t["loan"] for t in shown["tranches"]] == [opened["loan"], second]
    assert report["open"]["tranche_lines"] == 0 and report["problems"] == []


def test_a_frozen_borrower_gets_no_line(net: Network) -> None:
    net.run("regulator", "member.freeze", member="supplier-a")
    net.reject(
        "borrower supplier-a is frozen",
        "bank-a",
        "creditline.open",
        borrower="supplier-a",
        amounts=(1,),
        due_days=(1,),
        threshold=0,
        rate_bp=0,
    )


def test_collection_cases_count_against_the_debtor(net: Network) -> None:
    loan = overdue_loan(net)
    published_task(net, loan)
    assert factors(net, "supplier-c") == history(overdue=1, collection=1)
    assert score(net, "supplier-c") == 330


def test_a_frozen_bank_or_borrower_refuses_the_tranche_not_the_repayment(net: Network) -> None:
    first = open_line(net, amounts=(100_000, 100_000), due_days=(30, 30))
    second = open_line(net, bank="bank-b", amounts=(100_000, 100_000), due_days=(30, 30))
    net.run("regulator", "member.freeze", member="bank-a")
    result = net.run("supplier-a", "loan.repay", loan=first["loan"], amount=100_000)
    assert (result["state"], result["reason"]) == ("REPAID", "bank bank-a is frozen")
    net.run("regulator", "member.freeze", member="supplier-a")
    result = net.run("bank-b", "loan.record_repayment", loan=second["loan"], amount=100_000)
    assert result["reason"] == "borrower supplier-a is frozen"
    assert net.get("cline/" + second["line"])["state"] == "BLOCKED"
