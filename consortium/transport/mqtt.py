"""An asyncio MQTT connection that stays up: login, subscribe, publish, and reconnect on its own.

aiomqtt gives one connection per `async with Client`; when the broker dies or restarts, that
connection is over. `MqttTransport` runs a loop around it:

- Connect (username/password; TLS for `mqtts://`, checked against `ca_file` or the system store),
  subscribe to every filter in one SUBSCRIBE, then receive and send until the connection drops.
- On a drop or a failed attempt, wait and try again: the delay starts at
  `reconnect_initial_delay_s`, doubles up to `reconnect_max_delay_s`, is randomised to 50-100% so
  nodes do not reconnect in lockstep, and resets after a successful connection. Sessions are clean,
  so the subscriptions are sent again on every connection; what was published while we were away
  is gone (PBFT retransmits, clients retry).
- With `fallback_urls` (a client that knows several organisations' brokers), every failed attempt
  or dropped connection moves on to the next broker; the delay grows only once all of them failed
  in a row. A node has one broker, its organisation's.
- A refused login (bad username or password, not authorised) is not retried: it cannot heal, and
  `wait_connected` and the message iterator raise `BrokerRefusedError` instead.

Publishing never blocks and never raises for a broken connection: `publish` puts the message in an
outbox that a sender task drains while connected. While disconnected the outbox keeps the newest
`outbox_limit` messages; older ones are dropped and counted (`dropped_outbox_full`), because in a
consensus protocol a stale message is the least useful one. QoS 0 is at most once: a message still
in the socket buffer when the connection drops is lost (`publish_failures` counts those the
connection refused outright). A QoS 1/2 message the broker did not acknowledge is sent again after
reconnecting (at least once; receivers dedupe).

Incoming messages whose payload exceeds `max_payload_bytes` are dropped and counted before anyone
decodes them. They go either to an `on_message` callback (called in the event loop) or, without
one, to a bounded inbox read with `async for`. A callback that raises is a bug of its owner, not
bad input: the transport stops for good (nothing more is delivered or published, `wait_failed`
returns the error), so that its owner cannot carry on with state nothing backs. An unexpected
exception in the connection loop stops it the same way; broker and network errors reconnect.

    login = read_credentials(config.run_dir, node_username(node_id))  # consortium.node.broker
    settings = MqttSettings(config.broker_url, login.username, login.password,
                            topics.node_subscriptions(config.chain_id, node_id),
                            client_id=login.username)
    async with MqttTransport(settings) as bus:
        await bus.wait_connected(timeout_s=10)
        bus.publish(topics.pbft_topic(config.chain_id, node_id), payload)
        async for message in bus: ...

A producer that publishes faster than the socket drains (a load generator) should
`await bus.flush(...)` now and then: `publish` itself never waits, so a burst larger than
`outbox_limit` between two awaits drops its oldest messages even while connected.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as mqtt

from consortium.codec import MAX_MESSAGE_BYTES
from consortium.errors import LocalError
from consortium.transport.url import BrokerEndpoint, parse_broker_url

log = logging.getLogger(__name__)

# CONNACK codes for a refused login: MQTT 3.1.1 (4, 5) and their MQTT 5 reason codes (0x86, 0x87).
_REFUSED_LOGIN_CODES = frozenset({4, 5, 0x86, 0x87})
_SUBSCRIBE_FAILURE_CODE = 0x80
# QoS 0 messages written before waiting for the socket to take them.
_UNACKED_RUN = 256


class TransportError(Exception):
    """The transport cannot reach the broker (the message has the last error)."""


class BrokerRefusedError(TransportError):
    """The broker refused our login; retrying cannot help, the credentials are wrong."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    broker_url: str
    username: str
    password: str
    subscriptions: tuple[str, ...] = ()
    subscribe_qos: int = 0
    # Unique per broker. None: username plus a random suffix, so two processes with one login
    # (a CLI next to a scenario) do not disconnect each other; nodes pass their username so a
    # restarted node takes over its old, half-dead session at once.
    client_id: str | None = None
    ca_file: Path | None = None
    max_payload_bytes: int = MAX_MESSAGE_BYTES
    outbox_limit: int = 50_000
    inbox_limit: int = 100_000
    max_inflight_acked: int = 1_000
    keepalive_s: int = 10
    connect_timeout_s: float = 5.0
    reconnect_initial_delay_s: float = 0.1
    reconnect_max_delay_s: float = 5.0
    fallback_urls: tuple[str, ...] = ()


