"""Mixed business workloads for benchmarks: realistic blocks of signed supply-chain transactions.

A workload is a few set-up blocks (drafts, confirmations, pledges, loans: the objects the measured
block acts on) and a measured block mixing new drafts, confirmations, splits, transfers, pledges,
loans and repayments from many distinct suppliers. Every transaction of the measured block succeeds
against the set-up state, so the benchmark measures real business work, not early rejections.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from consortium.client.wallet import Wallet
from consortium.contracts import confirmation_statement
from consortium.devnet import Devnet
from consortium.ledger.tx import SignedTransaction

AMOUNT = 1_000_000
DUE_DAY = 90
# Shares of the measured block, in percent.
MIX = {
    "draft": 25,
    "confirm": 10,
    "split": 15,
    "transfer": 15,
    "pledge": 15,
    "lend": 10,
    "repay": 10,
}
BANKS = ("bank-a", "bank-b")


@dataclass(frozen=True, slots=True)
class Workload:
    setup: list[list[SignedTransaction]]
    measured: list[SignedTransaction]
    signers: int


Step = tuple[str, str, dict]  # (sender, op, args)


def build_workload(
    net: Devnet, block_txs: int, execute: Callable[[list[SignedTransaction]], list[dict | None]]
) -> Workload:
    """Build set-up blocks and a measured block of `block_txs` transactions.

    `execute` runs one set-up block on the caller's chain and returns each receipt's result (the
    ids of what the transaction created), which the later blocks refer to."""
    signers = sorted(m for m in net.member_pairs if m.startswith("load-"))
    if not signers:
        raise ValueError("the devnet has no load signers")
    wallets = {
        m: Wallet(net.config.chain_id, m, pair, first_nonce=1)
        for m, pair in net.member_pairs.items()
    }
    counts = {kind: block_txs * share // 100 for kind, share in MIX.items()}
    counts["draft"] += block_txs - sum(counts.values())
    core_key = net.member_pairs["core"]

    def owner(i: int) -> str:
        return signers[i % len(signers)]

    def run(steps: list[Step]) -> list[dict | None]:
        txs = [wallets[sender].sign(op, args) for sender, op, args in steps]
        setup.append(txs)
        return execute(txs)

    setup: list[list[SignedTransaction]] = []
    # Objects the measured block needs: drafted (to confirm), confirmed (to split, transfer,
    # pledge, and to pledge for lending), and loans (to repay).
    need_confirmed = (
        counts["split"] + counts["transfer"] + counts["pledge"] + counts["lend"] + counts["repay"]
    )
    total_drafts = counts["confirm"] + need_confirmed
    drafts = [
        (owner(i), "receivable.draft", {"debtor": "core", "amount": AMOUNT, "due_day": DUE_DAY})
        for i in range(total_drafts)
    ]
    ids = [r["receivable"] for r in run(drafts)]  # type: ignore[index]
    holders = [owner(i) for i in range(total_drafts)]

    def confirm_step(i: int) -> Step:
        signature = core_key.sign(confirmation_statement(ids[i], "core", AMOUNT, DUE_DAY))
        args = {
            "receivable": ids[i],
            "amount": AMOUNT,
            "due_day": DUE_DAY,
            "confirmation": signature,
        }
        return ("core", "receivable.confirm", args)

    to_confirm_now = range(counts["confirm"], total_drafts)
    run([confirm_step(i) for i in to_confirm_now])
    cursor = iter(to_confirm_now)
    take = lambda n: [next(cursor) for _ in range(n)]  # noqa: E731
    split_ids, transfer_ids, pledge_ids = (
        take(counts["split"]),
        take(counts["transfer"]),
        take(counts["pledge"]),
    )
    lend_ids, repay_ids = take(counts["lend"]), take(counts["repay"])

    def bank_of(i: int) -> str:
        return BANKS[i % 2]

    run(
        [
            (holders[i], "receivable.pledge", {"receivable": ids[i], "bank": bank_of(i)})
            for i in lend_ids + repay_ids
        ]
    )

    def lend_step(i: int) -> Step:
        args = {
            "borrower": holders[i],
            "principal": AMOUNT * 9 // 10,
            "amount_due": AMOUNT,
            "due_day": DUE_DAY,
            "receivable": ids[i],
        }
        return (bank_of(i), "loan.lend", args)

    loans = [r["loan"] for r in run([lend_step(i) for i in repay_ids])]  # type: ignore[index]

    steps: list[Step] = [confirm_step(i) for i in range(counts["confirm"])]
    steps += [
        (owner(i), "receivable.draft", {"debtor": "core", "amount": AMOUNT, "due_day": DUE_DAY})
        for i in range(counts["draft"])
    ]
    half = AMOUNT // 2
    steps += [
        (
            holders[i],
            "receivable.split",
            {"receivable": ids[i], "parts": [[holders[i], half], [owner(i + 1), half]]},
        )
        for i in split_ids
    ]
    steps += [
        (holders[i], "receivable.transfer", {"receivable": ids[i], "to": owner(i + 1)})
        for i in transfer_ids
    ]
    steps += [
        (holders[i], "receivable.pledge", {"receivable": ids[i], "bank": bank_of(i)})
        for i in pledge_ids
    ]
    steps += [lend_step(i) for i in lend_ids]
    steps += [
        (holders[i], "loan.repay", {"loan": loan, "amount": AMOUNT // 4})
        for i, loan in zip(repay_ids, loans, strict=True)
    ]
    random.Random(block_txs).shuffle(steps)
    measured = [wallets[sender].sign(op, args) for sender, op, args in steps]
    return Workload(setup, measured, len({s for s, _, _ in steps}))
