"""Values a scenario cannot write by hand: signatures, commitments, sealed boxes, fresh keys.

A helper is a map with `helper: NAME` and its fields, for instance

    confirmation: {helper: confirmation, receivable: $rcv, debtor: core, amount: 1000000,
                   due_day: $due, signed_by: core}

`unit_consent` is the same for a buyer of securitisation units (`pool.transfer_units`).

`signed_by` is a member (its key from the keys directory) or a key pair made by `keypair`, which
is how a scenario signs with the wrong key, a revoked key, or over other terms than the draft.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consortium import contracts
from consortium.config import NetworkConfig
from consortium.crypto import KeyPair, seal
from consortium.errors import RemoteError
from consortium.keys import KeyDirectory, load_keypair
from consortium.scenarios.errors import StepError

SALT_BYTES = 16


@dataclass(frozen=True, slots=True)
class HelperSpec:
    fields: frozenset[str]
    what: str


HELPERS: dict[str, HelperSpec] = {
    "confirmation": HelperSpec(
        frozenset({"receivable", "debtor", "amount", "due_day", "signed_by"}),
        "the debtor's signature confirming a receivable's terms",
    ),
    "bid_commitment": HelperSpec(
        frozenset({"task", "agency", "rate_bp", "salt"}), "the hash an agency bids with"
    ),
    "contact_commitment": HelperSpec(frozenset({"data"}), "the hash of the debtor's contact data"),
    "data_commitment": HelperSpec(
        frozenset({"data"}), "the hash of any text: a pool's loan-level data, a report"
    ),
    "unit_consent": HelperSpec(
        frozenset({"pool", "trade", "tranche", "seller", "buyer", "units", "price", "signed_by"}),
        "the buyer's signature agreeing to a transfer of pool units against payment",
    ),
    "sealed": HelperSpec(
        frozenset({"data", "to"}),
        "the data (contact or loan-level) sealed to each listed member's key",
    ),
    "salt": HelperSpec(frozenset(), f"{SALT_BYTES} random bytes"),
    "keypair": HelperSpec(frozenset(), "a fresh ed25519 key pair, not in the keys directory"),
}


class KeyRing:
    """Members' keys from the keys directory, read once each."""

    def __init__(self, config: NetworkConfig, keys: KeyDirectory) -> None:
        self.config = config
        self.public_keys = keys.member_keys
        self._private: dict[str, KeyPair] = {}

    def private(self, member_id: str) -> KeyPair:
        if member_id not in self._private:
            try:
                self._private[member_id] = load_keypair(self.config, member_id, "member")
            except RemoteError as exc:
                raise StepError(str(exc)) from None
        return self._private[member_id]

    def public(self, member_id: str) -> bytes:
        if member_id not in self.public_keys:
            raise StepError(f"no public key of {member_id!r} in {self.config.keys_dir}")
        return self.public_keys[member_id]


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str):
        raise StepError(f"{name} must be text, got {value!r:.40}")
    return value


def _integer(fields: dict[str, Any], name: str) -> int:
    value = fields[name]
    if type(value) is not int:
        raise StepError(f"{name} must be an integer, got {value!r:.40}")
    return value


def _signer(ring: KeyRing, value: Any) -> KeyPair:
    if isinstance(value, KeyPair):
        return value
    if isinstance(value, str):
        return ring.private(value)
    raise StepError(f"signed_by must be a member or a key pair, got {value!r:.40}")


def make_helper_call(ring: KeyRing) -> Callable[[str, dict[str, Any]], Any]:
    """The function `Values` calls for `{helper: NAME, ...}` maps."""

    def call(name: Any, fields: dict[str, Any]) -> Any:
        spec = HELPERS.get(name) if isinstance(name, str) else None
        if spec is None:
            raise StepError(f"unknown helper {name!r} (one of {', '.join(sorted(HELPERS))})")
        if set(fields) != spec.fields:
            raise StepError(f"helper {name} takes {', '.join(sorted(spec.fields)) or 'nothing'}")
        if name == "confirmation":
            statement = contracts.confirmation_statement(
                _text(fields, "receivable"),
                _text(fields, "debtor"),
                _integer(fields, "amount"),
                _integer(fields, "due_day"),
            )
            return _signer(ring, fields["signed_by"]).sign(statement)
        if name == "bid_commitment":
            salt = fields["salt"]
            if not isinstance(salt, bytes):
                raise StepError("salt must be bytes (bind one with {helper: salt})")
            return contracts.bid_commitment(
                _text(fields, "task"), _text(fields, "agency"), _integer(fields, "rate_bp"), salt
            )
        if name in ("contact_commitment", "data_commitment"):
            return contracts.contact_commitment(_text(fields, "data").encode())
        if name == "unit_consent":
            statement = contracts.transfer_statement(
                _text(fields, "pool"),
                _text(fields, "trade"),
                _text(fields, "tranche"),
                _text(fields, "seller"),
                _text(fields, "buyer"),
                _integer(fields, "units"),
                _integer(fields, "price"),
            )
            return _signer(ring, fields["signed_by"]).sign(statement)
        if name == "sealed":
            recipients = fields["to"]
            if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
                raise StepError("to must be a list of members")
            data = _text(fields, "data").encode()
            return {member: seal(ring.public(member), data) for member in sorted(recipients)}
        if name == "salt":
            return secrets.token_bytes(SALT_BYTES)
        return KeyPair.generate()

    return call