@dataclass(slots=True)
class TransportCounters:
    """What happened on the connection, for status and benchmarks.

    `published`: handed to the broker (QoS 0: given to the socket; QoS 1/2: acknowledged).
    `received`: delivered to the callback or the inbox. `dropped_oversize`: incoming payloads over
    `max_payload_bytes`; `rejected_oversize`: our own, never sent. `reconnects`: successful
    connections after the first one; `connect_failures`: attempts that did not get through.
    """

    received: int = 0
    published: int = 0
    dropped_oversize: int = 0
    rejected_oversize: int = 0
    dropped_outbox_full: int = 0
    dropped_inbox_full: int = 0
    publish_failures: int = 0
    connect_failures: int = 0
    reconnects: int = 0
    subscribe_denied: int = 0
    handler_errors: int = 0


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Outgoing:
    sequence: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


MessageHandler = Callable[[IncomingMessage], None]


def _is_publishable_topic(topic: str) -> bool:
    return bool(topic) and not any(c in topic for c in "+#\0") and len(topic.encode()) < 65536


def _error_code(exc: aiomqtt.MqttCodeError) -> int | None:
    rc = exc.rc
    if rc is None:
        return None
    return int(getattr(rc, "value", rc))


class _Connection(aiomqtt.Client):
    """aiomqtt's client with its two per-message paths cut short.

    aiomqtt passes every incoming message through a queue and a new task, and waits on an event
    for every outgoing QoS 0 message; at consensus message rates that costs more than the network
    (about 3x here). paho's message callback, which aiomqtt already runs in the event loop, hands
    messages straight to the transport, and QoS 0 publishes go to paho's write buffer without a
    wait. This overrides one private method and uses aiomqtt's paho client: aiomqtt is pinned to
    2.x and the live tests cover both paths.
    """

    def __init__(
        self, hostname: str, port: int, *, deliver: Callable[[str, bytes], None], **options: Any
    ) -> None:
        super().__init__(hostname, port, **options)
        self._deliver_message = deliver

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # mosquitto rejects such topics already
            return
        self._deliver_message(topic, message.payload)

    def publish_nowait(self, topic: str, payload: bytes, retain: bool) -> mqtt.MQTTMessageInfo:
        info = self._client.publish(topic, payload, 0, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        return info

    async def wait_disconnected(self) -> None:
        """Raise `MqttError` when the connection drops."""
        async for _ in self.messages:  # never yields: _on_message bypasses aiomqtt's queue
            pass


class MqttTransport:
    """One broker connection that survives broker restarts; see the module docstring."""

    def __init__(self, settings: MqttSettings, on_message: MessageHandler | None = None) -> None:
        self.settings = settings
        self.endpoints: tuple[BrokerEndpoint, ...] = tuple(
            parse_broker_url(url) for url in (settings.broker_url, *settings.fallback_urls)
        )
        self.endpoint: BrokerEndpoint = self.endpoints[0]
        self.counters = TransportCounters()
        self.last_error: str | None = None
        self._client_id = settings.client_id or f"{settings.username}-{secrets.token_hex(4)}"
        self._on_message = on_message
        self._inbox: asyncio.Queue[IncomingMessage | None] = asyncio.Queue(settings.inbox_limit)
        self._outbox: collections.deque[_Outgoing] = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._inflight: dict[int, _Outgoing] = {}
        self._next_sequence = 0
        self._connected = asyncio.Event()
        self._fatal: TransportError | None = None
        self._fatal_event = asyncio.Event()
        self._closing = False
        self._ever_connected = False
        self._run_task: asyncio.Task[None] | None = None

    # --- lifetime --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; `wait_connected` waits for the first connection."""
        if self._run_task is None and not self._closing:
            self._run_task = asyncio.create_task(self._run(), name=f"mqtt-{self._client_id}")

    async def wait_connected(self, timeout_s: float) -> None:
        """Return once connected. Raise at once what retrying cannot heal (`BrokerRefusedError`,
        an unreadable CA file), or `TransportError` after `timeout_s`."""
        if self._run_task is None and self._fatal is None:
            raise LocalError("start() the transport before waiting for its connection")
        connected = asyncio.ensure_future(self._connected.wait())
        refused = asyncio.ensure_future(self._fatal_event.wait())
        try:
            await asyncio.wait(
                {connected, refused}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connected.cancel()
            refused.cancel()
        if self._fatal is not None:
            raise self._fatal
        if not self._connected.is_set():
            raise TransportError(
                f"not connected to {self.endpoint.url} after {timeout_s:g} s: {self.last_error or 'no answer'}"
            )

    async def wait_failed(self) -> TransportError:
        """Return the error once the transport has stopped for good."""
        await self._fatal_event.wait()
        assert self._fatal is not None
        return self._fatal

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def counters_snapshot(self) -> TransportCounters:
        return dataclasses.replace(self.counters)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every accepted publish was handed to the broker; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._outbox or self._inflight:
            if time.monotonic() >= deadline or self._closing:
                return False
            await asyncio.sleep(0.005)
        return True

    async def close(self, *, flush_timeout_s: float = 1.0) -> None:
        """Send what is queued (bounded by `flush_timeout_s`), disconnect, and end the iterator."""
        if self._closing:
            return
        if self.connected and flush_timeout_s > 0:
            await self.flush(flush_timeout_s)
        self._closing = True
        task, self._run_task = self._run_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connected.clear()
        self._end_iteration()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- publishing ------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> bool:
        """Queue a message for the broker; False if it was refused (too large, or closed).

        Never waits: the sender task writes it as soon as a connection is up.
        """
        if qos not in (0, 1, 2):
            raise LocalError(f"QoS must be 0, 1 or 2, not {qos!r}")
        if not isinstance(topic, str) or not _is_publishable_topic(topic):
            raise LocalError(f"cannot publish on topic {topic!r}")
        if not isinstance(payload, bytes):
            raise LocalError(f"payload must be bytes, not {type(payload).__name__}")
        if self._closing or self._fatal is not None:
            return False
        if len(payload) > self.settings.max_payload_bytes:
            self.counters.rejected_oversize += 1
            log.warning(
                "not publishing %d bytes on %s: over the %d byte limit",
                len(payload),
                topic,
                self.settings.max_payload_bytes,
            )
            return False
        if len(self._outbox) >= self.settings.outbox_limit:
            self._outbox.popleft()
            self.counters.dropped_outbox_full += 1
        self._outbox.append(_Outgoing(self._next_sequence, topic, payload, qos, retain))
        self._next_sequence += 1
        self._outbox_ready.set()
        return True

    # --- receiving -------------------------------------------------------------------------

    def __aiter__(self) -> Self:
        if self._on_message is not None:
            raise LocalError(
                "this transport delivers to its on_message callback, not to an iterator"
            )
        return self

    async def __anext__(self) -> IncomingMessage:
        item = await self._inbox.get()
        if item is None:
            self._inbox.put_nowait(None)  # wake any other reader too
            if self._fatal is not None:
                raise self._fatal
            raise StopAsyncIteration
        return item

    def _deliver(self, topic: str, payload: bytes) -> None:
        if self._fatal is not None:
            return
        if len(payload) > self.settings.max_payload_bytes:
            self.counters.dropped_oversize += 1
            return
        message = IncomingMessage(topic, payload)
        self.counters.received += 1
        if self._on_message is not None:
            try:
                self._on_message(message)
            except Exception as exc:
                self.counters.handler_errors += 1
                log.exception("message handler failed on %s", topic)
                self._fail(TransportError(f"the message handler failed on {topic[:120]}: {exc!r}"))
            return
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            self.counters.dropped_inbox_full += 1

    def _end_iteration(self) -> None:
        if self._inbox.full():
            self._inbox.get_nowait()
            self.counters.dropped_inbox_full += 1
        self._inbox.put_nowait(None)

    # --- the connection loop ---------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext | None:
        if not any(endpoint.tls for endpoint in self.endpoints):
            return None
        ca_file = str(self.settings.ca_file) if self.settings.ca_file else None
        return ssl.create_default_context(cafile=ca_file)

    def _make_client(self, tls_context: ssl.SSLContext | None) -> _Connection:
        return _Connection(
            self.endpoint.host,
            self.endpoint.port,
            deliver=self._deliver,
            username=self.settings.username,
            password=self.settings.password,
            identifier=self._client_id,
            clean_session=True,
            keepalive=self.settings.keepalive_s,
            timeout=self.settings.connect_timeout_s,
            tls_context=tls_context if self.endpoint.tls else None,
            max_queued_incoming_messages=self.settings.inbox_limit,
            max_inflight_messages=self.settings.max_inflight_acked,
        )

    async def _run(self) -> None:
        delay = self.settings.reconnect_initial_delay_s
        try:
            tls_context = self._tls_context()
        except (OSError, ssl.SSLError) as exc:
            self._fail(
                TransportError(f"cannot load the TLS CA file {self.settings.ca_file}: {exc}")
            )
            return
        failed_in_a_row = 0
        while not self._closing:
            try:
                async with self._make_client(tls_context) as client:
                    await self._on_connected(client)
                    delay = self.settings.reconnect_initial_delay_s
                    failed_in_a_row = 0
                    await self._serve(client)
            except aiomqtt.MqttCodeError as exc:
                if not self._connected.is_set() and _error_code(exc) in _REFUSED_LOGIN_CODES:
                    self._fail(
                        BrokerRefusedError(
                            f"{self.endpoint.url} refused the login {self.settings.username!r}: {exc}"
                        )
                    )
                    return
                self._note_failure(exc)
            except aiomqtt.MqttError as exc:
                self._note_failure(exc)
            except Exception as exc:  # not a broker or network error: a bug, here or in the library
                log.exception("MQTT connection loop error")
                self._fail(TransportError(f"the MQTT connection loop failed: {exc!r}"))
                return
            finally:
                self._connected.clear()
            if self._closing:
                return
            failed_in_a_row += 1
            self._move_on()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            if failed_in_a_row % len(self.endpoints) == 0:
                delay = min(delay * 2, self.settings.reconnect_max_delay_s)

    def _move_on(self) -> None:
        """Try the next broker (a no-op with one)."""
        if len(self.endpoints) > 1:
            index = (self.endpoints.index(self.endpoint) + 1) % len(self.endpoints)
            self.endpoint = self.endpoints[index]

    def _note_failure(self, exc: BaseException) -> None:
        was_connected = self._connected.is_set()
        self.last_error = f"{type(exc).__name__}: {exc}"
        if was_connected:
            log.warning("lost the broker %s: %s", self.endpoint.url, self.last_error)
        else:
            self.counters.connect_failures += 1
            log.info("cannot reach the broker %s: %s", self.endpoint.url, self.last_error)

    def _fail(self, error: TransportError) -> None:
        """Stop for good: retrying cannot heal `error`, so every waiter gets it."""
        log.error("%s", error)
        self.last_error = str(error)
        self._fatal = error
        self._fatal_event.set()
        self._end_iteration()

    async def _on_connected(self, client: _Connection) -> None:
        if self.settings.subscriptions:
            granted = await client.subscribe(
                [(topic, self.settings.subscribe_qos) for topic in self.settings.subscriptions]
            )
            for topic, code in zip(self.settings.subscriptions, granted, strict=False):
                if int(getattr(code, "value", code)) >= _SUBSCRIBE_FAILURE_CODE:
                    self.counters.subscribe_denied += 1
                    log.warning("the broker denied the subscription %s", topic)
        if self._ever_connected:
            self.counters.reconnects += 1
            log.warning("reconnected to %s", self.endpoint.url)
        self._ever_connected = True
        self._connected.set()

    async def _serve(self, client: _Connection) -> None:
        """Receive and send until the connection drops (which raises `MqttError`)."""
        inflight_slots = asyncio.Semaphore(self.settings.max_inflight_acked)
        acked_publishes: set[asyncio.Task[None]] = set()
        tasks = [
            asyncio.create_task(self._receive(client)),
            asyncio.create_task(self._send(client, inflight_slots, acked_publishes)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise aiomqtt.MqttError("connection tasks ended")
        finally:
            for task in (*tasks, *acked_publishes):
                task.cancel()
            await asyncio.gather(*tasks, *acked_publishes, return_exceptions=True)
            self._requeue_unacknowledged()

    async def _receive(self, client: _Connection) -> None:
        await client.wait_disconnected()

    async def _send(
        self,
        client: _Connection,
        inflight_slots: asyncio.Semaphore,
        acked_publishes: set[asyncio.Task[None]],
    ) -> None:
        while True:
            if not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            item = self._outbox[0]
            if item.qos == 0:
                await self._send_unacked(client)
                continue
            await inflight_slots.acquire()
            if not self._outbox or self._outbox[0] is not item:
                inflight_slots.release()  # dropped from a full outbox meanwhile
                continue
            self._outbox.popleft()
            self._inflight[item.sequence] = item
            task = asyncio.create_task(self._publish_acked(client, item, inflight_slots))
            acked_publishes.add(task)
            task.add_done_callback(acked_publishes.discard)

    async def _send_unacked(self, client: _Connection) -> None:
        """Write a run of QoS 0 messages, then wait until the socket took the last one, so paho's
        own (unbounded) buffer never holds more than one run."""
        last: mqtt.MQTTMessageInfo | None = None
        for _ in range(_UNACKED_RUN):
            if not self._outbox or self._outbox[0].qos != 0:
                break
            item = self._outbox.popleft()
            try:
                last = client.publish_nowait(item.topic, item.payload, item.retain)
            except aiomqtt.MqttError:
                self.counters.publish_failures += 1
                raise
            self.counters.published += 1
        pause = 0.0
        while last is not None and not last.is_published():
            await asyncio.sleep(pause)  # a dropped connection cancels this wait
            pause = 0.001

    async def _publish_acked(
        self, client: aiomqtt.Client, item: _Outgoing, inflight_slots: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
        except aiomqtt.MqttError:
            # Not acknowledged in time: send it again, after the reconnect if the connection died.
            if self._inflight.pop(item.sequence, None) is not None:
                self._outbox.appendleft(item)
                self._outbox_ready.set()
        else:
            self._inflight.pop(item.sequence, None)
            self.counters.published += 1
        finally:
            inflight_slots.release()

    def _requeue_unacknowledged(self) -> None:
        """Put QoS 1/2 messages the broker did not acknowledge back in front, in their order."""
        if not self._inflight:
            return
        pending = sorted(self._inflight.values(), key=lambda item: item.sequence)
        self._inflight.clear()
        self._outbox.extendleft(reversed(pending))
        while len(self._outbox) > self.settings.outbox_limit:
            self._outbox.popleft()
            self.counters.dropped_outbox_full += 1
        self._outbox_ready.set()
