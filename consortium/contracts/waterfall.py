"""The waterfall: how one distribution of a pool's collections is shared out, as pure arithmetic.

Losses of newly defaulted loans are written down first, from the most junior tranche up. Then,
senior first, each tranche takes its interest due (accrued on its outstanding balance at its
coupon, rounded down), then its principal: its outstanding balance and then whatever losses
wrote off it, so collections that cover every claim senior to a written-down tranche win its
loss back, senior first. What a tranche takes is paid per unit, rounding down; what rounding
leaves stays in the collection account and is paid with the next distribution (it is not passed
down to juniors now). The last distribution pays everything left to the most junior tranche with
units outstanding, by the same per-unit rule, and its last remainder to the holder of the most
units (ties by member id), so the account ends empty. Money in equals money out plus what is
carried: nothing else moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from consortium.contracts.pricing import BASIS_POINTS
from consortium.contracts.records import PoolTranche

DAYS_PER_YEAR = 365


@dataclass(frozen=True, slots=True)
class TranchePayment:
    """What one tranche got in a distribution; `payouts` by holder, in member id order."""

    name: str
    interest: int
    principal: int
    residual: int
    absorbed: int  # principal written down by this distribution's losses
    reinstated: int  # earlier write-downs paid back (part of `principal`)
    outstanding: int  # balance after the distribution
    payouts: dict[str, int]

    @property
    def paid(self) -> int:
        return self.interest + self.principal + self.residual


@dataclass(frozen=True, slots=True)
class Distribution:
    tranches: tuple[PoolTranche, ...]  # the tranche records after it
    payments: tuple[TranchePayment, ...]
    paid: int  # to holders, in total
    carried: int  # left in the collection account
    unabsorbed: int  # loss beyond every tranche's balance


def balance(tranche: PoolTranche) -> int:
    """Principal still owed to the tranche's holders."""
    return tranche["size"] - tranche["principal_paid"] - tranche["losses"]


def interest(outstanding: int, coupon_bp: int, days: int) -> int:
    return outstanding * coupon_bp * days // (BASIS_POINTS * DAYS_PER_YEAR)


def per_unit(amount: int, holders: dict[str, int], units: int) -> tuple[int, dict[str, int]]:
    """Pay `amount` over `units` units: a whole sum per unit, rounding down. Returns what is paid
    in total and each holder's share."""
    if units == 0 or amount < units:
        return 0, {}
    each = amount // units
    return each * units, {holder: each * held for holder, held in holders.items() if held}


def _largest_holder(holders: dict[str, int]) -> str:
    return min(holders, key=lambda holder: (-holders[holder], holder))


def write_down(
    tranches: tuple[PoolTranche, ...], loss: int
) -> tuple[list[PoolTranche], list[int], int]:
    """Write `loss` off the balances, most junior first: the new records, what each absorbed,
    and what no tranche could absorb."""
    records = list(tranches)
    absorbed = [0] * len(records)
    left = loss
    for index in reversed(range(len(records))):
        take = min(left, balance(records[index]))
        if take:
            records[index] = {**records[index], "losses": records[index]["losses"] + take}
        absorbed[index] = take
        left -= take
    return records, absorbed, left


def distribute(
    tranches: tuple[PoolTranche, ...], available: int, days: int, loss: int, final: bool
) -> Distribution:
    """Share `available` out over `tranches` (senior first) for a period of `days`, after
    writing down `loss`; on the `final` distribution pay out everything."""
    records, absorbed, unabsorbed = write_down(tranches, loss)
    cash = available
    paid_total = 0
    reinstated = [0] * len(records)
    shares: list[tuple[int, int, dict[str, int]]] = []
    for index, record in enumerate(records):
        owed = balance(record)
        due = record["interest_due"] + interest(owed, record["coupon_bp"], days)
        take_interest = min(cash, due)
        take_principal = min(cash - take_interest, owed + record["losses"])
        cash -= take_interest + take_principal
        paid, payouts = per_unit(take_interest + take_principal, record["holders"], record["units"])
        paid_interest = min(take_interest, paid)
        paid_principal = paid - paid_interest
        reinstated[index] = max(0, paid_principal - owed)
        records[index] = {
            **record,
            "interest_due": due - paid_interest,
            "interest_paid": record["interest_paid"] + paid_interest,
            "losses": record["losses"] - reinstated[index],
            "principal_paid": record["principal_paid"] + paid_principal,
        }
        paid_total += paid
        shares.append((paid_interest, paid_principal, payouts))
    residual_index = next((i for i in reversed(range(len(records))) if records[i]["units"]), None)
    remainder = available - paid_total
    residual = 0
    if final and residual_index is not None and remainder > 0:
        record = records[residual_index]
        shared, extra = per_unit(remainder, record["holders"], record["units"])
        payouts = dict(shares[residual_index][2])
        for holder, amount in extra.items():
            payouts[holder] = payouts.get(holder, 0) + amount
        top = _largest_holder(record["holders"])
        payouts[top] = payouts.get(top, 0) + remainder - shared
        shares[residual_index] = (*shares[residual_index][:2], dict(sorted(payouts.items())))
        records[residual_index] = {**record, "residual_paid": record["residual_paid"] + remainder}
        residual = remainder
        paid_total += remainder
    payments = tuple(
        TranchePayment(
            record["name"],
            paid_interest,
            paid_principal,
            residual if index == residual_index else 0,
            absorbed[index],
            reinstated[index],
            balance(record),
            payouts,
        )
        for index, (record, (paid_interest, paid_principal, payouts)) in enumerate(
            zip(records, shares, strict=True)
        )
    )
    return Distribution(tuple(records), payments, paid_total, available - paid_total, unabsorbed)
