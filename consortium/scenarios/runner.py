"""Running scenarios against a live network: sign, submit, wait for agreement, compare.

Each transaction is accepted as the client accepts it (f+1 matching signed commit notices), and
the node named in `via` must also have reported the same receipt. A step passes only if the
outcome is the expected one (committed, or rejected with the expected reason) and its result
holds the expected values; the first step that does not stops its scenario, and the result says
which step, what was expected and what the chain answered.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consortium.client.client import ClientLogin, Outcome
from consortium.client.wallet import Wallet
from consortium.config import NetworkConfig
from consortium.contracts import audit_report, business_day, contact_commitment
from consortium.contracts.records import BALANCE, GRANT, POOL
from consortium.crypto import KeyPair
from consortium.errors import RemoteError, SignatureError
from consortium.keys import KeyDirectory
from consortium.scenarios.changes import ChangeTracker, record_key
from consortium.scenarios.errors import StepError
from consortium.scenarios.expressions import Values, lookup
from consortium.scenarios.helpers import KeyRing, make_helper_call
from consortium.scenarios.ledger_audit import regulator_audit, regulator_node
from consortium.scenarios.ledger_view import Ledgers, NodeLedger
from consortium.scenarios.model import (
    CheckStep,
    LetStep,
    Scenario,
    Step,
    TogetherStep,
    TxStep,
)
from consortium.scenarios.narration import Narrator
from consortium.scenarios.results import NOT_RUN, ScenarioResult, StepResult
from consortium.scenarios.witness import WitnessingClient, agrees

SCENARIO_CLIENT_ID = "load-7"
RECEIPT_TIMEOUT_S = 20.0
VIA_TIMEOUT_S = 5.0
STORE_TIMEOUT_S = 10.0


def _plain(value: Any) -> Any:
    """Tuples as lists, so a decoded result compares equal to what YAML wrote."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def shown(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()[:16] + ("..." if len(value) > 8 else "")
    if isinstance(value, KeyPair):
        return f"key pair {value.public_key.hex()[:16]}..."
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return str(value)


def planned(step: Step) -> list[tuple[str, str]]:
    """The (name, expectation) rows a step would have produced, for steps left unrun."""
    if isinstance(step, TxStep):
        return [(step.name, step.expect.describe())]
    if isinstance(step, TogetherStep):
        return [(inner.name, inner.expect.describe()) for inner in step.steps]
    if isinstance(step, CheckStep):
        return [(step.name, f"check of {step.kind}")]
    return []


@dataclass(slots=True)
class _Run:
    """What one scenario run has seen so far."""

    values: Values
    last_height: int = 0
    start_balances: dict[str, int] = field(default_factory=dict)
    start_open: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)  # tx id hex -> reason
    snapshot: dict[str, Any] = field(default_factory=dict)


