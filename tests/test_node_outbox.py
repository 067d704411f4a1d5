"""Group commit (`node.outbox`): nothing leaves before a sync that began after every write made
before it was published has finished; publishes leave in order; syncs never overlap, and one sync
covers every step gathered while the previous one ran."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consortium.node.core import NodeStep, Persist, Publish
from consortium.node.effects import carry_out
from consortium.node.outbox import Outbox


@dataclass
class FakeDisk:
    """Counts writes; a sync started after write N makes writes 1..N durable when it ends."""

    writes: int = 0
    durable: int = 0
    running: list[tuple[int, int]] = field(default_factory=list)  # (sync number, writes then)
    sent: list[tuple[str, int]] = field(default_factory=list)  # (topic, writes durable then)

    def write_consensus_records(self, writes: list[tuple[str, bytes | None]]) -> None:
        self.writes += 1

    def start_sync(self, number: int) -> None:
        assert not self.running, "two syncs at once"
        self.running.append((number, self.writes))

    def finish_sync(self, outbox: Outbox) -> None:
        number, covered = self.running.pop()
        self.durable = covered
        outbox.synced(number)

    def send(self, item: Publish) -> None:
        self.sent.append((item.topic, self.durable))


class NoTimers:
    def set_timer(self, name: str, at_ms: int) -> None:
        raise AssertionError("no timers here")

    def cancel_timer(self, name: str) -> None:
        raise AssertionError("no timers here")


def make() -> tuple[FakeDisk, Outbox]:
    disk = FakeDisk()
    return disk, Outbox(disk, disk.start_sync, disk.send)


def step(topic: str, *, write: bool, sync: bool) -> NodeStep:
    return NodeStep(
        records=[Persist("k", b"v")] if write else [],
        sync=sync,
        publish=[Publish(topic, b"")],
    )


def test_a_vote_waits_for_its_sync_and_the_node_does_not() -> None:
    disk, outbox = make()
    carry_out(step("vote-1", write=True, sync=True), outbox, outbox, NoTimers())
    assert disk.sent == [] and len(disk.running) == 1
    # The node goes on while the disk syncs: two more steps, neither sent yet, one sync asked.
    carry_out(step("vote-2", write=True, sync=True), outbox, outbox, NoTimers())
    carry_out(step("answer", write=False, sync=False), outbox, outbox, NoTimers())
    assert disk.sent == [] and len(disk.running) == 1
    disk.finish_sync(outbox)  # covers vote-1 only; the next sync starts at once
    assert disk.sent == [("vote-1", 1)] and len(disk.running) == 1
    disk.finish_sync(outbox)
    assert disk.sent == [("vote-1", 1), ("vote-2", 2), ("answer", 2)]
    assert outbox.idle


def test_nothing_waits_when_no_sync_is_asked_or_running() -> None:
    disk, outbox = make()
    carry_out(step("status", write=False, sync=False), outbox, outbox, NoTimers())
    assert disk.sent == [("status", 0)] and outbox.idle


def test_after_sent_runs_in_order_with_the_publishes() -> None:
    disk, outbox = make()
    seen: list[int] = []
    carry_out(step("commit", write=True, sync=True), outbox, outbox, NoTimers())
    outbox.after_sent(lambda: seen.append(len(disk.sent)))
    assert seen == []
    disk.finish_sync(outbox)
    assert seen == [1]


def test_a_sync_finishing_out_of_turn_is_an_error() -> None:
    _, outbox = make()
    outbox.sync()
    with pytest.raises(RuntimeError, match="sync 2 finished"):
        outbox.synced(2)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), max_size=40))
def test_every_send_is_backed_by_every_write_before_it(
    script: list[tuple[bool, bool, bool]],
) -> None:
    """Any interleaving of steps (write? sync?) and sync completions: a message leaves only
    once every write made before it was published is durable, and messages keep their order."""
    disk, outbox = make()
    published: list[tuple[str, int]] = []  # (topic, writes made before it)
    for index, (write, sync, finish) in enumerate(script):
        if finish and disk.running:
            disk.finish_sync(outbox)
        topic = f"m{index}"
        carry_out(step(topic, write=write, sync=sync or write), outbox, outbox, NoTimers())
        published.append((topic, disk.writes))
    while disk.running:
        disk.finish_sync(outbox)
    assert outbox.idle
    assert [t for t, _ in disk.sent] == [t for t, _ in published]
    for (topic, durable_then), (_, written_before) in zip(disk.sent, published, strict=True):
        assert durable_then >= written_before, f"{topic} left before its writes were durable"
