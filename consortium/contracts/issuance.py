"""Issuing a pool's securities and trading them: subscription, closing, delivery versus payment.

Investors subscribe units of a STRUCTURED pool's tranches and pay the face value into the pool's
subscription account. The arranger closes a rated pool with units sold: the bank receives every
subscription, unsold units are cancelled (each tranche shrinks to what was sold) and the pool is
ISSUED. Afterwards an investor sells units to another in one transaction that the seller signs
and that carries the buyer's signature over the same terms: the units and the price move
together or not at all, and a trade id is used once, so a buyer's consent cannot be replayed.
"""

from __future__ import annotations

from typing import Any

from consortium import codec
from consortium.contracts import records
from consortium.contracts.args import Args
from consortium.contracts.clock import business_day
from consortium.contracts.context import RuleViolation, SignatureClaim, StateView, TxContext
from consortium.contracts.money import balance, move
from consortium.contracts.pools import MAX_UNITS, store, tranche_index
from consortium.contracts.records import ISSUED, STRUCTURED, Pool, PoolTranche, Trade
from consortium.contracts.registry import Caller, active_member, member, require_role
from consortium.crypto import SIGNATURE_BYTES
from consortium.roles import Role

TRANSFER_DOMAIN = "consortium/abs-unit-transfer"


def transfer_statement(
    pool_id: str, trade: str, tranche: str, seller: str, buyer: str, units: int, price: int
) -> bytes:
    """The bytes a buyer signs to agree to buy `units` of `tranche` from `seller` for `price`,
    in the trade named `trade` (used once per pool)."""
    return codec.encode_flat(
        (TRANSFER_DOMAIN, pool_id, trade, tranche, seller, buyer, units, price)
    )


def _with_holding(tranche: PoolTranche, investor: str, change: int) -> dict[str, int]:
    holders = dict(tranche["holders"])
    held = holders.get(investor, 0) + change
    if held:
        holders[investor] = held
    else:
        holders.pop(investor, None)
    return dict(sorted(holders.items()))


def _replace_tranche(pool: Pool, index: int, tranche: PoolTranche) -> Pool:
    tranches = list(pool["tranches"])
    tranches[index] = tranche
    return {**pool, "tranches": tuple(tranches)}


def subscribe(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, int]:
    """An investor buys `units` of a tranche at face value while the pool is STRUCTURED."""
    require_role(who, Role.INVESTOR)
    pool = records.pool(view, args.object_id("pool"))
    name = args.text("tranche", 64)
    units = args.integer("units", 1, MAX_UNITS)
    if pool["state"] != STRUCTURED:
        raise RuleViolation(f"pool {pool['id']} is {pool['state']}, not open for subscription")
    index = tranche_index(pool, name)
    tranche = pool["tranches"][index]
    left = tranche["units"] - tranche["sold"]
    if units > left:
        raise RuleViolation(f"only {left} units of tranche {name} are left, not {units}")
    cost = units * tranche["face"]
    move(view, who.id, records.subscription_account(pool["id"]), cost)
    updated: PoolTranche = {
        **tranche,
        "holders": _with_holding(tranche, who.id, units),
        "sold": tranche["sold"] + units,
    }
    store(view, _replace_tranche(pool, index, updated))
    return {"paid": cost, "held": updated["holders"][who.id]}


def close(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """The arranger issues a rated pool with units sold: the bank receives the proceeds,
    unsold units are cancelled, and interest starts to run today."""
    require_role(who, Role.ARRANGER)
    pool = records.pool(view, args.object_id("pool"))
    if pool["arranger"] != who.id:
        raise RuleViolation(f"pool {pool['id']} is arranged by {pool['arranger']}, not {who.id}")
    if pool["state"] != STRUCTURED:
        raise RuleViolation(f"pool {pool['id']} is {pool['state']}, not STRUCTURED")
    if not pool["rated_by"]:
        raise RuleViolation(f"pool {pool['id']} is not rated")
    if not any(t["sold"] for t in pool["tranches"]):
        raise RuleViolation(f"no units of pool {pool['id']} were sold")
    account = records.subscription_account(pool["id"])
    proceeds = balance(view, account)
    move(view, account, pool["bank"], proceeds)
    tranches = tuple(
        {
            **t,
            "cancelled": t["units"] - t["sold"],
            "size": t["sold"] * t["face"],
            "units": t["sold"],
        }
        for t in pool["tranches"]
    )
    today = business_day(view)
    issued: Pool = {
        **pool,
        "issued_day": today,
        "last_day": today,
        "state": ISSUED,
        "tranches": tranches,
    }
    store(view, issued)
    return {"proceeds": proceeds, "cancelled": tuple(t["cancelled"] for t in tranches)}


def transfer_claim(view: StateView, args: Args) -> SignatureClaim:
    """The buyer's current key, the terms it must have agreed to, and its signature carried:
    what `transfer_units` checks, known before execution so that a node can check it ahead."""
    buyer = args.member("buyer")
    record = member(view, buyer)
    if record is None:
        raise RuleViolation(f"buyer {buyer} is not a member")
    statement = transfer_statement(
        args.object_id("pool"),
        args.object_id("trade"),
        args.text("tranche", 64),
        args.member("seller"),
        buyer,
        args.integer("units", 1, MAX_UNITS),
        args.amount("price"),
    )
    return record["key"], statement, args.blob("consent", SIGNATURE_BYTES, SIGNATURE_BYTES)


def transfer_units(view: StateView, ctx: TxContext, who: Caller, args: Args) -> dict[str, Any]:
    """Delivery versus payment: the seller's units of an ISSUED pool go to the buyer and the
    buyer's price to the seller, in one transaction signed by the seller and carrying the
    buyer's consent."""
    require_role(who, Role.INVESTOR)
    pool = records.pool(view, args.object_id("pool"))
    trade = args.object_id("trade")
    name = args.text("tranche", 64)
    seller = args.member("seller")
    buyer = args.member("buyer")
    units = args.integer("units", 1, MAX_UNITS)
    price = args.amount("price")
    args.blob("consent", SIGNATURE_BYTES, SIGNATURE_BYTES)
    if seller != who.id:
        raise RuleViolation(f"{who.id} cannot sell the units of {seller}")
    if buyer == seller:
        raise RuleViolation("seller and buyer must differ")
    active_member(view, buyer, Role.INVESTOR, "buyer")
    if pool["state"] != ISSUED:
        raise RuleViolation(f"pool {pool['id']} is {pool['state']}, not ISSUED")
    index = tranche_index(pool, name)
    tranche = pool["tranches"][index]
    held = tranche["holders"].get(seller, 0)
    if units > held:
        raise RuleViolation(f"{seller} holds {held} units of tranche {name}, not {units}")
    key = f"{records.TRADE}{pool['id']}/{trade}"
    if view.get(key) is not None:
        raise RuleViolation(f"trade {trade} of pool {pool['id']} was settled already")
    if not ctx.check_signature(*transfer_claim(view, args)):
        raise RuleViolation(f"consent is not signed by the current key of {buyer}")
    move(view, buyer, seller, price)
    holders = _with_holding(
        {**tranche, "holders": _with_holding(tranche, seller, -units)}, buyer, units
    )
    store(view, _replace_tranche(pool, index, {**tranche, "holders": holders}))
    record: Trade = {
        "buyer": buyer,
        "day": business_day(view),
        "price": price,
        "seller": seller,
        "tranche": name,
        "units": units,
    }
    view.put(key, record)
    return {"seller_units": holders.get(seller, 0), "buyer_units": holders[buyer]}