class ScenarioRunner:
    """Runs scenarios one after another over one client connection."""

    def __init__(self, config: NetworkConfig, keys: KeyDirectory, narrator: Narrator) -> None:
        self.config = config
        self.keys = keys
        self.narrator = narrator
        self.ring = KeyRing(config, keys)
        self.ledgers = Ledgers(config)
        self.regulator = regulator_node(config)
        self.tracker = ChangeTracker()
        self.wallets: dict[tuple[str, bytes], Wallet] = {}
        self.client: WitnessingClient | None = None
        self.today = 0
        self.height = 0

    async def run(self, scenarios: list[Scenario]) -> list[ScenarioResult]:
        login = ClientLogin.local(self.config, SCENARIO_CLIENT_ID)
        try:
            async with WitnessingClient(self.config, self.keys, login) as client:
                self.client = client
                self._start_from_regulator_ledger()
                return [await self.run_one(scenario) for scenario in scenarios]
        finally:
            self.client = None
            self.ledgers.close()

    def _regulator_ledger(self) -> NodeLedger | None:
        return self.ledgers.of(self.regulator) if self.ledgers.has(self.regulator) else None

    def _start_from_regulator_ledger(self) -> None:
        ledger = self._regulator_ledger()
        if ledger is not None:
            with ledger.snapshot():
                self.today = business_day(ledger)
                self.height = ledger.height()

    async def _caught_up_regulator(self, height: int) -> NodeLedger:
        if not self.ledgers.has(self.regulator):
            raise StepError(
                f"this check reads the ledger of node {self.regulator}, which has no store here"
            )
        try:
            return await self.ledgers.caught_up(self.regulator, height, STORE_TIMEOUT_S)
        except RemoteError as exc:
            raise StepError(str(exc)) from None

    async def run_one(self, scenario: Scenario) -> ScenarioResult:
        started = time.monotonic()
        values = Values(secrets.token_hex(3), self.today, make_helper_call(self.ring))
        run = _Run(values, last_height=self.height)
        ledger = self._regulator_ledger()
        if ledger is not None:
            ledger = await self.ledgers.caught_up(self.regulator, self.height, STORE_TIMEOUT_S)
            with ledger.snapshot():
                run.start_balances = {
                    k[len(BALANCE) :]: v for k, v in ledger.values_with_prefix(BALANCE).items()
                }
                run.start_open = audit_report(ledger)["open"]
            run.snapshot = self.tracker.snapshot(ledger)
        self.narrator.scenario_started(scenario)
        results: list[StepResult] = []
        failure = None
        for step in scenario.steps:
            if failure is not None:
                results += [
                    StepResult(name, expected, NOT_RUN, False) for name, expected in planned(step)
                ]
                continue
            try:
                step_results = await self._step(step, run)
            except StepError as exc:
                step_results = [StepResult(step.name, "step runs", f"error: {exc}", False)]
            for result in step_results:
                results.append(result)
                self.narrator.step_finished(len(results), result)
            bad = next((r for r in step_results if not r.passed), None)
            if bad is not None:
                failure = (
                    f"{scenario.name}: step '{bad.name}' ({step.where.split(' ')[0]} of "
                    f"{scenario.source}): expected {bad.expected}, got {bad.outcome}"
                )
        self.today = values.today
        result = ScenarioResult(
            scenario.name,
            scenario.title,
            failure is None,
            results,
            time.monotonic() - started,
            failure,
            dict(values.variables),
        )
        self.narrator.scenario_finished(result)
        return result

    async def _step(self, step: Step, run: _Run) -> list[StepResult]:
        if isinstance(step, LetStep):
            for name, value in step.bindings.items():
                run.values.variables[name] = run.values.resolve(value, f"{step.where}.let.{name}")
            self.narrator.bound({name: shown(run.values.variables[name]) for name in step.bindings})
            return []
        if isinstance(step, TxStep):
            return await self._transactions([step], run)
        if isinstance(step, TogetherStep):
            results = await self._transactions(list(step.steps), run)
            heights = sorted({r.height for r in results if r.height is not None})
            if step.same_block and all(r.passed for r in results):
                results.append(
                    StepResult(
                        step.name,
                        "one block",
                        f"block {heights[0]}" if len(heights) == 1 else f"blocks {heights}",
                        len(heights) == 1,
                        height=heights[0] if heights else None,
                    )
                )
            return results
        return [await self._check(step, run)]

    # -- transactions ------------------------------------------------------------------------

    def _wallet(self, actor: str, key: KeyPair) -> Wallet:
        slot = (actor, key.public_key)
        if slot not in self.wallets:
            self.wallets[slot] = Wallet(self.config.chain_id, actor, key)
        return self.wallets[slot]

    def _sign(self, step: TxStep, run: _Run) -> tuple[str, Any]:
        actor = run.values.resolve(step.actor, f"{step.where}.as")
        if not isinstance(actor, str):
            raise StepError(f"{step.where}.as: {actor!r} is not a member id")
        if step.via not in self.config.node_ids:
            raise StepError(
                f"{step.where}.via: {step.via!r} is not a node (one of "
                f"{', '.join(self.config.node_ids)})"
            )
        args = run.values.resolve(step.args, f"{step.where}.args")
        if step.signed_with is not None:
            key = run.values.resolve(step.signed_with, f"{step.where}.signed_with")
            if not isinstance(key, KeyPair):
                raise StepError(f"{step.where}.signed_with: not a key pair made by `keypair`")
        else:
            key = self.ring.private(actor)
        self.tracker.track(args)
        return actor, self._wallet(actor, key).sign(step.op, args)

    async def _transactions(self, steps: list[TxStep], run: _Run) -> list[StepResult]:
        assert self.client is not None
        signed = [self._sign(step, run) for step in steps]
        tx_ids = [stx.tx_id for _, stx in signed]
        self.client.watch(tx_ids)
        try:
            try:
                outcomes = await self.client.submit(
                    [stx for _, stx in signed], timeout_s=RECEIPT_TIMEOUT_S
                )
            except TimeoutError:
                return [
                    StepResult(
                        step.name,
                        step.expect.describe(),
                        f"no receipt agreed by f+1 nodes within {RECEIPT_TIMEOUT_S:g} s",
                        False,
                        via=step.via,
                        actor=actor,
                        op=step.op,
                        tx_id=stx.tx_id.hex(),
                    )
                    for step, (actor, stx) in zip(steps, signed, strict=True)
                ]
            results = []
            for step, (actor, _stx), outcome in zip(steps, signed, outcomes, strict=True):
                results.append(await self._judge(step, actor, outcome, run))
            await self._narrate_changes(results, run)
            return results
        finally:
            self.client.forget(tx_ids)

    async def _judge(self, step: TxStep, actor: str, outcome: Outcome, run: _Run) -> StepResult:
        assert self.client is not None
        run.values.today = outcome.business_day
        self.height = max(self.height, outcome.height)
        run.last_height = self.height
        got = "committed" if outcome.ok else f"rejected: {outcome.reason}"
        result = StepResult(
            step.name,
            step.expect.describe(),
            got,
            step.expect.met_by(outcome.ok, outcome.reason),
            height=outcome.height,
            via=step.via,
            actor=actor,
            op=step.op,
            tx_id=outcome.tx_id.hex(),
            block_hash=outcome.block_hash.hex(),
            reason=outcome.reason,
        )
        if not outcome.ok:
            run.rejected[outcome.tx_id.hex()] = outcome.reason
        report = await self.client.report_of(outcome.tx_id, step.via, VIA_TIMEOUT_S)
        if report is None:
            result.passed = False
            result.outcome = (
                f"{got}, but node {step.via} sent no notice of it in {VIA_TIMEOUT_S:g} s"
            )
            return result
        if not agrees(report, outcome):
            result.passed = False
            result.outcome = (
                f"{got} by f+1 nodes, but node {step.via} reported height {report.height}, "
                f"ok={report.ok}, reason {report.reason!r}"
            )
            return result
        if outcome.result:
            self.tracker.track(outcome.result)
            result.details.append("result: " + shown(outcome.result))
        if not result.passed:
            return result
        expected = _plain(run.values.resolve(step.result, f"{step.where}.result"))
        actual = _plain(outcome.result or {})
        for name, value in expected.items():
            if actual.get(name) != value:
                result.passed = False
                result.expected += f" with {name} = {shown(value)}"
                result.outcome = f"{got} with {name} = {shown(actual.get(name))}"
                return result
        for name, path in step.save.items():
            run.values.variables[name] = lookup(outcome.result or {}, path, f"{step.where}.save")
        return result

    async def _narrate_changes(self, results: list[StepResult], run: _Run) -> None:
        ledger = self._regulator_ledger()
        if ledger is None or not results:
            return
        try:
            await self.ledgers.caught_up(self.regulator, run.last_height, STORE_TIMEOUT_S)
        except RemoteError as exc:
            results[-1].details.append(f"changes not shown: {exc}")
            return
        after = self.tracker.snapshot(ledger)
        results[-1].details += self.tracker.changes(run.snapshot, after)
        run.snapshot = after

    # -- checks ------------------------------------------------------------------------------

    async def _check(self, step: CheckStep, run: _Run) -> StepResult:
        spec = run.values.resolve(step.spec, step.where)
        ledger = await self._caught_up_regulator(run.last_height)
        result = StepResult(step.name, "", "", True, height=run.last_height, via=self.regulator)
        if step.kind == "records":
            self._check_records(spec["records"], ledger, result)
        elif step.kind == "balances":
            self._check_balances(spec["changes"], ledger, run, result)
        elif step.kind == "audit":
            self._check_audit(spec, ledger, run, result)
        elif step.kind == "contact_data":
            await self._check_contact_data(spec, run, result)
        else:
            await self._check_pool_data(spec, run, result)
        if result.passed:
            result.outcome = result.expected
        return result

    def _check_records(
        self, records: list[dict[str, Any]], ledger: NodeLedger, r: StepResult
    ) -> None:
        r.expected = f"{len(records)} records as listed"
        problems = []
        for wanted in records:
            record_id = wanted["id"]
            key = record_key(record_id) if isinstance(record_id, str) else None
            if key is None:
                raise StepError(f"{record_id!r} is not a receivable, loan or task id")
            record = ledger.get(key)
            if record is None:
                problems.append(f"no {record_id}")
                continue
            for name, value in wanted.items():
                if name != "id" and _plain(record.get(name)) != value:
                    problems.append(
                        f"{record_id} {name} is {shown(record.get(name))}, not {shown(value)}"
                    )
            r.details.append(
                f"{record_id}: "
                + ", ".join(f"{name} {shown(record.get(name))}" for name in wanted if name != "id")
            )
        if problems:
            r.passed = False
            r.outcome = "; ".join(problems)

    def _check_balances(
        self, changes: dict[str, int], ledger: NodeLedger, run: _Run, r: StepResult
    ) -> None:
        r.expected = "balance changes " + ", ".join(f"{m} {c:+,}" for m, c in changes.items())
        with ledger.snapshot():
            now = {k[len(BALANCE) :]: v for k, v in ledger.values_with_prefix(BALANCE).items()}
        actual = {m: now.get(m, 0) - run.start_balances.get(m, 0) for m in changes}
        for member, change in actual.items():
            r.details.append(
                f"{member}: {run.start_balances.get(member, 0):,} -> {now.get(member, 0):,} ({change:+,})"
            )
        if actual != changes:
            r.passed = False
            r.outcome = "balance changes " + ", ".join(f"{m} {c:+,}" for m, c in actual.items())

    def _check_audit(
        self, spec: dict[str, Any], ledger: NodeLedger, run: _Run, r: StepResult
    ) -> None:
        report = regulator_audit(ledger, self.config)
        wanted = ["no problems"]
        problems = list(report["problems"])
        if spec.get("open_unchanged"):
            wanted.append("nothing left open")
            if report["open"] != run.start_open:
                problems.append(f"open went from {run.start_open} to {report['open']}")
            r.details.append(f"open now: {report['open']} (at the start: {run.start_open})")
        if spec.get("lists_rejections"):
            wanted.append(f"all {len(run.rejected)} rejected attempts listed with their reasons")
            listed = {tx["tx_id"]: tx for tx in report["rejected_txs"]}
            for tx_id, reason in run.rejected.items():
                tx = listed.get(tx_id)
                if tx is None or tx["reason"] != reason:
                    problems.append(f"rejected tx {tx_id[:16]} is not listed with its reason")
                else:
                    r.details.append(f"h {tx['height']} {tx['sender']} {tx['op']}: {tx['reason']}")
        r.expected = ", ".join(wanted)
        if problems:
            r.passed = False
            r.outcome = "; ".join(problems)

    async def _check_contact_data(self, spec: dict[str, Any], run: _Run, r: StepResult) -> None:
        task_id = spec["task"]
        if not isinstance(task_id, str) or record_key(task_id) is None:
            raise StepError(f"{task_id!r} is not a task id")

        def read(ledger: NodeLedger) -> tuple[dict[str, bytes] | None, bytes | None]:
            task = ledger.get(record_key(task_id) or task_id)
            return ledger.get(GRANT + task_id), task["contact_commitment"] if task else None

        await self._check_sealed(spec, run, r, read, "contact data", "the task")

    async def _check_pool_data(self, spec: dict[str, Any], run: _Run, r: StepResult) -> None:
        pool_id = spec["pool"]
        if not isinstance(pool_id, str) or not pool_id.startswith("pool-"):
            raise StepError(f"{pool_id!r} is not a pool id")

        def read(ledger: NodeLedger) -> tuple[dict[str, bytes] | None, bytes | None]:
            pool = ledger.get(POOL + pool_id)
            boxes = {
                f"{key.rsplit('/', 1)[1]}'s grant to {member}": box
                for key, grant in ledger.values_with_prefix(f"{GRANT}{pool_id}/").items()
                for member, box in grant.items()
            }
            return boxes, pool["data_commitment"] if pool else None

        await self._check_sealed(spec, run, r, read, "loan-level data", "the pool")

    async def _check_sealed(
        self,
        spec: dict[str, Any],
        run: _Run,
        r: StepResult,
        read: Callable[[NodeLedger], tuple[dict[str, bytes] | None, bytes | None]],
        what: str,
        owner: str,
    ) -> None:
        """Each listed reader tries to open the sealed boxes in its own node's ledger (members
        without a node read through `via`); the verdicts must be the expected ones, and what
        opens must be the data, matching the commitment published with its owner."""
        data, readers = spec["data"], spec["readers"]
        r.expected = ", ".join(f"{m} {v}" for m, v in readers.items())
        got = []
        through = spec.get("via", self.config.node_ids[0])
        if through not in self.config.node_ids:
            raise StepError(f"via: {through!r} is not a node")
        r.via = None
        for member in readers:
            node = member if member in self.config.node_ids else through
            if not self.ledgers.has(node):
                raise StepError(f"{member} reads through node {node}, which has no store here")
            ledger = await self.ledgers.caught_up(node, run.last_height, STORE_TIMEOUT_S)
            with ledger.snapshot():
                boxes, commitment = read(ledger)
            if not boxes or commitment is None:
                raise StepError(
                    f"node {node} holds no {what} for {spec.get('task', spec.get('pool'))}"
                )
            key = self.ring.private(member)
            opened = []
            for box in boxes.values():
                try:
                    opened.append(key.open_sealed(box))
                except SignatureError:
                    continue
            readable = bool(opened)
            sizes = ", ".join(f"{m} {len(b)} bytes" for m, b in boxes.items())
            if readable:
                plain = opened[0]
                matches = contact_commitment(plain) == commitment
                r.details.append(
                    f"{member} (ledger of node {node}) opens a sealed box: {plain.decode(errors='replace')!r}"
                    f"{f', which matches the commitment published with {owner}' if matches else ', which does NOT match the commitment'}"
                )
                if plain != data.encode() or not matches:
                    r.passed = False
            else:
                r.details.append(
                    f"{member} (ledger of node {node}) sees sealed boxes ({sizes}) and opens none"
                )
            got.append(f"{member} {'readable' if readable else 'unreadable'}")
        r.outcome = ", ".join(got)
        if r.outcome != r.expected:
            r.passed = False
