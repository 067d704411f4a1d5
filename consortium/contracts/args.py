"""Typed reading of a transaction's arguments, which arrive from the network as any codec value.

Every accessor either returns a value of the promised type and range or raises `RuleViolation`,
so the business rules never see a bool where an int is meant, an unknown key, or a missing one.
"""

from __future__ import annotations

import re
from typing import Any

from consortium.contracts.context import RuleViolation

MAX_AMOUNT = 10**15
"""Largest amount in one argument: far above any real invoice, far below msgpack's 64-bit limit."""
MAX_DAY = 10**7
MAX_ID_LENGTH = 64
MEMBER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
OBJECT_ID = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")


def shown(value: Any, limit: int = 40) -> str:
    """A short printable form of an untrusted value for a rejection reason."""
    if type(value) is int and value.bit_length() > 64:
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_utf8(text: str) -> bool:
    """False for strings with lone surrogates, which no codec value can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Args:
    """The arguments of one call to `op`, checked to have exactly the parameter names."""

    __slots__ = ("_op", "_raw")

    def __init__(self, op: str, raw: Any, names: frozenset[str]) -> None:
        if not isinstance(raw, dict):
            raise RuleViolation(f"{op}: arguments must be a map, not {type(raw).__name__}")
        if raw.keys() != names:
            missing = sorted(n for n in names if n not in raw)
            extra = sorted(shown(k) for k in raw if k not in names)
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if extra:
                parts.append("unexpected " + ", ".join(extra))
            raise RuleViolation(f"{op}: " + "; ".join(parts))
        self._op = op
        self._raw = raw

    def _fail(self, name: str, what: str) -> RuleViolation:
        return RuleViolation(f"{self._op}: {name} {what}, got {shown(self._raw[name])}")

    def integer(self, name: str, low: int, high: int) -> int:
        value = self._raw[name]
        if type(value) is not int or not low <= value <= high:
            raise self._fail(name, f"must be an integer from {low} to {high}")
        return value

    def amount(self, name: str) -> int:
        """A positive amount in the smallest currency unit."""
        return self.integer(name, 1, MAX_AMOUNT)

    def day(self, name: str) -> int:
        return self.integer(name, 0, MAX_DAY)

    def member(self, name: str) -> str:
        value = self._raw[name]
        if type(value) is not str or MEMBER_ID.fullmatch(value) is None:
            raise self._fail(name, "must be a member id")
        return value

    def object_id(self, name: str) -> str:
        value = self._raw[name]
        if type(value) is not str or OBJECT_ID.fullmatch(value) is None:
            raise self._fail(name, "must be an object id")
        return value

    def optional_object_id(self, name: str) -> str | None:
        return None if self._raw[name] is None else self.object_id(name)

    def text(self, name: str, max_length: int) -> str:
        value = self._raw[name]
        if type(value) is not str or not 0 < len(value) <= max_length or not _is_utf8(value):
            raise self._fail(name, f"must be a text of 1 to {max_length} characters")
        return value

    def blob(self, name: str, min_length: int, max_length: int) -> bytes:
        value = self._raw[name]
        if type(value) is not bytes or not min_length <= len(value) <= max_length:
            raise self._fail(name, f"must be {min_length} to {max_length} bytes")
        return value

    def integers(self, name: str, max_items: int, low: int, high: int) -> tuple[int, ...]:
        """A list of 1 to `max_items` integers, each from `low` to `high`."""
        value = self._raw[name]
        if (
            not isinstance(value, tuple | list)
            or not 0 < len(value) <= max_items
            or any(type(v) is not int or not low <= v <= high for v in value)
        ):
            raise self._fail(
                name, f"must be a list of 1 to {max_items} integers from {low} to {high}"
            )
        return tuple(value)

    def object_ids(self, name: str, max_items: int) -> tuple[str, ...]:
        """A list of 1 to `max_items` distinct object ids."""
        value = self._raw[name]
        if (
            not isinstance(value, tuple | list)
            or not 0 < len(value) <= max_items
            or any(type(v) is not str or OBJECT_ID.fullmatch(v) is None for v in value)
            or len(set(value)) != len(value)
        ):
            raise self._fail(name, f"must be a list of 1 to {max_items} distinct object ids")
        return tuple(value)

    def texts(self, name: str, max_items: int, max_length: int) -> tuple[str, ...]:
        """A list of 1 to `max_items` texts of 1 to `max_length` characters."""
        value = self._raw[name]
        if (
            not isinstance(value, tuple | list)
            or not 0 < len(value) <= max_items
            or any(
                type(v) is not str or not 0 < len(v) <= max_length or not _is_utf8(v) for v in value
            )
        ):
            raise self._fail(
                name, f"must be a list of 1 to {max_items} texts of 1 to {max_length} characters"
            )
        return tuple(value)

    def optional_integers(
        self, name: str, max_items: int, low: int, high: int
    ) -> tuple[int, ...] | None:
        return None if self._raw[name] is None else self.integers(name, max_items, low, high)

    def tranche_terms(
        self, name: str, max_items: int, max_name: int, max_units: int, max_coupon_bp: int
    ) -> tuple[tuple[str, int, int, int], ...]:
        """A list of [name, size, units, coupon in bp] per tranche, as a pool is structured."""
        value = self._raw[name]
        if not isinstance(value, tuple | list) or not 0 < len(value) <= max_items:
            raise self._fail(
                name, f"must be a list of 1 to {max_items} [name, size, units, coupon_bp]"
            )
        terms = []
        for item in value:
            if (
                not isinstance(item, tuple | list)
                or len(item) != 4
                or type(item[0]) is not str
                or not 0 < len(item[0]) <= max_name
                or not _is_utf8(item[0])
                or any(type(n) is not int for n in item[1:])
                or not 0 < item[1] <= MAX_AMOUNT
                or not 0 < item[2] <= max_units
                or not 0 <= item[3] <= max_coupon_bp
            ):
                raise RuleViolation(
                    f"{self._op}: each tranche of {name} must be [name of 1 to {max_name} "
                    f"characters, size, units from 1 to {max_units}, coupon from 0 to "
                    f"{max_coupon_bp} bp], got {shown(item)}"
                )
            terms.append((item[0], item[1], item[2], item[3]))
        return tuple(terms)

    def allocation(self, name: str, max_parts: int) -> tuple[tuple[str, int], ...]:
        """A list of (member id, positive amount) pairs, as used to split a receivable."""
        value = self._raw[name]
        if not isinstance(value, tuple | list) or not 2 <= len(value) <= max_parts:
            raise self._fail(name, f"must be a list of 2 to {max_parts} [member, amount] pairs")
        parts = []
        for part in value:
            if (
                not isinstance(part, tuple | list)
                or len(part) != 2
                or type(part[0]) is not str
                or MEMBER_ID.fullmatch(part[0]) is None
                or type(part[1]) is not int
                or not 0 < part[1] <= MAX_AMOUNT
            ):
                raise RuleViolation(
                    f"{self._op}: each part of {name} must be [member id, positive amount], "
                    f"got {shown(part)}"
                )
            parts.append((part[0], part[1]))
        return tuple(parts)

    def blobs_by_member(self, name: str, max_members: int, max_length: int) -> dict[str, bytes]:
        """A map from member id to a byte string (sealed boxes, one per recipient)."""
        value = self._raw[name]
        if not isinstance(value, dict) or not 0 < len(value) <= max_members:
            raise self._fail(name, f"must be a map of 1 to {max_members} members to bytes")
        out = {}
        for key, blob in value.items():
            if type(key) is not str or MEMBER_ID.fullmatch(key) is None:
                raise RuleViolation(f"{self._op}: {name} key {shown(key)} is not a member id")
            if type(blob) is not bytes or not 0 < len(blob) <= max_length:
                raise RuleViolation(f"{self._op}: {name}[{key}] must be 1 to {max_length} bytes")
            out[key] = blob
        return {key: out[key] for key in sorted(out)}
