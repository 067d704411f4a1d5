"""Reading scenario files: YAML checked as a whole before anything is sent to the network.

A mistake in a file (an unknown field, a missing expectation, a variable used before a step
binds it) is reported as `ScenarioFileError` naming the file, the step and the field, so a
scenario never half-runs because of a typo. The built-in scenarios live in `data/` as the same
YAML a user may copy, edit and run.
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path
from typing import Any

import yaml

from consortium.contracts import OPERATIONS
from consortium.scenarios.errors import ScenarioFileError
from consortium.scenarios.expressions import BUILTIN_NAMES, NAME, names_used
from consortium.scenarios.helpers import HELPERS
from consortium.scenarios.model import (
    CHECK_KINDS,
    CheckStep,
    Expectation,
    LetStep,
    Scenario,
    Step,
    TogetherStep,
    TxStep,
)

_TX_FIELDS = {"name", "as", "via", "op", "args", "expect", "save", "result", "signed_with"}
_CHECK_FIELDS: dict[str, set[str]] = {
    "records": {"records"},
    "balances": {"changes"},
    "audit": {"open_unchanged", "lists_rejections"},
    "contact_data": {"task", "data", "readers", "via"},
    "pool_data": {"pool", "data", "readers", "via"},
}
_READABILITY = ("readable", "unreadable")


class _Checker:
    """Validates one file, remembering which variables earlier steps bind."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.bound: set[str] = set(BUILTIN_NAMES)

    def fail(self, where: str, message: str) -> ScenarioFileError:
        return ScenarioFileError(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise self.fail(where, f"must be a mapping, got {type(value).__name__}")
        return value

    def text(self, raw: dict[str, Any], key: str, where: str, required: bool = True) -> str:
        if key not in raw:
            if required:
                raise self.fail(where, f"missing field '{key}'")
            return ""
        value = raw[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", f"must be non-empty text, got {value!r:.40}")
        return value

    def known_fields(self, raw: dict[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise self.fail(
                where, f"unknown field '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})"
            )

    def uses(self, value: Any, where: str) -> None:
        """Every `$name` in `value` must be bound by an earlier step; every helper known."""
        for name in names_used(value):
            if name not in self.bound:
                raise self.fail(where, f"${name} is not set by an earlier step")
        self._helpers(value, where)

    def _helpers(self, value: Any, where: str) -> None:
        if isinstance(value, list):
            for i, item in enumerate(value):
                self._helpers(item, f"{where}[{i}]")
        elif isinstance(value, dict):
            if "helper" in value:
                spec = HELPERS.get(value["helper"]) if isinstance(value["helper"], str) else None
                if spec is None:
                    raise self.fail(
                        f"{where}.helper",
                        f"unknown helper {value['helper']!r} (one of {', '.join(sorted(HELPERS))})",
                    )
                given = set(value) - {"helper"}
                if given != spec.fields:
                    wanted = ", ".join(sorted(spec.fields)) or "no fields"
                    raise self.fail(where, f"helper {value['helper']} takes {wanted}")
            for key, item in value.items():
                self._helpers(item, f"{where}.{key}")

    def bind(self, name: Any, where: str) -> str:
        if not isinstance(name, str) or re.fullmatch(NAME, name) is None:
            raise self.fail(where, f"{name!r} is not a variable name (letters, digits, _)")
        if name in BUILTIN_NAMES:
            raise self.fail(where, f"${name} is built in and cannot be set")
        return name

    def expectation(self, raw: dict[str, Any], where: str) -> Expectation:
        if "expect" not in raw:
            raise self.fail(where, "missing field 'expect' (committed, or {rejected: reason})")
        value = raw["expect"]
        if value == "committed":
            return Expectation(True)
        if (
            isinstance(value, dict)
            and set(value) == {"rejected"}
            and isinstance(value["rejected"], str)
            and value["rejected"].strip()
        ):
            return Expectation(False, value["rejected"])
        raise self.fail(
            f"{where}.expect", f"must be 'committed' or {{rejected: reason}}, got {value!r:.60}"
        )

    def tx_step(self, raw: dict[str, Any], where: str) -> TxStep:
        self.known_fields(raw, _TX_FIELDS, where)
        name = self.text(raw, "name", where)
        where = f"{where} ({name})"
        op = self.text(raw, "op", where)
        if op not in OPERATIONS:
            raise self.fail(f"{where}.op", f"unknown operation {op!r}")
        args = self.mapping(raw.get("args", {}), f"{where}.args")
        self.uses(args, f"{where}.args")
        actor = self.text(raw, "as", where)
        self.uses(actor, f"{where}.as")
        signed_with = raw.get("signed_with")
        if signed_with is not None:
            self.text(raw, "signed_with", where)
            self.uses(signed_with, f"{where}.signed_with")
        result = self.mapping(raw.get("result", {}), f"{where}.result")
        self.uses(result, f"{where}.result")
        expect = self.expectation(raw, where)
        save = self.mapping(raw.get("save", {}), f"{where}.save")
        for path in save.values():
            if not isinstance(path, str) or not path:
                raise self.fail(f"{where}.save", f"a result path must be text, got {path!r}")
        if save and not expect.committed:
            raise self.fail(f"{where}.save", "a rejected transaction has no result to save")
        return TxStep(
            where=where,
            name=name,
            actor=actor,
            via=self.text(raw, "via", where),
            op=op,
            args=args,
            expect=expect,
            save={self.bind(key, f"{where}.save"): path for key, path in save.items()},
            result=result,
            signed_with=signed_with,
        )

    def step(self, raw: Any, where: str) -> Step:
        raw = self.mapping(raw, where)
        if "let" in raw:
            self.known_fields(raw, {"let", "name"}, where)
            bindings = self.mapping(raw["let"], f"{where}.let")
            if not bindings:
                raise self.fail(f"{where}.let", "binds nothing")
            for key, value in bindings.items():
                self.uses(value, f"{where}.let.{key}")
                self.bound.add(self.bind(key, f"{where}.let"))
            name = raw.get("name") or "let " + ", ".join(bindings)
            return LetStep(where, str(name), dict(bindings))
        if "together" in raw:
            self.known_fields(raw, {"name", "together", "same_block"}, where)
            name = self.text(raw, "name", where)
            items = raw["together"]
            if not isinstance(items, list) or len(items) < 2:
                raise self.fail(f"{where}.together", "must list at least two transactions")
            steps = []
            saved: set[str] = set()
            for i, item in enumerate(items):
                inner = self.tx_step(self.mapping(item, f"{where}.together[{i}]"), f"{where}[{i}]")
                saved |= set(inner.save)
                steps.append(inner)
            self.bound |= saved
            same_block = raw.get("same_block", True)
            if not isinstance(same_block, bool):
                raise self.fail(f"{where}.same_block", "must be true or false")
            return TogetherStep(f"{where} ({name})", name, tuple(steps), same_block)
        if "check" in raw:
            kind = raw["check"]
            if kind not in CHECK_KINDS:
                raise self.fail(f"{where}.check", f"must be one of {', '.join(CHECK_KINDS)}")
            self.known_fields(raw, {"name", "check", *_CHECK_FIELDS[kind]}, where)
            name = self.text(raw, "name", where)
            where = f"{where} ({name})"
            spec = {key: raw[key] for key in _CHECK_FIELDS[kind] if key in raw}
            self.check_spec(kind, spec, where)
            return CheckStep(where, name, kind, spec)
        step = self.tx_step(raw, where)
        self.bound |= set(step.save)
        return step

    def check_spec(self, kind: str, spec: dict[str, Any], where: str) -> None:
        self.uses(spec, where)
        if kind == "records":
            records = spec.get("records")
            if not isinstance(records, list) or not records:
                raise self.fail(f"{where}.records", "must list records as {id: ..., field: value}")
            for i, record in enumerate(records):
                if not isinstance(record, dict) or "id" not in record or len(record) < 2:
                    raise self.fail(f"{where}.records[{i}]", "needs an id and a field to compare")
        elif kind == "balances":
            changes = self.mapping(spec.get("changes"), f"{where}.changes")
            for member, change in changes.items():
                if type(change) is not int:
                    raise self.fail(f"{where}.changes.{member}", "must be an integer change")
        elif kind == "audit":
            for key in _CHECK_FIELDS["audit"]:
                if not isinstance(spec.get(key, False), bool):
                    raise self.fail(f"{where}.{key}", "must be true or false")
        else:
            for key in ("task" if kind == "contact_data" else "pool", "data", "readers"):
                if key not in spec:
                    raise self.fail(where, f"missing field '{key}'")
            readers = self.mapping(spec["readers"], f"{where}.readers")
            for member, verdict in readers.items():
                if verdict not in _READABILITY:
                    raise self.fail(
                        f"{where}.readers.{member}", "must be 'readable' or 'unreadable'"
                    )

    def scenario(self, raw: Any) -> Scenario:
        raw = self.mapping(raw, "scenario")
        self.known_fields(raw, {"name", "title", "story", "steps"}, "scenario")
        name = self.text(raw, "name", "scenario")
        steps_raw = raw.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            raise self.fail("scenario", "'steps' must be a non-empty list")
        steps = tuple(self.step(item, f"steps[{i}]") for i, item in enumerate(steps_raw))
        return Scenario(
            name=name,
            title=self.text(raw, "title", "scenario", required=False) or name,
            story=" ".join(self.text(raw, "story", "scenario", required=False).split()),
            steps=steps,
            source=self.source,
        )


def parse_scenario(text: str, source: str) -> Scenario:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioFileError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    return _Checker(source).scenario(raw)


def load_file(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioFileError(f"cannot read {path}: {exc.strerror}") from None
    return parse_scenario(text, str(path))


def builtin_sources() -> dict[str, str]:
    """File name -> YAML text of the shipped scenarios, in the order they tell the story."""
    folder = importlib.resources.files("consortium.scenarios") / "data"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".yaml")),
        key=lambda entry: entry.name,
    )
    return {entry.name: entry.read_text(encoding="utf-8") for entry in files}


def builtin_scenarios() -> list[Scenario]:
    return [parse_scenario(text, f"built-in {name}") for name, text in builtin_sources().items()]


def resolve(name_or_file: str) -> list[Scenario]:
    """`all`, a built-in scenario's name, or a path to a YAML file."""
    builtins = builtin_scenarios()
    if name_or_file == "all":
        return builtins
    for scenario in builtins:
        if scenario.name == name_or_file:
            return [scenario]
    path = Path(name_or_file)
    if path.exists() or name_or_file.endswith((".yaml", ".yml")):
        return [load_file(path)]
    names = ", ".join(s.name for s in builtins)
    raise ScenarioFileError(f"no scenario {name_or_file!r}: give all, one of {names}, or a file")


def builtin_source(name: str) -> str:
    """The YAML text of a built-in scenario, to copy and edit."""
    for file_name, text in builtin_sources().items():
        if parse_scenario(text, file_name).name == name:
            return text
    raise ScenarioFileError(f"no built-in scenario {name!r}")
