"""Who may act: members, their roles, their current business keys, revoked keys, and freezes.

A member signs transactions with its current key only. Rotating records the old key as revoked in
the `pubkey/` index, and a key found there (revoked or in use) can never be registered again, so a
leaked old key stays useless for good. The regulator cannot be frozen, so unfreeze stays possible.
"""

from __future__ import annotations

from dataclasses import dataclass

from consortium.contracts import records
from consortium.contracts.args import Args
from consortium.contracts.context import RuleViolation, StateView, TxContext
from consortium.contracts.records import Member, PublicKeyEntry
from consortium.crypto import PUBLIC_KEY_BYTES
from consortium.roles import ROLES, Role


@dataclass(slots=True)
class Caller:
    """The authenticated, unfrozen sender of the transaction being executed. Read only (not
    `frozen`: one is built per transaction on the hot path)."""

    id: str
    role: str


def member(view: StateView, member_id: str) -> Member | None:
    return view.get(records.MEMBER + member_id)


def caller(view: StateView, sender: str) -> Caller:
    """The sender as a `Caller`; a non-member or a frozen member may do nothing at all."""
    record = member(view, sender)
    if record is None:
        raise RuleViolation(f"{sender} is not a member")
    if record["frozen"]:
        raise RuleViolation(f"{sender} is frozen by the regulator")
    return Caller(sender, record["role"])


def member_of_role(view: StateView, member_id: str, role: str, as_what: str) -> Member:
    record = member(view, member_id)
    if record is None or record["role"] != role:
        raise RuleViolation(f"{as_what} {member_id} is not a {role}")
    return record


def active_member(view: StateView, member_id: str, role: str, as_what: str) -> Member:
    """A member of `role` that is not frozen, to be taken on as a counterparty."""
    record = member_of_role(view, member_id, role, as_what)
    if record["frozen"]:
        raise RuleViolation(f"{as_what} {member_id} is frozen")
    return record


def members_with_role(view: StateView, role: str) -> tuple[str, ...]:
    return view.get(records.ROLE + role) or ()


def require_role(who: Caller, *roles: str) -> None:
    if who.role not in roles:
        raise RuleViolation(f"{who.id} is a {who.role}; only a {' or '.join(roles)} may do this")


def key_entries(member_id: str, role: str, public_key: bytes) -> dict[str, object]:
    """The state entries that introduce a member (at genesis or on registration)."""
    entry: PublicKeyEntry = {"member": member_id, "revoked": False}
    record: Member = {"role": role, "key": public_key, "frozen": False}
    return {records.MEMBER + member_id: record, records.PUBKEY + public_key.hex(): entry}


def _fresh_key(view: StateView, public_key: bytes) -> None:
    if view.get(records.PUBKEY + public_key.hex()) is not None:
        raise RuleViolation("this public key is or was registered already and cannot be reused")


def register(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, str]:
    require_role(who, Role.REGULATOR)
    member_id = args.member("member")
    role = args.text("role", 32)
    public_key = args.blob("public_key", PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES)
    if role not in ROLES:
        raise RuleViolation(f"unknown role {role} (one of {', '.join(sorted(ROLES))})")
    if member(view, member_id) is not None:
        raise RuleViolation(f"{member_id} is a member already")
    _fresh_key(view, public_key)
    for key, value in key_entries(member_id, role, public_key).items():
        view.put(key, value)
    view.put(records.ROLE + role, tuple(sorted((*members_with_role(view, role), member_id))))
    return {"member": member_id}


def rotate_key(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    member_id = args.member("member")
    public_key = args.blob("public_key", PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES)
    if who.id != member_id and who.role != Role.REGULATOR:
        raise RuleViolation(f"{who.id} may not rotate the key of {member_id}")
    record = member(view, member_id)
    if record is None:
        raise RuleViolation(f"{member_id} is not a member")
    _fresh_key(view, public_key)
    revoked: PublicKeyEntry = {"member": member_id, "revoked": True}
    current: PublicKeyEntry = {"member": member_id, "revoked": False}
    view.put(records.PUBKEY + record["key"].hex(), revoked)
    view.put(records.PUBKEY + public_key.hex(), current)
    view.put(records.MEMBER + member_id, {**record, "key": public_key})


def _set_frozen(view: StateView, who: Caller, args: Args, frozen: bool) -> None:
    require_role(who, Role.REGULATOR)
    member_id = args.member("member")
    record = member(view, member_id)
    if record is None:
        raise RuleViolation(f"{member_id} is not a member")
    if record["role"] == Role.REGULATOR:
        raise RuleViolation("a regulator cannot be frozen or unfrozen")
    if record["frozen"] == frozen:
        raise RuleViolation(f"{member_id} is {'already' if frozen else 'not'} frozen")
    view.put(records.MEMBER + member_id, {**record, "frozen": frozen})


def freeze(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    _set_frozen(view, who, args, True)


def unfreeze(view: StateView, ctx: TxContext, who: Caller, args: Args) -> None:
    _set_frozen(view, who, args, False)
