"""Scenario files: the loader names the step and field of any mistake, values resolve as
documented, and the helpers make what the contracts check (signatures, commitments, boxes)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from consortium import contracts
from consortium.cli.common import ConsortiumGroup
from consortium.cli.scenario_cmd import scenario
from consortium.crypto import KeyPair, verify
from consortium.devnet import make_devnet
from consortium.errors import SignatureError
from consortium.scenarios.errors import ScenarioFileError, StepError
from consortium.scenarios.expressions import Values
from consortium.scenarios.helpers import KeyRing, make_helper_call
from consortium.scenarios.loader import builtin_scenarios, builtin_source, parse_scenario, resolve
from consortium.scenarios.model import CheckStep, LetStep, TogetherStep, TxStep

DRAFT = """
  - name: draft
    as: supplier-a
    via: bank-a
    op: receivable.draft
    args: {debtor: core, amount: 100, due_day: today+90}
    expect: committed
    save: {rcv: receivable}
"""


def scenario_text(steps: str) -> str:
    return "name: sample\nsteps:\n" + textwrap.dedent(steps).strip("\n") + "\n"


def load_error(steps: str) -> str:
    with pytest.raises(ScenarioFileError) as caught:
        parse_scenario(scenario_text(steps), "sample.yaml")
    return str(caught.value)


def test_the_built_in_scenarios_load_in_story_order():
    scenarios = builtin_scenarios()
    assert [s.name for s in scenarios] == [
        "happy-path",
        "double-financing",
        "forged-confirmation",
        "default-to-collection",
        "repayment-and-freeze",
        "warehouse-receipt-loan",
        "tranche-credit-line",
        "securitisation",
    ]
    kinds = {type(step) for s in scenarios for step in s.steps}
    assert kinds == {TxStep, TogetherStep, LetStep, CheckStep}
    assert "happy-path" in builtin_source("happy-path")


def test_a_well_formed_file_loads_with_its_steps():
    loaded = parse_scenario(scenario_text(DRAFT), "sample.yaml")
    (step,) = loaded.steps
    assert isinstance(step, TxStep)
    assert (step.actor, step.via, step.op, step.save) == (
        "supplier-a",
        "bank-a",
        "receivable.draft",
        {"rcv": "receivable"},
    )
    assert step.expect.describe() == "committed"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            "- {name: draft, as: supplier-a, via: bank-a, op: receivable.draft}",
            "steps[0] (draft): missing field 'expect'",
        ),
        (
            "- {name: draft, as: supplier-a, via: bank-a, op: receivable.fly, expect: committed}",
            "steps[0] (draft).op: unknown operation 'receivable.fly'",
        ),
        (
            "- {name: pledge, as: supplier-a, via: bank-a, op: receivable.pledge,"
            " args: {receivable: $rcv, bank: bank-a}, expect: committed}",
            "steps[0] (pledge).args: $rcv is not set by an earlier step",
        ),
        (
            "- {name: draft, as: supplier-a, via: bank-a, op: clock.advance, expect: maybe}",
            "steps[0] (draft).expect: must be 'committed' or {rejected: reason}",
        ),
        (
            "- {name: draft, as: supplier-a, op: clock.advance, expect: committed, via: core,"
            " colour: red}",
            "steps[0]: unknown field 'colour'",
        ),
        (
            "- {name: x, as: core, via: core, op: receivable.confirm, expect: committed,"
            " args: {confirmation: {helper: signature}}}",
            "steps[0] (x).args.confirmation.helper: unknown helper 'signature'",
        ),
        (
            "- {name: x, as: core, via: core, op: receivable.confirm, expect: committed,"
            " args: {confirmation: {helper: confirmation, receivable: r}}}",
            "steps[0] (x).args.confirmation: helper confirmation takes amount, debtor,",
        ),
        (
            "- {name: x, as: core, via: core, op: clock.advance, expect: {rejected: frozen},"
            " save: {day: day}}",
            "steps[0] (x).save: a rejected transaction has no result to save",
        ),
        ("- {name: look, check: everything}", "steps[0].check: must be one of records"),
        (
            "- {name: look, check: contact_data, task: t, data: d, readers: {agency: maybe}}",
            "steps[0] (look).readers.agency: must be 'readable' or 'unreadable'",
        ),
        (
            "- {name: look, check: pool_data, data: d, readers: {rating-1: readable}}",
            "steps[0] (look): missing field 'pool'",
        ),
        (
            "- {name: look, check: pool_data, pool: p, task: t, data: d, readers: {}}",
            "steps[0]: unknown field 'task' (allowed: check, data, name, pool, readers, via)",
        ),
        ("- {let: {run: 1}}", "steps[0].let: $run is built in"),
        ("- {name: both, together: []}", "steps[0].together: must list at least two"),
    ],
)
def test_a_malformed_step_is_reported_with_its_step_and_field(steps: str, message: str):
    assert f"sample.yaml: {message}" in load_error(steps)


def test_a_mistake_in_a_later_step_names_that_step():
    message = load_error(DRAFT + "\n  - {name: confirm it, as: core, via: core, op: x.y}\n")
    assert "steps[1] (confirm it).op: unknown operation 'x.y'" in message


def test_bad_yaml_and_missing_steps_are_clear_errors():
    with pytest.raises(ScenarioFileError, match=r"sample\.yaml: not valid YAML"):
        parse_scenario("name: [unclosed", "sample.yaml")
    with pytest.raises(ScenarioFileError, match="'steps' must be a non-empty list"):
        parse_scenario("name: empty\nsteps: []\n", "sample.yaml")


def test_resolve_takes_all_a_name_or_a_file(tmp_path: Path):
    assert len(resolve("all")) == 8
    assert [s.name for s in resolve("double-financing")] == ["double-financing"]
    path = tmp_path / "mine.yaml"
    path.write_text(scenario_text(DRAFT))
    assert resolve(str(path))[0].source == str(path)
    with pytest.raises(ScenarioFileError, match="no scenario 'nonsense'"):
        resolve("nonsense")
    with pytest.raises(ScenarioFileError, match="cannot read"):
        resolve(str(tmp_path / "missing.yaml"))


def test_values_resolve_variables_day_arithmetic_and_text():
    values = Values("ab12cd", 10, lambda name, fields: (name, fields))
    values.variables |= {"due": 100, "parts": ("rcv-1", "rcv-2")}
    assert values.resolve("today+90", "x") == 100
    assert values.resolve("$due-today+31", "x") == 121
    assert values.resolve("$parts.1", "x") == "rcv-2"
    assert values.resolve("core-x-${run}", "x") == "core-x-ab12cd"
    assert values.resolve("0x00ff", "x") == b"\x00\xff"
    assert values.resolve("phoned the debtor today", "x") == "phoned the debtor today"
    assert values.resolve({"helper": "salt"}, "x") == ("salt", {})
    with pytest.raises(StepError, match=r"x: \$nothing is not set"):
        values.resolve("$nothing", "x")
    with pytest.raises(StepError, match="no '5'"):
        values.resolve("$parts.5", "x")


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    net = make_devnet(tmp_path_factory.mktemp("keys"))
    return KeyRing(net.config, net.keys)


def test_the_confirmation_helper_signs_the_contract_statement(ring: KeyRing):
    call = make_helper_call(ring)
    fields = {"receivable": "rcv-1", "debtor": "core", "amount": 500, "due_day": 90}
    statement = contracts.confirmation_statement("rcv-1", "core", 500, 90)
    by_core = call("confirmation", fields | {"signed_by": "core"})
    assert verify(ring.public("core"), statement, by_core)
    by_supplier = call("confirmation", fields | {"signed_by": "supplier-a"})
    assert not verify(ring.public("core"), statement, by_supplier)
    other_terms = call("confirmation", fields | {"amount": 600, "signed_by": "core"})
    assert not verify(ring.public("core"), statement, other_terms)
    fresh = call("keypair", {})
    assert verify(fresh.public_key, statement, call("confirmation", fields | {"signed_by": fresh}))


def test_commitment_helpers_match_the_contracts(ring: KeyRing):
    call = make_helper_call(ring)
    salt = call("salt", {})
    assert len(salt) == 16 and salt != call("salt", {})
    fields = {"task": "task-1", "agency": "agency", "rate_bp": 800, "salt": salt}
    assert call("bid_commitment", fields) == contracts.bid_commitment("task-1", "agency", 800, salt)
    assert call("contact_commitment", {"data": "Li"}) == contracts.contact_commitment(b"Li")
    with pytest.raises(StepError, match="salt must be bytes"):
        call("bid_commitment", fields | {"salt": "pepper"})


def test_the_unit_consent_helper_signs_the_transfer_statement(ring: KeyRing):
    call = make_helper_call(ring)
    terms = {
        "pool": "pool-1",
        "trade": "t-1",
        "tranche": "senior",
        "seller": "investor-1",
        "buyer": "investor-3",
        "units": 400,
        "price": 70_000,
    }
    statement = contracts.transfer_statement(*list(terms.values()))
    assert verify(
        ring.public("investor-3"),
        statement,
        call("unit_consent", terms | {"signed_by": "investor-3"}),
    )
    other = call("unit_consent", terms | {"price": 1, "signed_by": "investor-3"})
    assert not verify(ring.public("investor-3"), statement, other)
    assert call("data_commitment", {"data": "tape"}) == contracts.contact_commitment(b"tape")


def test_sealed_boxes_open_only_for_their_recipients(ring: KeyRing):
    boxes = make_helper_call(ring)("sealed", {"data": "Li Wei", "to": ["agency", "regulator"]})
    assert sorted(boxes) == ["agency", "regulator"]
    assert ring.private("agency").open_sealed(boxes["agency"]) == b"Li Wei"
    assert ring.private("regulator").open_sealed(boxes["regulator"]) == b"Li Wei"
    for outsider in ("agency-2", "bank-b"):
        for box in boxes.values():
            with pytest.raises(SignatureError):
                ring.private(outsider).open_sealed(box)
    assert isinstance(KeyPair.generate(), KeyPair)


def test_scenario_run_of_a_malformed_file_exits_with_a_one_line_error(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text(scenario_text("- {name: draft, as: supplier-a, via: bank-a, op: x.y}"))
    group = ConsortiumGroup(commands={"scenario": scenario})
    result = CliRunner().invoke(group, ["scenario", "run", str(path)])
    assert result.exit_code != 0
    assert "broken.yaml: steps[0] (draft).op: unknown operation 'x.y'" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_scenario_list_and_show(tmp_path: Path):
    group = click.Group(commands={"scenario": scenario})
    listed = CliRunner().invoke(group, ["scenario", "list", "--json"])
    assert listed.exit_code == 0
    assert "default-to-collection" in listed.output
    shown = CliRunner().invoke(group, ["scenario", "show", "happy-path"])
    copy = tmp_path / "copy.yaml"
    copy.write_text(shown.output)
    assert resolve(str(copy))[0].name == "happy-path"
