"""Contracts throughput: a mixed workload of valid transactions executed on one core.

The default workload, `financing`, is the hot path: each cycle of seven transactions is a
supplier's whole financing: draft, confirm (the debtor's ed25519 confirmation is verified, it is
part of the contract), split in two, pledge one part, borrow against it, repay in two
instalments. `goods` cycles a warehouse receipt through issue, pledge, lend, and two rounds of
repay, release and outbound; `tranches` opens a three-tranche credit line and repays each
tranche, which pays out the next by itself; `securitisation` lends four loans, pools them,
structures two tranches, grants the data to a rating agency (the sealed boxes are made before
the clock starts), rates, takes two subscriptions, closes, sells units against payment (the
buyer's consent signed before the clock starts), and distributes twice as the loans are repaid,
the second time as the pool's last distribution. Transactions run as the ledger runs them: one overlay
per transaction over one per block, merged on success, and each block's writes applied to the
real `State` (whose root hashing is timed separately). Transaction signatures are the ledger's
job and are not part of this; the confirmations are signed before the clock starts.

    .venv/bin/python benchmarks/contracts_bench.py [--transactions 20000] [--block 2000]
        [--workload financing|goods|tranches|securitisation]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from consortium import contracts
from consortium.config import parse_config
from consortium.contracts import RuleViolation, TxContext
from consortium.crypto import KeyPair, seal, sha256
from consortium.keys import KeyDirectory
from consortium.ledger.state import Overlay, State

SUPPLIERS = [f"supplier-{i:02d}" for i in range(40)]
BANKS = ["bank-a", "bank-b"]
CORES = ["core-a", "core-b"]
WAREHOUSE = "warehouse-a"
ARRANGER = "arranger"
RATING_AGENCY = "rating-a"
INVESTORS = ["investor-a", "investor-b", "investor-c"]
CYCLE = 7

Tx = tuple[str, bytes, str, dict[str, Any]]


def key_of(member_id: str) -> KeyPair:
    return KeyPair(hashlib.sha256(b"bench/" + member_id.encode()).digest())


def genesis() -> State:
    nodes = [{"id": b, "role": "bank"} for b in BANKS]
    nodes += [{"id": c, "role": "core_enterprise"} for c in CORES]
    nodes += [{"id": "regulator", "role": "regulator"}]
    raw = {
        "chain_id": "bench",
        "nodes": nodes,
        "members": [{"id": s, "role": "supplier"} for s in SUPPLIERS]
        + [{"id": WAREHOUSE, "role": "warehouse"}]
        + [{"id": ARRANGER, "role": "arranger"}, {"id": RATING_AGENCY, "role": "rating_agency"}]
        + [{"id": i, "role": "investor"} for i in INVESTORS],
        "genesis": {
            "balances": {m: 10**13 for m in BANKS + CORES + SUPPLIERS + INVESTORS},
            "credit_lines": {c: 10**14 for c in CORES},
        },
    }
    config = parse_config(raw, Path("bench/nodes.yaml"))
    keys = KeyDirectory({m.id: key_of(m.id).public_key for m in config.members}, {})
    state = State()
    state.apply(contracts.genesis_writes(config, keys))
    return state


def workload(count: int) -> list[Tx]:
    """`count` transactions (rounded up to whole cycles), ids predicted from the tx ids."""
    txs: list[Tx] = []
    core_keys = {c: key_of(c) for c in CORES}
    for cycle in range(-(-count // CYCLE)):
        supplier = SUPPLIERS[cycle % len(SUPPLIERS)]
        tier_two = SUPPLIERS[(cycle + 1) % len(SUPPLIERS)]
        core = CORES[cycle % len(CORES)]
        bank = BANKS[cycle % len(BANKS)]
        ids = [hashlib.sha256(b"bench-tx/%d/%d" % (cycle, i)).digest() for i in range(CYCLE)]
        amount = 100_000 + cycle
        due_day = 90
        rcv = "rcv-" + ids[0].hex()[:16]
        child = "rcv-" + ids[2].hex()[:16] + "-0"
        loan = "loan-" + ids[4].hex()[:16]
        kept = amount * 6 // 10
        principal = kept * 95 // 100
        statement = contracts.confirmation_statement(rcv, core, amount, due_day)
        txs += [
            (
                supplier,
                ids[0],
                "receivable.draft",
                {"debtor": core, "amount": amount, "due_day": due_day},
            ),
            (
                core,
                ids[1],
                "receivable.confirm",
                {
                    "receivable": rcv,
                    "amount": amount,
                    "due_day": due_day,
                    "confirmation": core_keys[core].sign(statement),
                },
            ),
            (
                supplier,
                ids[2],
                "receivable.split",
                {"receivable": rcv, "parts": ((supplier, kept), (tier_two, amount - kept))},
            ),
            (supplier, ids[3], "receivable.pledge", {"receivable": child, "bank": bank}),
            (
                bank,
                ids[4],
                "loan.lend",
                {
                    "borrower": supplier,
                    "principal": principal,
                    "amount_due": kept,
                    "due_day": due_day,
                    "receivable": child,
                },
            ),
            (supplier, ids[5], "loan.repay", {"loan": loan, "amount": kept // 2}),
            (supplier, ids[6], "loan.repay", {"loan": loan, "amount": kept - kept // 2}),
        ]
    return txs[:count]


def goods_workload(count: int) -> list[Tx]:
    """Nine transactions a cycle: a receipt pledged, lent on, released and shipped in halves."""
    txs: list[Tx] = []
    for cycle in range(-(-count // 9)):
        owner = SUPPLIERS[cycle % len(SUPPLIERS)]
        bank = BANKS[cycle % len(BANKS)]
        ids = [hashlib.sha256(b"bench-goods/%d/%d" % (cycle, i)).digest() for i in range(9)]
        receipt = "whr-" + ids[0].hex()[:16]
        loan = "loan-" + ids[2].hex()[:16]
        half = {"receipt": receipt, "quantity": 500}
        issue = {
            "owner": owner,
            "lot": f"lot-{cycle}",
            "commodity": "copper",
            "quantity": 1_000,
            "grade": "A",
            "inspection": ids[0],
        }
        lend = {"receipt": receipt, "principal": 90_000, "amount_due": 100_000, "due_day": 90}
        txs += [
            (WAREHOUSE, ids[0], "warehouse.issue", issue),
            (owner, ids[1], "warehouse.pledge", {"receipt": receipt, "bank": bank}),
            (bank, ids[2], "warehouse.lend", lend),
            (owner, ids[3], "loan.repay", {"loan": loan, "amount": 50_000}),
            (bank, ids[4], "warehouse.release", half),
            (WAREHOUSE, ids[5], "warehouse.outbound", half),
            (owner, ids[6], "loan.repay", {"loan": loan, "amount": 50_000}),
            (bank, ids[7], "warehouse.release", half),
            (WAREHOUSE, ids[8], "warehouse.outbound", half),
        ]
    return txs[:count]


def tranches_workload(count: int) -> list[Tx]:
    """Four transactions a cycle: a line opened, and each of its three tranches repaid."""
    txs: list[Tx] = []
    for cycle in range(-(-count // 4)):
        borrower = SUPPLIERS[cycle % len(SUPPLIERS)]
        bank = BANKS[cycle % len(BANKS)]
        ids = [hashlib.sha256(b"bench-line/%d/%d" % (cycle, i)).digest() for i in range(4)]
        line = ids[0].hex()[:16]
        terms = {
            "borrower": borrower,
            "amounts": (50_000, 60_000, 70_000),
            "due_days": (30, 30, 30),
            "threshold": 0,
            "rate_bp": 0,
        }
        txs.append((bank, ids[0], "creditline.open", terms))
        for index, amount in enumerate(terms["amounts"]):
            repay = {"loan": f"loan-{line}-{index}", "amount": amount}
            txs.append((borrower, ids[index + 1], "loan.repay", repay))
    return txs[:count]


def securitisation_workload(count: int) -> list[Tx]:
    """Twenty transactions a cycle: a pool's life from its loans to its last distribution."""
    boxes = {
        m: seal(key_of(m).public_key, b"loan-level data") for m in (RATING_AGENCY, "regulator")
    }
    buyer_key = key_of(INVESTORS[2])
    txs: list[Tx] = []
    for cycle in range(-(-count // 20)):
        bank = BANKS[cycle % len(BANKS)]
        ids = [hashlib.sha256(b"bench-abs/%d/%d" % (cycle, i)).digest() for i in range(20)]
        loans = ["loan-" + ids[i].hex()[:16] for i in range(4)]
        pool = "pool-" + ids[4].hex()[:16]
        for i in range(4):
            borrower = SUPPLIERS[(4 * cycle + i) % len(SUPPLIERS)]
            lend = {
                "borrower": borrower,
                "principal": 100_000,
                "amount_due": 105_000,
                "due_day": 10**6,
                "receivable": None,
            }
            txs.append((bank, ids[i], "loan.lend", lend))
        create = {
            "loans": tuple(loans),
            "arranger": ARRANGER,
            "period_days": 1,
            "default_days": 30,
            "data_commitment": sha256(b"loan-level data"),
        }
        tranches = (("senior", 300_000, 300, 400), ("junior", 100_000, 100, 1_000))
        trade = f"trade-{cycle}"
        consent = buyer_key.sign(
            contracts.transfer_statement(
                pool, trade, "senior", INVESTORS[0], INVESTORS[2], 100, 95_000
            )
        )
        transfer = {
            "pool": pool,
            "trade": trade,
            "tranche": "senior",
            "seller": INVESTORS[0],
            "buyer": INVESTORS[2],
            "units": 100,
            "price": 95_000,
            "consent": consent,
        }
        grades = {"pool": pool, "grades": ("AAA", "BB"), "report": sha256(b"report")}
        distribute = {"pool": pool, "payments": None}
        repaid = [(SUPPLIERS[(4 * cycle + i) % len(SUPPLIERS)], loans[i]) for i in range(4)]
        txs += [
            (bank, ids[4], "pool.create", create),
            (ARRANGER, ids[5], "pool.structure", {"pool": pool, "tranches": tranches}),
            (
                bank,
                ids[6],
                "pool.grant_data",
                {"pool": pool, "agency": RATING_AGENCY, "ciphertexts": boxes},
            ),
            (RATING_AGENCY, ids[7], "pool.rate", grades),
            (
                INVESTORS[0],
                ids[8],
                "pool.subscribe",
                {"pool": pool, "tranche": "senior", "units": 300},
            ),
            (
                INVESTORS[1],
                ids[9],
                "pool.subscribe",
                {"pool": pool, "tranche": "junior", "units": 100},
            ),
            (ARRANGER, ids[10], "pool.close", {"pool": pool}),
            ("regulator", ids[11], "clock.advance", {"days": 1}),
            (INVESTORS[0], ids[12], "pool.transfer_units", transfer),
            *(
                (borrower, ids[13 + i], "loan.repay", {"loan": loan, "amount": 105_000})
                for i, (borrower, loan) in enumerate(repaid[:2])
            ),
            (bank, ids[15], "pool.distribute", distribute),
            ("regulator", ids[16], "clock.advance", {"days": 1}),
            *(
                (borrower, ids[17 + i], "loan.repay", {"loan": loan, "amount": 105_000})
                for i, (borrower, loan) in enumerate(repaid[2:])
            ),
            (bank, ids[19], "pool.distribute", distribute),
        ]
    return txs[:count]


WORKLOADS = {
    "financing": workload,
    "goods": goods_workload,
    "tranches": tranches_workload,
    "securitisation": securitisation_workload,
}


def run(txs: list[Tx], block_size: int) -> None:
    state = genesis()
    execute = contracts.execute
    per_op: dict[str, float] = defaultdict(float)
    ops = Counter(op for _, _, op, _ in txs)
    failures: list[str] = []
    contract_seconds = 0.0
    root_seconds = 0.0
    clock = time.perf_counter
    for height, start in enumerate(range(0, len(txs), block_size), start=1):
        block = Overlay(state)
        began = clock()
        for index, (sender, tx_id, op, args) in enumerate(txs[start : start + block_size]):
            t0 = clock()
            block.begin()  # as the ledger runs a block: one overlay, a journal per transaction
            try:
                execute(block, TxContext(sender, tx_id, height, index), op, args)
            except RuleViolation as violation:
                block.roll_back()
                failures.append(f"{op}: {violation.reason}")
            else:
                block.keep()
            per_op[op] += clock() - t0
        contract_seconds += clock() - began
        began = clock()
        state.apply(block.writes)
        root_seconds += clock() - began
    if failures:
        raise SystemExit(f"{len(failures)} transactions failed, first: {failures[0]}")
    n = len(txs)
    print(f"{n} transactions in blocks of {block_size}, all succeeded")
    print(f"contracts:              {n / contract_seconds:10,.0f} tx/s ({contract_seconds:.3f} s)")
    total = contract_seconds + root_seconds
    print(f"contracts + state root: {n / total:10,.0f} tx/s ({total:.3f} s)")
    for op in sorted(ops):
        print(f"  {op:20} {ops[op]:6} txs {per_op[op] / ops[op] * 1e6:8.1f} us/tx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--block", type=int, default=2_000)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="financing")
    args = parser.parse_args()
    run(WORKLOADS[args.workload](args.transactions), args.block)


if __name__ == "__main__":
    main()
