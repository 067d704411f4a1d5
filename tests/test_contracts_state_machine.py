"""Random sequences of every operation by every role, valid and not, against the real state.

After every transaction and every step the machine checks the invariants of DOMAIN.md: money is
conserved, a receivable gets at most one pledge in its life, split children add up, only the
named debtor's current key confirms, a frozen member changes nothing, a task has at most one
agency and pays its commission at most once, a failed transaction leaves the state untouched, and
`execute` raises nothing but `RuleViolation`. Warehouse receipts: one pledge per receipt ever,
released never above the quantity nor the repaid share, shipped never above released, terms fixed
once pledged. Credit: every factor only grows, the history replayed gives the same state and
scores, a tranche is decided once and released only when its conditions held. Securitisation: a
loan is in at most one pool, ever; every waterfall conserves money and pays a junior tranche only
once every senior one has what it is due (up to rounding); no tranche is repaid above its size;
losses stay in order of seniority; units are conserved by subscriptions and trades alike.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from consortium import contracts
from consortium.contracts import (
    OPERATIONS,
    PARAMETERS,
    amendment_statement,
    audit_report,
    bid_commitment,
    credit_report,
    credit_score,
)
from consortium.contracts.scoring import FACTORS, NO_HISTORY
from consortium.contracts.warehouse import releasable
from consortium.contracts.waterfall import balance as tranche_balance
from consortium.crypto import KeyPair, seal, sha256
from tests.contracts_helpers import (
    GENESIS_TOTAL,
    Network,
    Receipt,
    recomputed_root,
    replayed,
    seeded_key,
)

MEMBERS = [
    "regulator",
    "bank-a",
    "bank-b",
    "core",
    "core-2",
    "agency",
    "agency-2",
    "agency-3",
    "supplier-a",
    "supplier-b",
    "supplier-c",
    "warehouse-1",
    "arranger",
    "rating-1",
    "rating-2",
    "investor-1",
    "investor-2",
    "investor-3",
]
SUPPLIERS = ["supplier-a", "supplier-b", "supplier-c"]
WAREHOUSES = ["warehouse-1"]
LOTS = [f"lot-{n}" for n in range(12)]
BANKS = ["bank-a", "bank-b"]
CORES = ["core", "core-2"]
AGENCIES = ["agency", "agency-2", "agency-3"]
RATING_AGENCIES = ["rating-1", "rating-2"]
INVESTORS = ["investor-1", "investor-2", "investor-3"]
TRANCHE_NAMES = ["senior", "mezzanine", "junior"]
SENDERS = [*MEMBERS, "stranger"]
NEW_MEMBERS = ["supplier-x", "bank-x", "agency-x", "regulator-x"]
codec_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 2**64 - 1)
    | st.text(max_size=6)
    | st.binary(max_size=66),
    lambda inner: (
        st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def usually(valid: Any, others: list[Any]) -> st.SearchStrategy[Any]:
    """Mostly the value that should work, sometimes any other (wrong sender, bad target)."""
    return st.integers(0, 7).flatmap(lambda n: st.just(valid) if n < 7 else st.sampled_from(others))


def having(prefix: str, *states: str) -> Any:
    """A precondition: some record of the kind is in one of `states`, so the rule has a target."""

    def check(machine: ContractsMachine) -> bool:
        return any(machine.ids(prefix, state) for state in states)

    return precondition(check)


class ContractsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = Network()
        self.old_keys: dict[str, list[KeyPair]] = {}
        self.key_counter = 0
        self.first_pledgee: dict[str, str] = {}
        self.pledges = Counter[str]()
        self.first_agency: dict[str, str] = {}
        self.settlements = Counter[str]()
        self.sealed_bids: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.receipt_pledgee: dict[str, str] = {}
        self.receipt_pledges = Counter[str]()
        self.receipt_seen: dict[str, dict[str, Any]] = {}
        self.factors_seen: dict[str, dict[str, int]] = {}
        self.tranche_seen: dict[tuple[str, int], dict[str, Any]] = {}
        self.pool_of_loan: dict[str, str] = {}
        self.issued_units: dict[tuple[str, int], int] = {}
        self.trades = 0

    # Execution and the per-transaction checks ---------------------------------------------

    def tx(self, sender: str, op: Any, args: Any) -> Receipt:
        return self.block([(sender, op, args)])[0]

    def block(self, txs: list[tuple[str, Any, Any]]) -> list[Receipt]:
        before = self.net.state.root
        frozen = {s for s, _, _ in txs if (self.member(s) or {}).get("frozen")}
        receipts = self.net.block(txs)  # anything but RuleViolation propagates and fails
        for (sender, _, _), receipt in zip(txs, receipts, strict=True):
            if sender in frozen:
                assert not receipt.ok
        if not any(r.ok for r in receipts):
            assert self.net.state.root == before
        assert recomputed_root(self.net.state) == self.net.state.root
        if len(txs) == 1:
            self.check_new_tranches()
        return receipts

    def check_new_tranches(self) -> None:
        """A tranche released by the transaction just run: the one before it was paid off on
        time just now, and the borrower's score now (recomputed here) reaches the threshold."""
        today = self.today()
        for line_id in self.ids("cline/"):
            line = self.net.get("cline/" + line_id)
            for index, tranche in enumerate(line["tranches"]):
                seen = self.tranche_seen.get((line_id, index))
                if seen is not None:
                    if seen["state"] != "PENDING":
                        assert tranche == seen  # decided once, for good
                    if seen["state"] == tranche["state"]:
                        continue
                self.tranche_seen[(line_id, index)] = tranche
                if tranche["state"] == "PENDING":
                    continue
                assert tranche["day"] == today
                score = credit_score(self.net.get("cfac/" + line["borrower"]) or NO_HISTORY)
                assert tranche["score"] == score
                if tranche["state"] == "RELEASED":
                    assert score >= line["threshold"]
                    loan = self.net.get("loan/" + tranche["loan"])
                    assert loan["line"] == line_id and loan["principal"] == tranche["amount"]
                    if index > 0:
                        before = self.net.get("loan/" + line["tranches"][index - 1]["loan"])
                        assert before["state"] == "REPAID" and before["due_day"] >= today
                else:
                    assert line["state"] == "BLOCKED" and tranche["reason"]

    def member(self, member_id: str) -> dict[str, Any] | None:
        return self.net.get("member/" + member_id)

    def ids(self, prefix: str, state: str | None = None) -> list[str]:
        out = []
        for key in self.net.state.keys_with_prefix(prefix):
            if state is None or self.net.get(key)["state"] == state:
                out.append(key[len(prefix) :])
        return out

    def pick(
        self, data: st.DataObject, prefix: str, states: str | tuple[str, ...], label: str
    ) -> str:
        """Mostly an id of a record in one of `states`, else any record's id or a bogus one."""
        wanted = (states,) if isinstance(states, str) else states
        preferred = [i for state in wanted for i in self.ids(prefix, state)]
        every = [*self.ids(prefix), prefix.rstrip("/") + "-0000000000000000"]
        if preferred and data.draw(st.integers(0, 4), label="prefer " + label) < 4:
            return data.draw(st.sampled_from(preferred), label=label)
        return data.draw(st.sampled_from(every), label=label)

    def today(self) -> int:
        return contracts.business_day(self.net.state)

    # Registry and clock ---------------------------------------------------------------------

    @rule(data=st.data(), days=st.integers(-1, 40))
    def advance_clock(self, data: st.DataObject, days: int) -> None:
        sender = data.draw(usually("regulator", SENDERS))
        before = self.today()
        receipt = self.tx(sender, "clock.advance", {"days": days})
        assert receipt.ok == (
            sender == "regulator" and days > 0 and self.member(sender) is not None
        )
        assert self.today() == (before + days if receipt.ok else before)

    @rule(
        data=st.data(),
        who=st.sampled_from(SENDERS),
        op=st.sampled_from(sorted(OPERATIONS)),
        keep_frozen=st.integers(0, 7),
    )
    def freeze_then_try(self, data: st.DataObject, who: str, op: str, keep_frozen: int) -> None:
        """Freeze a member, let it try anything (it must change nothing), mostly unfreeze it."""
        sender = data.draw(usually("regulator", SENDERS))
        receipt = self.tx(sender, "member.freeze", {"member": who})
        if receipt.ok:
            assert self.member(who)["frozen"] and self.member(who)["role"] != "regulator"
        if (self.member(who) or {}).get("frozen"):
            args = {name: data.draw(codec_values) for name in sorted(PARAMETERS[op])}
            root = self.net.state.root
            assert not self.tx(who, op, args).ok
            assert self.net.state.root == root
        if keep_frozen:
            sender = data.draw(usually("regulator", SENDERS))
            receipt = self.tx(sender, "member.unfreeze", {"member": who})
            if receipt.ok:
                assert not self.member(who)["frozen"]

    @rule(data=st.data(), who=st.sampled_from(MEMBERS), reuse=st.booleans())
    def rotate_key(self, data: st.DataObject, who: str, reuse: bool) -> None:
        sender = data.draw(usually(who, SENDERS))
        old = self.net.keys[who]
        if reuse:
            new = data.draw(
                st.sampled_from(
                    [*self.net.keys.values(), *(k for ks in self.old_keys.values() for k in ks)]
                )
            )
        else:
            self.key_counter += 1
            new = seeded_key(f"rotated-{self.key_counter}")
        receipt = self.tx(
            sender, "member.rotate_key", {"member": who, "public_key": new.public_key}
        )
        if receipt.ok:
            assert not reuse or new.public_key not in {
                k.public_key for ks in self.old_keys.values() for k in ks
            }
            self.old_keys.setdefault(who, []).append(old)
            self.net.keys[who] = new
        assert contracts.member_public_key(self.net.state, who) == self.net.keys[who].public_key

    @rule(
        data=st.data(),
        new_id=st.sampled_from(NEW_MEMBERS),
        role=st.sampled_from(["supplier", "bank", "collection_agency", "regulator", "x"]),
    )
    def register(self, data: st.DataObject, new_id: str, role: str) -> None:
        sender = data.draw(usually("regulator", SENDERS))
        key = seeded_key("member " + new_id)
        receipt = self.tx(
            sender,
            "member.register",
            {"member": new_id, "role": role, "public_key": key.public_key},
        )
        if receipt.ok:
            self.net.keys[new_id] = key

    @rule(
        data=st.data(),
        core=st.sampled_from([*CORES, "supplier-a"]),
        limit=st.integers(0, 30_000_000),
    )
    def set_credit_line(self, data: st.DataObject, core: str, limit: int) -> None:
        sender = data.draw(usually("regulator", SENDERS))
        self.tx(sender, "credit.set_line", {"member": core, "limit": limit})

    # Receivables ------------------------------------------------------------------------------

    @rule(data=st.data(), amount=st.integers(-1, 1_500_000), due=st.integers(-1, 60))
    def draft(self, data: st.DataObject, amount: int, due: int) -> None:
        sender = data.draw(usually(data.draw(st.sampled_from(SUPPLIERS)), SENDERS))
        debtor = data.draw(usually(data.draw(st.sampled_from(CORES)), SENDERS))
        self.tx(
            sender,
            "receivable.draft",
            {"debtor": debtor, "amount": amount, "due_day": self.today() + due},
        )

    @having("rcv/", "DRAFTED")
    @rule(
        data=st.data(),
        signer=usually("debtor", ["old", "holder", "bank", "random"]),
        signed_delta=usually(0, [1]),
        args_delta=usually(0, [1]),
    )
    def confirm(self, data: st.DataObject, signer: str, signed_delta: int, args_delta: int) -> None:
        rcv_id = self.pick(data, "rcv/", "DRAFTED", "receivable")
        rcv = self.net.get("rcv/" + rcv_id)
        debtor = rcv["debtor"] if rcv else "core"
        keys = {
            "debtor": self.net.keys.get(debtor),
            "old": (self.old_keys.get(debtor) or [None])[-1],
            "holder": self.net.keys.get(rcv["holder"]) if rcv else None,
            "bank": self.net.keys["bank-a"],
            "random": KeyPair(sha256(b"nobody")),
        }
        key = keys[signer] or keys["random"]
        amount = rcv["amount"] if rcv else 1
        due_day = rcv["due_day"] if rcv else 1
        signature = key.sign(
            contracts.confirmation_statement(rcv_id, debtor, amount + signed_delta, due_day)
        )
        holder = rcv["holder"] if rcv else "supplier-a"
        sender = data.draw(usually(data.draw(st.sampled_from([debtor, holder])), SENDERS))
        receipt = self.tx(
            sender,
            "receivable.confirm",
            {
                "receivable": rcv_id,
                "amount": amount + args_delta,
                "due_day": due_day,
                "confirmation": signature,
            },
        )
        if receipt.ok:
            assert rcv is not None and rcv["state"] == "DRAFTED"
            assert key.public_key == self.member(debtor)["key"]
            assert signed_delta == args_delta == 0
            assert sender in (debtor, holder)
            assert self.net.get("rcv/" + rcv_id)["state"] == "CONFIRMED"

    @having("rcv/", "CONFIRMED")
    @rule(data=st.data(), pieces=st.integers(1, 3), error=st.sampled_from([0, 0, 1, -1]))
    def split(self, data: st.DataObject, pieces: int, error: int) -> None:
        rcv_id = self.pick(data, "rcv/", "CONFIRMED", "receivable")
        rcv = self.net.get("rcv/" + rcv_id)
        total = rcv["amount"] if rcv else 10
        cuts = sorted(
            data.draw(
                st.lists(
                    st.integers(1, max(1, total - 1)), min_size=pieces - 1, max_size=pieces - 1
                )
            )
        )
        amounts = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
        amounts[-1] += error
        recipients = data.draw(
            st.lists(usually("supplier-b", SENDERS), min_size=pieces, max_size=pieces)
        )
        sender = data.draw(usually(rcv["holder"] if rcv else "supplier-a", SENDERS))
        receipt = self.tx(
            sender,
            "receivable.split",
            {"receivable": rcv_id, "parts": tuple(zip(recipients, amounts, strict=True))},
        )
        if receipt.ok:
            assert rcv["state"] == "CONFIRMED" and sum(amounts) == total and pieces >= 2
            assert self.net.get("rcv/" + rcv_id)["state"] == "CONSUMED"

    @having("rcv/", "CONFIRMED")
    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        rcv_id = self.pick(data, "rcv/", "CONFIRMED", "receivable")
        rcv = self.net.get("rcv/" + rcv_id)
        sender = data.draw(usually(rcv["holder"] if rcv else "supplier-a", SENDERS))
        to = data.draw(usually(data.draw(st.sampled_from(SUPPLIERS)), SENDERS))
        self.tx(sender, "receivable.transfer", {"receivable": rcv_id, "to": to})

    @having("rcv/", "CONFIRMED")
    @rule(data=st.data(), same_block_rival=st.booleans())
    def pledge(self, data: st.DataObject, same_block_rival: bool) -> None:
        rcv_id = self.pick(data, "rcv/", "CONFIRMED", "receivable")
        rcv = self.net.get("rcv/" + rcv_id)
        sender = data.draw(usually(rcv["holder"] if rcv else "supplier-a", SENDERS))
        txs = [
            (
                sender,
                "receivable.pledge",
                {"receivable": rcv_id, "bank": data.draw(usually("bank-a", SENDERS))},
            )
        ]
        if same_block_rival:
            txs.append((sender, "receivable.pledge", {"receivable": rcv_id, "bank": "bank-b"}))
        receipts = self.block(txs)
        succeeded = [args["bank"] for (_, _, args), r in zip(txs, receipts, strict=True) if r.ok]
        assert len(succeeded) <= 1
        if succeeded:
            self.pledges[rcv_id] += 1
            assert self.pledges[rcv_id] == 1
            assert self.net.get("rcv/" + rcv_id)["pledgee"] == succeeded[0]

    @having("rcv/", "CONFIRMED", "PLEDGED")
    @rule(data=st.data())
    def settle_receivable(self, data: st.DataObject) -> None:
        rcv_id = self.pick(data, "rcv/", ("PLEDGED", "CONFIRMED"), "receivable")
        rcv = self.net.get("rcv/" + rcv_id)
        sender = data.draw(usually(rcv["debtor"] if rcv else "core", SENDERS))
        receipt = self.tx(sender, "receivable.settle", {"receivable": rcv_id})
        if receipt.ok:
            assert self.today() >= rcv["due_day"]
            paid = receipt.result["to_pledgee"] + receipt.result["to_holder"]
            assert paid == rcv["amount"]

    # Loans ------------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        principal=st.integers(0, 1_200_000),
        interest=st.integers(-1, 90_000),
        due=st.integers(-1, 40),
        secured=st.booleans(),
    )
    def lend(
        self, data: st.DataObject, principal: int, interest: int, due: int, secured: bool
    ) -> None:
        rcv_id = self.pick(data, "rcv/", "PLEDGED", "receivable") if secured else None
        rcv = self.net.get("rcv/" + rcv_id) if rcv_id else None
        bank = data.draw(usually((rcv or {}).get("pledgee") or "bank-a", SENDERS))
        borrower = data.draw(usually(rcv["holder"] if rcv else "supplier-c", SENDERS))
        receipt = self.tx(
            bank,
            "loan.lend",
            {
                "borrower": borrower,
                "principal": principal,
                "amount_due": principal + interest,
                "due_day": self.today() + due,
                "receivable": rcv_id,
            },
        )
        if receipt.ok and rcv is not None:
            assert principal <= rcv["amount"] and rcv["pledgee"] == bank

    @having("loan/", "ACTIVE", "OVERDUE", "COLLECTION")
    @rule(data=st.data(), fraction=st.integers(0, 4), by_bank=st.booleans())
    def repay(self, data: st.DataObject, fraction: int, by_bank: bool) -> None:
        loan_id = self.pick(data, "loan/", ("COLLECTION", "OVERDUE", "ACTIVE"), "loan")
        loan = self.net.get("loan/" + loan_id)
        owed = loan["amount_due"] - loan["repaid"] if loan else 1
        amount = max(1, owed * fraction // 3)
        if by_bank:
            sender = data.draw(usually(loan["bank"] if loan else "bank-a", SENDERS))
            op = "loan.record_repayment"
        else:
            sender = data.draw(usually(loan["borrower"] if loan else "supplier-c", SENDERS))
            op = "loan.repay"
        task = self.net.get("task/" + loan["task"]) if loan and loan["task"] else None
        receipt = self.tx(sender, op, {"loan": loan_id, "amount": amount})
        if receipt.ok and task is not None:
            assert self.net.get("task/" + task["id"])["state"] == "STOPPED"

    @having("loan/", "ACTIVE", "OVERDUE")
    @rule(data=st.data(), write_off=st.booleans())
    def overdue_or_write_off(self, data: st.DataObject, write_off: bool) -> None:
        loan_id = self.pick(data, "loan/", "OVERDUE" if write_off else "ACTIVE", "loan")
        loan = self.net.get("loan/" + loan_id)
        sender = data.draw(usually(loan["bank"] if loan else "bank-a", SENDERS))
        op = "loan.write_off" if write_off else "loan.mark_overdue"
        receipt = self.tx(sender, op, {"loan": loan_id})
        if receipt.ok and not write_off:
            assert self.today() > loan["due_day"]

    # Collection -------------------------------------------------------------------------------

    @having("loan/", "OVERDUE")
    @rule(data=st.data(), bid_days=st.integers(-1, 3), reveal_days=st.integers(0, 3))
    def publish(self, data: st.DataObject, bid_days: int, reveal_days: int) -> None:
        loan_id = self.pick(data, "loan/", "OVERDUE", "loan")
        loan = self.net.get("loan/" + loan_id)
        sender = data.draw(usually(loan["bank"] if loan else "bank-a", SENDERS))
        bid_deadline = self.today() + bid_days
        self.tx(
            sender,
            "collection.publish",
            {
                "loan": loan_id,
                "bid_deadline": bid_deadline,
                "reveal_deadline": bid_deadline + reveal_days,
                "contact_commitment": sha256(b"c"),
            },
        )

    @having("task/", "BIDDING")
    @rule(data=st.data(), rate=st.integers(0, 3100))
    def bid(self, data: st.DataObject, rate: int) -> None:
        task_id = self.pick(data, "task/", "BIDDING", "task")
        agency = data.draw(usually(data.draw(st.sampled_from(AGENCIES)), SENDERS))
        salt = data.draw(st.binary(min_size=16, max_size=16))
        receipt = self.tx(
            agency,
            "collection.bid",
            {"task": task_id, "commitment": bid_commitment(task_id, agency, rate, salt)},
        )
        if receipt.ok:
            self.sealed_bids[(task_id, agency)] = (rate, salt)

    @precondition(lambda self: bool(self.sealed_bids))
    @rule(data=st.data(), tamper=usually(0, [1]))
    def reveal(self, data: st.DataObject, tamper: int) -> None:
        if not self.sealed_bids:
            return
        task_id, agency = data.draw(st.sampled_from(sorted(self.sealed_bids)))
        rate, salt = self.sealed_bids[(task_id, agency)]
        sender = data.draw(usually(agency, SENDERS))
        receipt = self.tx(
            sender, "collection.reveal", {"task": task_id, "rate_bp": rate + tamper, "salt": salt}
        )
        if receipt.ok:
            assert tamper == 0 and sender == agency
            assert rate <= self.net.get("task/" + task_id)["ceiling_bp"]

    @having("task/", "BIDDING")
    @rule(data=st.data())
    def assign(self, data: st.DataObject) -> None:
        task_id = self.pick(data, "task/", "BIDDING", "task")
        task = self.net.get("task/" + task_id)
        sender = data.draw(usually(task["bank"] if task else "bank-a", SENDERS))
        receipt = self.tx(sender, "collection.assign", {"task": task_id})
        if receipt.ok and receipt.result["agency"] is not None:
            revealed = []
            for agency in task["bidders"]:
                bid = self.net.get(f"bid/{task_id}/{agency}")
                if bid["rate_bp"] is not None:
                    revealed.append((bid["rate_bp"], bid["height"], bid["index"], agency))
            assert receipt.result["agency"] == min(revealed)[3]

    @having("task/", "ASSIGNED")
    @rule(data=st.data(), wrong=st.booleans())
    def grant_data(self, data: st.DataObject, wrong: bool) -> None:
        task_id = self.pick(data, "task/", "ASSIGNED", "task")
        task = self.net.get("task/" + task_id)
        sender = data.draw(usually(task["bank"] if task else "bank-a", SENDERS))
        recipients = set(self.net.get("role/regulator"))
        recipients.add((task or {}).get("agency") or "agency")
        if wrong:
            recipients ^= {data.draw(st.sampled_from(MEMBERS))}
        boxes = {
            r: seal(self.net.keys[r].public_key, b"debtor contact")
            for r in sorted(recipients)
            if r in self.net.keys
        }
        receipt = self.tx(sender, "collection.grant_data", {"task": task_id, "ciphertexts": boxes})
        if receipt.ok:
            stored = self.net.get("grant/" + task_id)
            assert set(stored) == {task["agency"], *self.net.get("role/regulator")}

    @having("task/", "ASSIGNED")
    @rule(data=st.data(), recover=st.booleans(), fraction=st.integers(0, 3))
    def agency_acts(self, data: st.DataObject, recover: bool, fraction: int) -> None:
        task_id = self.pick(data, "task/", "ASSIGNED", "task")
        task = self.net.get("task/" + task_id)
        sender = data.draw(usually((task or {}).get("agency") or "agency", SENDERS))
        if recover:
            loan = self.net.get("loan/" + task["loan"]) if task else None
            owed = loan["amount_due"] - loan["repaid"] if loan else 1
            args = {"task": task_id, "amount": max(1, owed * fraction // 2)}
            receipt = self.tx(sender, "collection.report_recovery", args)
        else:
            receipt = self.tx(sender, "collection.log_action", {"task": task_id, "action": "call"})
        if receipt.ok:
            assert task["state"] == "ASSIGNED" and sender == task["agency"]

    @having("task/", "ASSIGNED", "STOPPED", "COMPLETED")
    @rule(data=st.data())
    def settle_task(self, data: st.DataObject) -> None:
        task_id = self.pick(
            data,
            "task/",
            ("ASSIGNED", "STOPPED", "COMPLETED", "SETTLED"),
            "task",
        )
        task = self.net.get("task/" + task_id)
        sender = data.draw(usually(task["bank"] if task else "bank-a", SENDERS))
        agency_before = self.net.balance(task["agency"]) if task and task["agency"] else 0
        receipt = self.tx(sender, "collection.settle", {"task": task_id})
        if receipt.ok:
            self.settlements[task_id] += 1
            assert self.settlements[task_id] == 1
            fee = task["rate_bp"] * task["recovered"] // 10_000
            assert receipt.result == {"commission": fee}
            assert self.net.balance(task["agency"]) == agency_before + fee

    # Warehouse receipts -----------------------------------------------------------------------

    @rule(
        data=st.data(),
        lot=st.sampled_from(LOTS),
        quantity=st.integers(-1, 5_000),
        papers=st.integers(0, 15),
    )
    def issue_receipt(self, data: st.DataObject, lot: str, quantity: int, papers: int) -> None:
        sender = data.draw(usually("warehouse-1", SENDERS))
        owner = data.draw(usually(data.draw(st.sampled_from(SUPPLIERS)), SENDERS))
        receipt = self.tx(
            sender,
            "warehouse.issue",
            {
                "owner": owner,
                "lot": lot,
                "commodity": "copper",
                "quantity": quantity,
                "grade": "A",
                "inspection": sha256(b"papers %d" % papers),
            },
        )
        if receipt.ok:
            assert sender in WAREHOUSES and quantity > 0
            assert self.net.get(f"lot/{sender}/{lot}") == receipt.result["receipt"]

    @having("whr/", "ISSUED")
    @rule(
        data=st.data(),
        signer=usually("owner", ["old", "warehouse", "random"]),
        stale=usually(0, [1]),
        quantity=st.integers(1, 5_000),
    )
    def amend_receipt(self, data: st.DataObject, signer: str, stale: int, quantity: int) -> None:
        receipt_id = self.pick(data, "whr/", "ISSUED", "receipt")
        r = self.net.get("whr/" + receipt_id)
        owner = r["owner"] if r else "supplier-a"
        keys = {
            "owner": self.net.keys.get(owner),
            "old": (self.old_keys.get(owner) or [None])[-1],
            "warehouse": self.net.keys["warehouse-1"],
            "random": KeyPair(sha256(b"nobody")),
        }
        key = keys[signer] or keys["random"]
        version = (r["version"] if r else 0) + stale
        inspection = r["inspection"] if r else sha256(b"")
        signature = key.sign(
            amendment_statement(receipt_id, version, "copper", quantity, "B", inspection)
        )
        sender = data.draw(usually(r["warehouse"] if r else "warehouse-1", SENDERS))
        receipt = self.tx(
            sender,
            "warehouse.amend",
            {
                "receipt": receipt_id,
                "commodity": "copper",
                "quantity": quantity,
                "grade": "B",
                "inspection": inspection,
                "consent": signature,
            },
        )
        if receipt.ok:
            assert r["state"] == "ISSUED" and stale == 0 and sender == r["warehouse"]
            assert key.public_key == self.member(owner)["key"]
            assert self.net.get("whr/" + receipt_id)["quantity"] == quantity

    @having("whr/", "ISSUED")
    @rule(data=st.data(), same_block_rival=st.booleans())
    def pledge_receipt(self, data: st.DataObject, same_block_rival: bool) -> None:
        receipt_id = self.pick(data, "whr/", ("ISSUED", "RELEASED"), "receipt")
        r = self.net.get("whr/" + receipt_id)
        sender = data.draw(usually(r["owner"] if r else "supplier-a", SENDERS))
        bank = data.draw(usually(data.draw(st.sampled_from(BANKS)), SENDERS))
        txs = [(sender, "warehouse.pledge", {"receipt": receipt_id, "bank": bank})]
        if same_block_rival:
            txs.append((sender, "warehouse.pledge", {"receipt": receipt_id, "bank": "bank-b"}))
        receipts = self.block(txs)
        succeeded = [a["bank"] for (_, _, a), rc in zip(txs, receipts, strict=True) if rc.ok]
        assert len(succeeded) <= 1
        if succeeded:
            assert r["released"] == 0
            self.receipt_pledges[receipt_id] += 1
            assert self.receipt_pledges[receipt_id] == 1

    @having("whr/", "PLEDGED")
    @rule(
        data=st.data(),
        principal=st.integers(0, 900_000),
        interest=st.integers(-1, 50_000),
        due=st.integers(-1, 40),
    )
    def lend_on_receipt(self, data: st.DataObject, principal: int, interest: int, due: int) -> None:
        receipt_id = self.pick(data, "whr/", "PLEDGED", "receipt")
        r = self.net.get("whr/" + receipt_id)
        sender = data.draw(usually((r or {}).get("pledgee") or "bank-a", SENDERS))
        receipt = self.tx(
            sender,
            "warehouse.lend",
            {
                "receipt": receipt_id,
                "principal": principal,
                "amount_due": principal + interest,
                "due_day": self.today() + due,
            },
        )
        if receipt.ok:
            assert r["loan"] is None and r["pledgee"] == sender and r["released"] == 0
            assert self.net.get("loan/" + receipt.result["loan"])["receipt"] == receipt_id

    @having("whr/", "ISSUED", "PLEDGED", "RELEASED")
    @rule(data=st.data(), extra=st.integers(-1, 3))
    def release_goods(self, data: st.DataObject, extra: int) -> None:
        receipt_id = self.pick(data, "whr/", ("PLEDGED", "RELEASED", "ISSUED"), "receipt")
        r = self.net.get("whr/" + receipt_id)
        allowed = releasable(self.net.state, r) - r["released"] if r else 1
        quantity = max(1, data.draw(st.integers(0, max(0, allowed))) + max(0, extra - 2))
        controller = (r["pledgee"] or r["owner"]) if r else "bank-a"
        sender = data.draw(usually(controller, SENDERS))
        receipt = self.tx(
            sender, "warehouse.release", {"receipt": receipt_id, "quantity": quantity}
        )
        if receipt.ok:
            assert sender == controller and quantity <= allowed

    @having("whr/", "RELEASED", "LIQUIDATED")
    @rule(data=st.data(), extra=st.integers(0, 2))
    def outbound_goods(self, data: st.DataObject, extra: int) -> None:
        receipt_id = self.pick(data, "whr/", ("RELEASED", "LIQUIDATED"), "receipt")
        r = self.net.get("whr/" + receipt_id)
        waiting = r["released"] - r["shipped"] if r else 0
        quantity = max(1, data.draw(st.integers(0, waiting)) + extra // 2)
        sender = data.draw(usually(r["warehouse"] if r else "warehouse-1", SENDERS))
        receipt = self.tx(
            sender, "warehouse.outbound", {"receipt": receipt_id, "quantity": quantity}
        )
        if receipt.ok:
            assert sender == r["warehouse"] and quantity <= waiting

    @having("whr/", "PLEDGED", "RELEASED")
    @rule(data=st.data(), proceeds=st.integers(0, 900_000))
    def liquidate_receipt(self, data: st.DataObject, proceeds: int) -> None:
        receipt_id = self.pick(data, "whr/", ("PLEDGED", "RELEASED"), "receipt")
        r = self.net.get("whr/" + receipt_id)
        loan = self.net.get("loan/" + r["loan"]) if r and r["loan"] else None
        sender = data.draw(usually((r or {}).get("pledgee") or "bank-a", SENDERS))
        receipt = self.tx(
            sender, "warehouse.liquidate", {"receipt": receipt_id, "proceeds": proceeds}
        )
        if receipt.ok:
            assert loan is not None and loan["state"] in ("OVERDUE", "COLLECTION")
            assert receipt.result["liquidated"] == r["quantity"] - r["released"]
            owed = loan["amount_due"] - loan["repaid"]
            assert receipt.result["applied"] == min(proceeds, owed)

    # Credit lines -----------------------------------------------------------------------------

    @rule(
        data=st.data(),
        amounts=st.lists(st.integers(0, 300_000), min_size=0, max_size=4),
        due=st.integers(0, 30),
        threshold=st.integers(300, 700),
    )
    def open_credit_line(
        self, data: st.DataObject, amounts: list[int], due: int, threshold: int
    ) -> None:
        sender = data.draw(usually(data.draw(st.sampled_from(BANKS)), SENDERS))
        borrower = data.draw(usually(data.draw(st.sampled_from(SUPPLIERS)), SENDERS))
        score = credit_report(self.net.state, borrower)["score"]
        receipt = self.tx(
            sender,
            "creditline.open",
            {
                "borrower": borrower,
                "amounts": tuple(amounts),
                "due_days": tuple([due] * len(amounts)),
                "threshold": threshold,
                "rate_bp": data.draw(st.sampled_from([0, 300])),
            },
        )
        if receipt.ok:
            assert score >= threshold and all(amounts) and due > 0
            assert receipt.result["score"] == score

    @rule(
        data=st.data(),
        quantity=st.integers(1, 3_000),
        repaid=st.integers(0, 4),
        late=st.booleans(),
    )
    def finance_goods(self, data: st.DataObject, quantity: int, repaid: int, late: bool) -> None:
        """Issue, pledge, lend, repay a share, release it, ship it; or default and liquidate."""
        owner = data.draw(st.sampled_from(SUPPLIERS))
        bank = data.draw(st.sampled_from(BANKS))
        self.key_counter += 1
        receipt = self.tx(
            "warehouse-1",
            "warehouse.issue",
            {
                "owner": owner,
                "lot": f"flow-{self.key_counter}",
                "commodity": "rice",
                "quantity": quantity,
                "grade": "1",
                "inspection": sha256(b"flow %d" % self.key_counter),
            },
        )
        if not receipt.ok:
            return
        receipt_id = receipt.result["receipt"]
        if not self.tx(owner, "warehouse.pledge", {"receipt": receipt_id, "bank": bank}).ok:
            return
        self.receipt_pledges[receipt_id] += 1
        receipt = self.tx(
            bank,
            "warehouse.lend",
            {
                "receipt": receipt_id,
                "principal": 40_000,
                "amount_due": 44_000,
                "due_day": self.today() + 10,
            },
        )
        if not receipt.ok:
            return
        loan_id = receipt.result["loan"]
        if repaid:
            self.tx(owner, "loan.repay", {"loan": loan_id, "amount": 11_000 * repaid})
        share = releasable(self.net.state, self.net.get("whr/" + receipt_id))
        if share:
            self.tx(bank, "warehouse.release", {"receipt": receipt_id, "quantity": share})
            self.tx("warehouse-1", "warehouse.outbound", {"receipt": receipt_id, "quantity": share})
        if late:
            self.tx("regulator", "clock.advance", {"days": 11})
            self.tx(bank, "loan.mark_overdue", {"loan": loan_id})
            self.tx(bank, "warehouse.liquidate", {"receipt": receipt_id, "proceeds": 20_000})

    @rule(data=st.data(), late_at=st.integers(0, 3), confirm_first=st.booleans())
    def draw_a_credit_line(self, data: st.DataObject, late_at: int, confirm_first: bool) -> None:
        """Open a line of three tranches and repay each in full, on time until tranche
        `late_at`: the next tranche comes by itself until a late repayment blocks the line."""
        borrower = data.draw(st.sampled_from(SUPPLIERS))
        bank = data.draw(st.sampled_from(BANKS))
        if confirm_first:
            self.finance_a_receivable_quietly(borrower)
        score = credit_report(self.net.state, borrower)["score"]
        receipt = self.tx(
            bank,
            "creditline.open",
            {
                "borrower": borrower,
                "amounts": (50_000, 60_000, 70_000),
                "due_days": (5, 5, 5),
                "threshold": max(0, score - data.draw(st.integers(0, 60))),
                "rate_bp": 0,
            },
        )
        if not receipt.ok:
            return
        line_id = receipt.result["line"]
        loan_id: str | None = receipt.result["loan"]
        for index in range(3):
            if loan_id is None:
                break
            if index == late_at:
                self.tx("regulator", "clock.advance", {"days": 6})
            loan = self.net.get("loan/" + loan_id)
            receipt = self.tx(
                borrower, "loan.repay", {"loan": loan_id, "amount": loan["amount_due"]}
            )
            decided = receipt.result or {}
            if index < 2 and receipt.ok:
                line = self.net.get("cline/" + line_id)
                assert decided["tranche"] == index + 1
                assert (decided["tranche_state"] == "RELEASED") == (line["state"] != "BLOCKED")
                if index >= late_at:
                    assert decided["tranche_state"] == "REFUSED"
            loan_id = decided.get("tranche_loan")

    def finance_a_receivable_quietly(self, supplier: str) -> None:
        due_day = self.today() + 30
        receipt = self.tx(
            supplier, "receivable.draft", {"debtor": "core", "amount": 500_000, "due_day": due_day}
        )
        if receipt.ok:
            rcv_id = receipt.result["receivable"]
            statement = contracts.confirmation_statement(rcv_id, "core", 500_000, due_day)
            self.tx(
                "core",
                "receivable.confirm",
                {
                    "receivable": rcv_id,
                    "amount": 500_000,
                    "due_day": due_day,
                    "confirmation": self.net.keys["core"].sign(statement),
                },
            )

    # Whole flows, so the random rules above also meet deep states ----------------------------

    @rule(
        data=st.data(),
        amount=st.integers(2, 900_000),
        due=st.integers(1, 30),
        split=st.booleans(),
        lend=st.booleans(),
    )
    def finance_a_receivable(
        self, data: st.DataObject, amount: int, due: int, split: bool, lend: bool
    ) -> None:
        """Draft, confirm, maybe split, pledge and borrow against it: valid steps, which may
        still fail on a frozen party, an exhausted credit line or a spent balance."""
        supplier = data.draw(st.sampled_from(SUPPLIERS))
        debtor = data.draw(st.sampled_from(CORES))
        bank = data.draw(st.sampled_from(BANKS))
        due_day = self.today() + due
        receipt = self.tx(
            supplier, "receivable.draft", {"debtor": debtor, "amount": amount, "due_day": due_day}
        )
        if not receipt.ok:
            return
        rcv_id = receipt.result["receivable"]
        statement = contracts.confirmation_statement(rcv_id, debtor, amount, due_day)
        receipt = self.tx(
            debtor,
            "receivable.confirm",
            {
                "receivable": rcv_id,
                "amount": amount,
                "due_day": due_day,
                "confirmation": self.net.keys[debtor].sign(statement),
            },
        )
        if receipt.ok and split:
            first = data.draw(st.integers(1, amount - 1))
            other = data.draw(st.sampled_from(SUPPLIERS))
            parts = ((supplier, first), (other, amount - first))
            receipt = self.tx(supplier, "receivable.split", {"receivable": rcv_id, "parts": parts})
            if receipt.ok:
                rcv_id = receipt.result["children"][0]
                amount = first
        if not receipt.ok:
            return
        receipt = self.tx(supplier, "receivable.pledge", {"receivable": rcv_id, "bank": bank})
        if receipt.ok:
            self.pledges[rcv_id] += 1
        if receipt.ok and lend:
            principal = data.draw(st.integers(1, amount))
            self.tx(
                bank,
                "loan.lend",
                {
                    "borrower": supplier,
                    "principal": principal,
                    "amount_due": principal + data.draw(st.integers(0, amount)),
                    "due_day": due_day,
                    "receivable": rcv_id,
                },
            )

    @rule(
        data=st.data(),
        late=st.integers(1, 120),
        bidders=st.integers(0, 3),
        reveals=st.integers(0, 3),
        bank_assigns=st.booleans(),
    )
    def loan_into_collection(
        self, data: st.DataObject, late: int, bidders: int, reveals: int, bank_assigns: bool
    ) -> None:
        """Lend, let the loan fall overdue, publish a task, take sealed bids, reveal, assign."""
        bank = data.draw(st.sampled_from(BANKS))
        borrower = data.draw(st.sampled_from(SUPPLIERS + CORES))
        principal = data.draw(st.integers(1, 600_000))
        receipt = self.tx(
            bank,
            "loan.lend",
            {
                "borrower": borrower,
                "principal": principal,
                "amount_due": principal * 11 // 10,
                "due_day": self.today() + 1,
                "receivable": None,
            },
        )
        if not receipt.ok:
            return
        loan_id = receipt.result["loan"]
        self.tx("regulator", "clock.advance", {"days": 1 + late})
        self.tx(bank, "loan.mark_overdue", {"loan": loan_id})
        today = self.today()
        receipt = self.tx(
            bank,
            "collection.publish",
            {
                "loan": loan_id,
                "bid_deadline": today,
                "reveal_deadline": today + 1,
                "contact_commitment": sha256(borrower.encode()),
            },
        )
        if not receipt.ok:
            return
        task_id = receipt.result["task"]
        agencies = data.draw(st.permutations(AGENCIES))[:bidders]
        for agency in agencies:
            rate = data.draw(st.integers(0, 3100))
            salt = data.draw(st.binary(min_size=16, max_size=16))
            receipt = self.tx(
                agency,
                "collection.bid",
                {"task": task_id, "commitment": bid_commitment(task_id, agency, rate, salt)},
            )
            if receipt.ok:
                self.sealed_bids[(task_id, agency)] = (rate, salt)
        self.tx("regulator", "clock.advance", {"days": 1})
        for agency in agencies[:reveals]:
            if (task_id, agency) in self.sealed_bids:
                rate, salt = self.sealed_bids[(task_id, agency)]
                self.tx(
                    agency, "collection.reveal", {"task": task_id, "rate_bp": rate, "salt": salt}
                )
        if not bank_assigns:
            self.tx("regulator", "clock.advance", {"days": 1})
        self.tx(
            bank if bank_assigns else data.draw(st.sampled_from(MEMBERS)),
            "collection.assign",
            {"task": task_id},
        )

    # Securitisation ---------------------------------------------------------------------------

    def pool(self, pool_id: str) -> dict[str, Any] | None:
        return self.net.get("pool/" + pool_id)

    @rule(
        data=st.data(),
        count=st.integers(1, 3),
        reuse_pooled=st.booleans(),
        share=st.integers(40, 110),
        tranches=st.integers(1, 3),
        period=st.integers(1, 15),
        default_days=st.integers(0, 20),
    )
    def securitise(
        self,
        data: st.DataObject,
        count: int,
        reuse_pooled: bool,
        share: int,
        tranches: int,
        period: int,
        default_days: int,
    ) -> None:
        """Lend, pool (sometimes a loan pooled before), structure (sometimes over the
        principal), grant, rate, subscribe and close: valid steps that may still fail."""
        bank = data.draw(st.sampled_from(BANKS))
        loans = []
        for _ in range(count):
            principal = data.draw(st.integers(10_000, 300_000))
            receipt = self.tx(
                bank,
                "loan.lend",
                {
                    "borrower": data.draw(st.sampled_from(SUPPLIERS + CORES)),
                    "principal": principal,
                    "amount_due": principal * 105 // 100,
                    "due_day": self.today() + data.draw(st.integers(1, 40)),
                    "receivable": None,
                },
            )
            if receipt.ok:
                loans.append(receipt.result["loan"])
        if reuse_pooled and self.pool_of_loan:
            loans.append(data.draw(st.sampled_from(sorted(self.pool_of_loan))))
        if not loans:
            return
        receipt = self.tx(
            data.draw(usually(bank, SENDERS)),
            "pool.create",
            {
                "loans": tuple(loans),
                "arranger": data.draw(usually("arranger", SENDERS)),
                "period_days": period,
                "default_days": default_days,
                "data_commitment": sha256(b"tape"),
            },
        )
        if not receipt.ok:
            return
        pool_id = receipt.result["pool"]
        assert not any(loan in self.pool_of_loan for loan in loans)
        for loan in loans:
            self.pool_of_loan[loan] = pool_id
        total = receipt.result["principal"] * share // 100
        sizes = [total // tranches] * (tranches - 1)
        sizes.append(total - sum(sizes))
        terms = tuple(
            (TRANCHE_NAMES[i], size, data.draw(st.sampled_from([1, 10, 100])), 200 * (3 - i))
            for i, size in enumerate(sizes)
            if size
        )
        terms = tuple((n, size - size % units, units, c) for n, size, units, c in terms)
        receipt = self.tx("arranger", "pool.structure", {"pool": pool_id, "tranches": terms})
        if receipt.ok:
            assert sum(size for _, size, _, _ in terms) <= receipt.result["principal"]
        else:
            return
        agency = data.draw(st.sampled_from(RATING_AGENCIES))
        readers = (agency, *self.net.get("role/regulator"))
        boxes = {m: seal(self.net.keys[m].public_key, b"tape") for m in readers}
        self.tx(bank, "pool.grant_data", {"pool": pool_id, "agency": agency, "ciphertexts": boxes})
        rater = data.draw(usually(agency, SENDERS))
        receipt = self.tx(
            rater,
            "pool.rate",
            {"pool": pool_id, "grades": tuple("A" * len(terms)), "report": sha256(b"r")},
        )
        if receipt.ok:
            assert rater == agency
        for name, _, units, _ in terms:
            for investor in data.draw(st.lists(st.sampled_from(INVESTORS), max_size=2)):
                wanted = data.draw(st.integers(1, units + 1))
                self.tx(
                    investor,
                    "pool.subscribe",
                    {"pool": pool_id, "tranche": name, "units": wanted},
                )
        if data.draw(st.integers(0, 4)):
            self.tx(data.draw(usually("arranger", SENDERS)), "pool.close", {"pool": pool_id})

    @having("pool/", "ISSUED")
    @rule(data=st.data(), payers=st.integers(0, 3), write_off=st.booleans())
    def service_a_pool(self, data: st.DataObject, payers: int, write_off: bool) -> None:
        """A period of a pool's life: some borrowers repay, the servicer marks late loans
        overdue (and may write them off), then distributes."""
        pool_id = self.pick(data, "pool/", "ISSUED", "pool")
        pool = self.pool(pool_id)
        if pool is None:
            return
        self.tx("regulator", "clock.advance", {"days": pool["period_days"]})
        loans = [self.net.get("loan/" + loan_id) for loan_id in pool["loans"]]
        for loan in data.draw(st.permutations(loans))[:payers]:
            owed = loan["amount_due"] - loan["repaid"]
            if loan["state"] in ("ACTIVE", "OVERDUE", "COLLECTION") and owed:
                amount = data.draw(st.integers(1, owed))
                self.tx(loan["borrower"], "loan.repay", {"loan": loan["id"], "amount": amount})
        for loan_id in pool["loans"]:
            self.tx(pool["bank"], "loan.mark_overdue", {"loan": loan_id})
            if write_off:
                self.tx(pool["bank"], "loan.write_off", {"loan": loan_id})
        self.distribute_now(pool_id, pool["bank"], None)

    @having("pool/", "ISSUED")
    @rule(data=st.data(), instruct=st.integers(0, 3), days=st.integers(0, 20))
    def distribute(self, data: st.DataObject, instruct: int, days: int) -> None:
        """A distribution (sometimes with an instruction, usually a wrong one): the account
        pays out exactly what holders receive, and a junior gets nothing while a senior
        tranche is still owed more than its rounding."""
        if days:
            self.tx("regulator", "clock.advance", {"days": days})
        pool_id = self.pick(data, "pool/", "ISSUED", "pool")
        pool = self.pool(pool_id)
        count = len(pool["tranches"]) if pool else 1
        instruction = None
        if instruct:
            cash = self.net.balance(f"{pool_id}/collection")
            instruction = tuple(data.draw(st.integers(0, cash)) for _ in range(count))
        sender = data.draw(usually(pool["bank"] if pool else "bank-a", SENDERS))
        self.distribute_now(pool_id, sender, instruction)

    def distribute_now(
        self, pool_id: str, sender: str, instruction: tuple[int, ...] | None
    ) -> None:
        account = f"{pool_id}/collection"
        before = self.net.balance(account)
        investors = {m: self.net.balance(m) for m in INVESTORS}
        receipt = self.tx(sender, "pool.distribute", {"pool": pool_id, "payments": instruction})
        if not receipt.ok:
            return
        paid = receipt.result["paid"]
        assert instruction is None or tuple(instruction) == paid
        gained = sum(self.net.balance(m) - investors[m] for m in INVESTORS)
        assert before - self.net.balance(account) == sum(paid) == gained
        assert self.net.balance(account) == receipt.result["carried"]
        after = self.pool(pool_id)
        report = self.net.get(f"report/{pool_id}/{after['distributions']:04d}")
        assert report["paid"] == sum(paid) and report["available"] == before
        paid_down = [t["interest"] + t["principal"] for t in report["tranches"]]
        for junior, amount in enumerate(paid_down):
            if amount == 0:
                continue
            for senior in after["tranches"][:junior]:
                owed = senior["interest_due"] + tranche_balance(senior) + senior["losses"]
                assert owed < max(senior["units"], 1)
        if receipt.result["final"]:
            assert after["state"] == "RETIRED" and self.net.balance(account) == 0

    @having("pool/", "ISSUED")
    @rule(data=st.data(), honest=usually(True, [False]), extra=st.integers(0, 1))
    def trade_units(self, data: st.DataObject, honest: bool, extra: int) -> None:
        """Delivery versus payment between investors: units and money move together or not."""
        pool_id = self.pick(data, "pool/", "ISSUED", "pool")
        pool = self.pool(pool_id)
        held = [
            (t["name"], seller, units)
            for t in (pool["tranches"] if pool else ())
            for seller, units in t["holders"].items()
        ]
        if not held:
            return
        name, seller, units = data.draw(st.sampled_from(held))
        buyer = data.draw(usually(data.draw(st.sampled_from(INVESTORS)), SENDERS))
        selling = data.draw(st.integers(1, units)) + extra
        price = data.draw(st.integers(1, 200_000))
        self.trades += 1
        trade = f"trade-{self.trades}"
        statement = contracts.transfer_statement(
            pool_id, trade, name, seller, buyer, selling, price
        )
        signer = self.net.keys.get(buyer) if honest else self.net.keys[seller]
        args = {
            "pool": pool_id,
            "trade": trade,
            "tranche": name,
            "seller": seller,
            "buyer": buyer,
            "units": selling,
            "price": price,
            "consent": (signer or self.net.keys[seller]).sign(statement),
        }
        money = (self.net.balance(seller), self.net.balance(buyer))
        receipt = self.tx(data.draw(usually(seller, SENDERS)), "pool.transfer_units", args)
        if receipt.ok:
            assert honest and selling <= units and buyer != seller
            assert (self.net.balance(seller), self.net.balance(buyer)) == (
                money[0] + price,
                money[1] - price,
            )

    # Anything at all ----------------------------------------------------------------------------

    @rule(data=st.data(), sender=st.sampled_from(SENDERS))
    def junk(self, data: st.DataObject, sender: str) -> None:
        op = data.draw(
            st.sampled_from(sorted(contracts.OPERATIONS)) | st.text(max_size=12) | codec_values
        )
        if isinstance(op, str) and op in contracts.PARAMETERS and data.draw(st.booleans()):
            args = {n: data.draw(codec_values) for n in sorted(contracts.PARAMETERS[op])}
        else:
            args = data.draw(codec_values)
        self.tx(sender, op, args)

    # Invariants -------------------------------------------------------------------------------

    @invariant()
    def money_is_conserved(self) -> None:
        assert self.net.total_money() == GENESIS_TOTAL
        assert all(self.net.get(k) >= 0 for k in self.net.state.keys_with_prefix("bal/"))

    @invariant()
    def one_pledge_per_receivable_ever(self) -> None:
        for rcv_id in self.ids("rcv/"):
            rcv = self.net.get("rcv/" + rcv_id)
            if rcv_id in self.first_pledgee:
                assert rcv["pledgee"] == self.first_pledgee[rcv_id]
            elif rcv["pledgee"] is not None:
                self.first_pledgee[rcv_id] = rcv["pledgee"]

    @invariant()
    def split_children_add_up(self) -> None:
        for rcv_id in self.ids("rcv/", "CONSUMED"):
            parent = self.net.get("rcv/" + rcv_id)
            children = [self.net.get("rcv/" + c) for c in parent["children"]]
            assert sum(c["amount"] for c in children) == parent["amount"]
            assert all(c["debtor"] == parent["debtor"] for c in children)
            assert all(c["due_day"] == parent["due_day"] for c in children)

    @invariant()
    def one_agency_per_task(self) -> None:
        for task_id in self.ids("task/"):
            agency = self.net.get("task/" + task_id)["agency"]
            if task_id in self.first_agency:
                assert agency == self.first_agency[task_id]
            elif agency is not None:
                self.first_agency[task_id] = agency

    @invariant()
    def one_pledge_per_receipt_and_goods_within_bounds(self) -> None:
        for receipt_id in self.ids("whr/"):
            r = self.net.get("whr/" + receipt_id)
            assert 0 <= r["shipped"] <= r["released"] <= r["quantity"]
            if r["state"] in ("PLEDGED", "RELEASED") and r["pledgee"] is not None:
                assert r["released"] <= releasable(self.net.state, r)
            seen = self.receipt_seen.get(receipt_id)
            if seen is not None:
                if seen["pledgee"] is not None:
                    assert r["pledgee"] == seen["pledgee"]
                    terms = ("commodity", "quantity", "grade", "inspection", "version")
                    assert all(r[t] == seen[t] for t in terms)
                assert r["released"] >= seen["released"] and r["shipped"] >= seen["shipped"]
                if seen["state"] in ("CLOSED", "LIQUIDATED"):
                    assert r["state"] == seen["state"]
            self.receipt_seen[receipt_id] = r

    @invariant()
    def credit_factors_only_grow_and_scores_follow_them(self) -> None:
        for member_id in self.ids("cfac/"):
            f = self.net.get("cfac/" + member_id)
            before = self.factors_seen.get(member_id)
            if before is not None:
                assert all(f[name] >= before[name] for name in FACTORS)
            self.factors_seen[member_id] = f
            report = credit_report(self.net.state, member_id)
            assert report["factors"] == f and report["score"] == credit_score(f)

    @invariant()
    def a_loan_is_in_one_pool_ever(self) -> None:
        listed: dict[str, str] = {}
        for pool_id in self.ids("pool/"):
            for loan in self.pool(pool_id)["loans"]:
                assert loan not in listed
                listed[loan] = pool_id
        for loan, pool_id in self.pool_of_loan.items():
            assert listed.get(loan) == pool_id == self.net.get("pooled/" + loan)
        assert len(self.net.state.keys_with_prefix("pooled/")) == len(listed)

    @invariant()
    def tranches_within_size_with_losses_in_order_and_units_conserved(self) -> None:
        for pool_id in self.ids("pool/"):
            pool = self.pool(pool_id)
            tranches = pool["tranches"]
            for index, t in enumerate(tranches):
                assert t["principal_paid"] >= 0 and t["losses"] >= 0
                assert t["principal_paid"] + t["losses"] <= t["size"] == t["face"] * t["units"]
                if t["losses"]:
                    assert all(tranche_balance(j) == 0 for j in tranches[index + 1 :])
                assert sum(t["holders"].values()) == t["sold"]
                assert all(units > 0 for units in t["holders"].values())
                if pool["state"] in ("ISSUED", "RETIRED"):
                    assert t["sold"] == t["units"]
                    first = self.issued_units.setdefault((pool_id, index), t["units"])
                    assert t["units"] == first

    def teardown(self) -> None:
        """The same history replayed from genesis gives the same state, hence the same scores."""
        again = replayed(self.net.history)
        assert again.state.root == self.net.state.root
        for member_id in self.ids("cfac/"):
            assert credit_report(again.state, member_id) == credit_report(self.net.state, member_id)

    @invariant()
    def audit_finds_no_problems(self) -> None:
        report = audit_report(self.net.state)
        assert report["problems"] == []
        assert report["total_money"] == GENESIS_TOTAL


# No shrinking: a shrink of this machine takes minutes, and a failure already prints every step.
ContractsMachine.TestCase.settings = settings(
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    max_examples=40,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestContractsMachine = ContractsMachine.TestCase
