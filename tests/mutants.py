"""Planted bugs for tests/test_mutants.py: one line of the replica, the ledger app, the node core,
the store or the client changed, the way a real mistake would change it.

A mutant replaces one method (or module function) with a copy of its source in which one exact
piece of text is replaced; the replacement must occur exactly once, so a mutant whose target moved
fails loudly instead of silently testing nothing.
"""

from __future__ import annotations
import __future__

import inspect
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from consortium.client import protocol
from consortium.ledger import chain, store
from consortium.node import core, effects, ledger_app, outbox
from consortium.pbft import replica
from consortium.roles import quorum_size


def mutate(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, old: str, new: str) -> None:
    """Install `owner.name` rebuilt from its source with `old` replaced by `new` (once)."""
    original = inspect.unwrap(getattr(owner, name))
    source = textwrap.dedent(inspect.getsource(original))
    if source.count(old) != 1:
        raise AssertionError(f"mutant target {old!r} occurs {source.count(old)} times in {name}")
    module = sys.modules[original.__module__]
    namespace = dict(vars(module))
    code = compile(
        source.replace(old, new),
        f"<mutant of {original.__qualname__}>",
        "exec",
        flags=__future__.annotations.compiler_flag,
        dont_inherit=True,
    )
    exec(code, namespace)
    monkeypatch.setattr(owner, name, namespace[name])


@dataclass(frozen=True)
class Mutant:
    name: str
    app: str  # the simulator that must catch it: "model" (replicas alone) or "node"
    plant: Callable[[pytest.MonkeyPatch], None]
    first_failing_seed: int  # recorded: the sweep from seed 0 must fail first at this seed


def _quorum_one_short(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(replica, "quorum_size", lambda n: quorum_size(n) - 1)


def _commit_before_prepared(mp: pytest.MonkeyPatch) -> None:
    mutate(
        mp,
        replica.Replica,
        "_vote",
        "if slot.prepared and slot.validated and not slot.commit_sent:",
        "if slot.validated and not slot.commit_sent:",
    )


def _restart_forgets_prepared(mp: pytest.MonkeyPatch) -> None:
    mutate(mp, replica.Replica, "_restore", 'key.startswith("proof/")', 'key.startswith("forgot/")')


def _view_change_drops_prepared(mp: pytest.MonkeyPatch) -> None:
    mutate(
        mp,
        replica.Replica,
        "_make_view_change",
        "if slot.proof is not None and seq > self.stable_seq",
        "if slot.proof is not None and seq > self.stable_seq + 1",
    )


def _never_suspects_the_primary(mp: pytest.MonkeyPatch) -> None:
    mutate(
        mp,
        replica.Replica,
        "timer",
        'self.stats["view_change_timeouts"] += 1',
        "return self._finish()  # the progress timeout is ignored",
    )


def _persist_after_send(mp: pytest.MonkeyPatch) -> None:
    def carry_out(step, disk, bus, timers, log=None):  # type: ignore[no-untyped-def]
        for item in step.publish:  # sends first: what they say is not on disk yet
            bus.publish(item)
        if step.records:
            disk.write_consensus_records([(p.key, p.value) for p in step.records])
        if step.sync:
            disk.sync()
        for timer in step.timers:
            if isinstance(timer, effects.SetTimer):
                timers.set_timer(timer.name, timer.at_ms)
            else:
                timers.cancel_timer(timer.name)

    for module in (effects, sys.modules["consortium.sim.whole"]):
        mp.setattr(module, "carry_out", carry_out)


def _no_sync_before_votes(mp: pytest.MonkeyPatch) -> None:
    mutate(
        mp,
        core.NodeCore,
        "_from_replica",
        "step.sync = self.durable and bool(step.records or step.committed)",
        "step.sync = self.durable and bool(step.committed)",
    )


def _outbox_sends_once_the_sync_starts(mp: pytest.MonkeyPatch) -> None:
    mutate(
        mp,
        outbox.Outbox,
        "_enqueue",
        "if self.waiting or self.required > self.finished:",
        "if self.waiting or self.required > self.started:",
    )


def _no_nonce_check(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(chain, "last_nonce", lambda view, sender: 0)


def _forgets_committed_requests(mp: pytest.MonkeyPatch) -> None:
    mutate(
        mp,
        ledger_app.LedgerApp,
        "lookup_request",
        "return locations[0][0] if locations else None",
        "return None",
    )


def _store_skips_the_index(mp: pytest.MonkeyPatch) -> None:
    mutate(
        mp,
        store.Store,
        "append",
        "_INSERT_TX, sorted(",
        "_INSERT_TX, [] and sorted(",
    )


def _answer_names_the_head(mp: pytest.MonkeyPatch) -> None:
    mutate(
        mp,
        core.NodeCore,
        "_answer",
        "notice = CommitNotice(self.node_id, height, block_hash, day, asked)",
        "notice = CommitNotice(self.node_id, height, self.ledger.head.hash, day, asked)",
    )


def _client_accepts_f(mp: pytest.MonkeyPatch) -> None:
    mutate(
        mp,
        protocol.ClientCore,
        "__init__",
        "self.accept_after = self.f + 1",
        "self.accept_after = self.f",
    )


MUTANTS = (
    Mutant("replica: a quorum one short", "model", _quorum_one_short, 1),
    Mutant("replica: COMMIT before prepared", "model", _commit_before_prepared, 11),
    Mutant("replica: a backup never suspects the primary", "model", _never_suspects_the_primary, 0),
    Mutant(
        "replica: a restart forgets prepared certificates", "model", _restart_forgets_prepared, 72
    ),
    Mutant(
        "replica: a view change drops a prepared block", "model", _view_change_drops_prepared, 1
    ),
    Mutant("node: persist after send", "node", _persist_after_send, 6),
    Mutant("node: no sync before a vote", "node", _no_sync_before_votes, 6),
    Mutant(
        "node: the outbox sends once the sync starts, not when it ends",
        "node",
        _outbox_sends_once_the_sync_starts,
        20,
    ),
    Mutant("ledger: no nonce check", "node", _no_nonce_check, 7),
    Mutant("ledger app: forgets committed requests", "node", _forgets_committed_requests, 7),
    Mutant("store: no transaction index rows", "node", _store_skips_the_index, 0),
    Mutant(
        "node: an answer names the head, not the tx's block", "node", _answer_names_the_head, 18
    ),
    Mutant("client: accepts f matching notices", "node", _client_accepts_f, 0),
)
