"""The small value language of scenario files, so a step can refer to what earlier steps made.

    $rcv              a variable (saved from a result, or bound by `let`)
    $parts.0          an element of a saved list; $key.public_key the public key of a key pair
    today+90          the current business day plus 90; any sum of today, $variables and integers
    core-x-${run}     text with a variable's value inserted (`run` is unique to this run)
    0x00ff            bytes
    {helper: ...}     a value computed by a helper (see `helpers.py`)

Anything else is taken literally. Names are checked at load time: a step may only use
variables bound by an earlier step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from consortium.crypto import KeyPair
from consortium.scenarios.errors import StepError

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TERM = rf"(?:today|\${NAME}(?:\.[A-Za-z0-9_]+)*|\d[\d_]*)"
_EXPRESSION = re.compile(rf"\s*{_TERM}(?:\s*[+-]\s*{_TERM})*\s*")
_TOKEN = re.compile(rf"([+-])|({_TERM})")
_VARIABLE = re.compile(rf"\$({NAME})")
_INTERPOLATION = re.compile(rf"\$\{{({NAME})\}}")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})+")
BUILTIN_NAMES = frozenset({"run"})
HELPER_KEY = "helper"

HelperCall = Callable[[str, dict[str, Any]], Any]


def is_expression(text: str) -> bool:
    """True if `text` is a sum to evaluate rather than literal text."""
    return _EXPRESSION.fullmatch(text) is not None and ("today" in text or "$" in text)


def names_used(value: Any) -> Iterator[str]:
    """Every variable name `value` refers to, for the loader's check that it is bound earlier."""
    if isinstance(value, str):
        if is_expression(value):
            yield from _VARIABLE.findall(value)
        else:
            yield from _INTERPOLATION.findall(value)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from names_used(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from names_used(item)


class Values:
    """The variables of one scenario run and the business day, and the resolution of values."""

    def __init__(self, run_id: str, today: int, call_helper: HelperCall) -> None:
        self.variables: dict[str, Any] = {"run": run_id}
        self.today = today
        self.call_helper = call_helper

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            return self._text(value, where)
        if isinstance(value, list | tuple):
            return [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            resolved = {key: self.resolve(item, f"{where}.{key}") for key, item in value.items()}
            if HELPER_KEY in resolved:
                name = resolved.pop(HELPER_KEY)
                return self.call_helper(name, resolved)
            return resolved
        return value

    def _text(self, text: str, where: str) -> Any:
        if is_expression(text):
            return self._sum(text, where)
        if _HEX.fullmatch(text):
            return bytes.fromhex(text[2:])
        return _INTERPOLATION.sub(lambda m: str(self._variable(m.group(1), where)), text)

    def _sum(self, text: str, where: str) -> Any:
        terms: list[tuple[str, Any]] = []
        sign = "+"
        for match in _TOKEN.finditer(text):
            if match.group(1):
                sign = match.group(1)
            else:
                terms.append((sign, self._term(match.group(2), where)))
                sign = "+"
        if len(terms) == 1 and terms[0][0] == "+":
            return terms[0][1]
        total = 0
        for sign, term in terms:
            if type(term) is not int:
                raise StepError(f"{where}: {text!r} adds {type(term).__name__}, not integers")
            total += term if sign == "+" else -term
        return total

    def _term(self, term: str, where: str) -> Any:
        if term == "today":
            return self.today
        if term[0] != "$":
            return int(term.replace("_", ""))
        name, *path = term[1:].split(".")
        value = self._variable(name, where)
        for part in path:
            value = _step_into(value, part, f"{where}: ${'.'.join([name, *path])}")
        return value

    def _variable(self, name: str, where: str) -> Any:
        if name not in self.variables:
            raise StepError(f"{where}: ${name} is not set")
        return self.variables[name]


def _step_into(value: Any, part: str, what: str) -> Any:
    if isinstance(value, KeyPair) and part == "public_key":
        return value.public_key
    if isinstance(value, list | tuple) and part.isdigit() and int(part) < len(value):
        return value[int(part)]
    if isinstance(value, dict) and part in value:
        return value[part]
    raise StepError(f"{what}: no {part!r} in {type(value).__name__} {value!r:.60}")


def lookup(value: Any, path: str, what: str) -> Any:
    """`path` (dotted, as in `save:`) inside a transaction's result."""
    for part in path.split("."):
        value = _step_into(value, part, what)
    return value
