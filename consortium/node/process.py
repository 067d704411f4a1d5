"""One node as an OS process: the asyncio shell around `NodeCore`.

It moves bytes and time only. Each bus message, timer and queued client batch is one core step;
the steps of one event-loop turn are gathered and carried out together (`effects.carry_out`): their
consensus records in one SQLite transaction, then a sync on a worker thread; the turn's publishes
wait in the outbox (`node.outbox`) until that sync has finished, while the loop goes on with the
next messages (group commit: one sync covers every turn gathered while the previous one ran). A
step that raises anything the core does not expect stops the process at once (fail-stop, exit
status 70) with a last log line `FATAL <reason>`: nothing of the failed turn is sent, and the node
restarts from its disk (`up` supervises it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NoReturn

from consortium.budget import CacheBudget
from consortium.config import NetworkConfig
from consortium.keys import KeyDirectory, load_keypair
from consortium.ledger.ledger import Ledger, store_path
from consortium.ledger.wal import WalCheckpointer
from consortium.node.core import NodeCore, NodeStep, Publish
from consortium.node.effects import carry_out
from consortium.node.metrics import NodeMetrics, TimedStore
from consortium.node.outbox import Outbox
from consortium.notices import encode_status
from consortium.transport import credentials, topics
from consortium.transport.credentials import BrokerLogin
from consortium.transport.mqtt import IncomingMessage, MqttTransport

log = logging.getLogger("consortium.node")

STATUS_INTERVAL_S = 0.25
CHECKPOINT_POLL_S = 0.25
DRAIN_TIMEOUT_S = 10.0
FATAL_EXIT_STATUS = 70


class Node:
    def __init__(
        self, config: NetworkConfig, keys: KeyDirectory, node_id: str, login: BrokerLogin
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.login = login
        self.metrics = NodeMetrics()
        path = store_path(config, node_id)
        budget = CacheBudget.of_mb(config.cache_mb)
        store = TimedStore(path, self.metrics, budget.store_pages)
        self.ledger = Ledger(config, keys, path, store=store, budget=budget)
        self.checkpointer = WalCheckpointer(path)
        key = load_keypair(config, node_id, "node")
        self.core = NodeCore(config, keys, node_id, key, self.ledger, durable=config.durable)
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.transport: MqttTransport | None = None
        self.sync_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync")
        self.outbox = Outbox(self.ledger.store, self._start_sync, self._send)
        self.turn = NodeStep()
        self.flush_scheduled = False
        self.requests_waiting = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()

    # -- time --------------------------------------------------------------------------

    def now_ms(self) -> int:
        assert self.loop is not None
        return int(self.loop.time() * 1000)

    # -- steps -------------------------------------------------------------------------

    def _step(self, what: str, run: Callable[..., NodeStep], *args: Any) -> None:
        """Run one core step and gather its actions into this loop turn's."""
        try:
            step = run(*args)
        except Exception as exc:
            self._fail(what, exc)
        self.turn.extend(step)
        if not self.flush_scheduled and self.turn:
            assert self.loop is not None
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        step, self.turn = self.turn, NodeStep()
        try:
            carry_out(step, self.outbox, self.outbox, self, log)
        except Exception as exc:
            self._fail("writing a step's records", exc)

    def _start_sync(self, number: int) -> None:
        assert self.loop is not None
        future = self.loop.run_in_executor(self.sync_thread, self.ledger.store.sync)
        future.add_done_callback(lambda done: self._synced(number, done))

    def _synced(self, number: int, done: Future[None] | asyncio.Future[None]) -> None:
        try:
            done.result()
            self.outbox.synced(number)
        except Exception as exc:
            self._fail("syncing the store and sending what waited for it", exc)

    def _fail(self, what: str, exc: BaseException) -> NoReturn:
        """Fail-stop: memory may now hold what the disk does not back, so nothing more may leave
        this process; exit before any other callback runs."""
        log.error("unexpected error while %s:\n%s", what, "".join(traceback.format_exception(exc)))
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.write(f"FATAL {reason} (while {what})\n")
        sys.stderr.flush()
        os._exit(FATAL_EXIT_STATUS)

    # -- what carry_out needs: a bus (the outbox, which sends here) and timers ---------

    def _send(self, item: Publish) -> None:
        assert self.transport is not None and self.loop is not None
        if item.delay_ms:
            self.loop.call_later(
                item.delay_ms / 1000,
                lambda: self.transport.publish(item.topic, item.payload, retain=item.retain),  # type: ignore[union-attr]
            )
        else:
            self.transport.publish(item.topic, item.payload, retain=item.retain)

    def set_timer(self, name: str, at_ms: int) -> None:
        self.cancel_timer(name)
        assert self.loop is not None
        self.timers[name] = self.loop.call_at(at_ms / 1000, self._fire, name)

    def cancel_timer(self, name: str) -> None:
        old = self.timers.pop(name, None)
        if old is not None:
            old.cancel()

    def _fire(self, name: str) -> None:
        self.timers.pop(name, None)
        self._step(f"handling timer {name}", self.core.on_timer, name, self.now_ms())

    # -- input from the bus ---------------------------------------------------------------

    def on_message(self, message: IncomingMessage) -> None:
        self._step(
            f"handling a message on {message.topic[:120]}",
            self.core.on_message,
            message.topic,
            message.payload,
            self.now_ms(),
        )
        if self.core.has_queued_requests:
            self.requests_waiting.set()

    async def _admit_requests(self) -> None:
        while not self.stopping.is_set():
            await self.requests_waiting.wait()
            self.requests_waiting.clear()
            while self.core.has_queued_requests:
                self._step("admitting a request batch", self.core.admit_next, self.now_ms())
                await asyncio.sleep(0)  # let consensus messages in between batches

    # -- status -------------------------------------------------------------------------

    def _shell_status(self) -> dict[str, Any]:
        bus = dataclasses.asdict(self.transport.counters_snapshot()) if self.transport else {}
        return {
            "pid": os.getpid(),
            "bus": bus,
            # Group commit: sends waiting for a sync, and syncs finished since the node started.
            "outbox": {"waiting": len(self.outbox.waiting), "syncs": self.outbox.finished},
            "metrics_url": self.metrics.url,
            # Wall-clock ms minus the core's ms: puts the timeline's times on a common clock.
            "clock_offset_ms": int(time.time() * 1000) - self.now_ms(),
            # When it was made: a retained heartbeat of a node long gone is old, not fresh.
            "sent_at_ms": int(time.time() * 1000),
        }

    def status(self) -> dict[str, Any]:
        return {**self.core.status(self.now_ms()), **self._shell_status()}

    async def _publish_status(self) -> None:
        while not self.stopping.is_set():
            shell = self._shell_status()
            self._step("publishing the status heartbeat", self.core.heartbeat, self.now_ms(), shell)
            self.metrics.update({**self.core.status(self.now_ms()), **shell}, self.core.timeline)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), STATUS_INTERVAL_S)

    async def _checkpoint_wal(self) -> None:
        """Keep the WAL short without the event loop ever waiting for a checkpoint's copying."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), CHECKPOINT_POLL_S)
            store = self.ledger.store
            if self.checkpointer.due(store):
                try:
                    self.checkpointer.start(store)
                    await asyncio.to_thread(self.checkpointer.copy_until_quiet)
                    self.checkpointer.finish(store)
                except Exception as exc:
                    self._fail("checkpointing the WAL", exc)

    async def _drain_outbox(self) -> None:
        """At shutdown: let the running sync finish and what waits for it leave."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not self.outbox.idle and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    # -- life ---------------------------------------------------------------------------

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.stopping.set)
        url = self.metrics.serve(self.config.metrics_port_of(self.node_id))
        if url is not None:
            log.info("%s serves metrics on %s", self.node_id, url)
        settings = credentials.mqtt_settings(
            self.login,
            topics.node_subscriptions(self.config.chain_id, self.node_id),
            client_id=self.login.username,
        )
        self.transport = MqttTransport(settings, on_message=self.on_message)
        async with self.transport:
            await self.transport.wait_connected(timeout_s=30)
            log.info(
                "%s connected to %s at height %d%s",
                self.node_id,
                self.login.url,
                self.ledger.head.height,
                "" if self.core.durable else " (durable: false, unsafe under power loss)",
            )
            self._step("starting the replica", self.core.start, self.now_ms())
            status = asyncio.create_task(self._publish_status())
            admission = asyncio.create_task(self._admit_requests())
            checkpoints = asyncio.create_task(self._checkpoint_wal())
            stopped = asyncio.create_task(self.stopping.wait())
            failed = asyncio.create_task(self.transport.wait_failed())
            await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
            if failed.done():
                self._fail("connected to the bus", failed.result())
            failed.cancel()
            for handle in self.timers.values():
                handle.cancel()
            await status
            await checkpoints
            admission.cancel()
            self._flush()
            await self._drain_outbox()
            self.transport.publish(
                topics.status_topic(self.config.chain_id, self.node_id),
                encode_status({**self.status(), "alive": False}),
                retain=True,
            )
            await self.transport.flush(1.0)
        self.metrics.close()
        self.sync_thread.shutdown(wait=True)
        self.checkpointer.close()
        self.ledger.close()
        log.info("%s stopped at height %d", self.node_id, self.ledger.head.height)
