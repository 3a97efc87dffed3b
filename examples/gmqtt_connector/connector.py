"""``GmqttConnector``: the Connector port over gmqtt, on an asyncio loop of its own.

How it meets the contract the kit checks (docs/connector-contract.md):
- threads: application calls never touch a socket. ``send`` puts the message in
  a bounded deque and wakes the loop through an ``os.pipe`` the loop watches;
  everything gmqtt does happens on the connector's one thread, which ``close``
  joins;
- outbound: the bridge holds ``outbound_capacity`` messages; the loop moves them
  to gmqtt while fewer than ``max_inflight`` QoS 1 messages wait for PUBACK and
  the socket has taken all but ``WRITE_HIGH_WATER`` bytes. A full bridge refuses
  with ``BackPressure`` and turns health Degraded once; it turns back when the
  bridge, the in-flight window and the socket's buffer are all empty;
- deliveries: QoS 0 completes when handed to the transport, QoS 1 at its PUBACK
  (seen through the storage object gmqtt reports PUBACKs to); unacknowledged
  QoS 1 messages are published again after a reconnect (at least once);
- inbound: every reader whose filter matches gets a copy in its own bounded
  queue; a full queue drops the message and counts it; ``inbound_drop_threshold``
  drops turn health Degraded once, until every reader that dropped has drained;
  ``fileno()`` is a pipe holding one byte exactly while something waits;
- connection: a fresh gmqtt client per attempt (gmqtt's own reconnection is
  off), exponential backoff between ``reconnect_initial_backoff`` and
  ``reconnect_max_backoff``, at most ``reconnect_attempt_ceiling`` attempts in a
  row; refused credentials stop at once (Down, "authentication failed");
- health follows the nine legal edges of the domain's transition table; a lost
  connection goes Up -> Degraded("connection lost") -> Connecting; ``close``
  goes straight to Down from any state (what it fails is not a drain, so a
  Degraded connector does not pass through Up on its way down).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import gmqtt
from gmqtt.mqtt.constants import MQTTv311
from gmqtt.mqtt.handler import MQTTConnectError
from gmqtt.storage import PersistentStorage
from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from taktora_connector.adapters.mqtt import MqttConnectorOptions, MqttRouting
from taktora_connector.adapters.mqtt.protocol.broker_check import BrokerCheck
from taktora_connector.adapters.mqtt.protocol.packets import encode_publish
from taktora_connector.domain import (
    ZERO_CORRELATION_ID,
    BackPressure,
    ChannelDescriptor,
    CodecError,
    ConfigurationError,
    Connecting,
    ConnectorDown,
    ConnectorError,
    ConnectorHealth,
    ConnectorTimeout,
    Degraded,
    Down,
    HealthEvent,
    HealthKind,
    PayloadOverflow,
    RecvEnvelope,
    SendOutcome,
    StackError,
    Up,
    is_legal,
    transition,
    validate_correlation_id,
)
from taktora_connector.ports import PayloadCodec

T = TypeVar("T")
log = logging.getLogger(__name__)

CONNECTION_LOST = "connection lost"
OUTBOUND_BACKPRESSURE = "outbound backpressure"
_AUTH_REFUSED = {4: "bad user name or password", 5: "not authorized"}


# -- timeouts --------------------------------------------------------------------------


def seconds(value: object, what: str) -> float | ConfigurationError | None:
    """A timeout as the ports take it: ``None`` or ``math.inf`` wait without a deadline;
    NaN, a negative number or a non-number is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return ConfigurationError(f"{what} must be a number of seconds >= 0, got {value!r}")
    if value < 0:
        return ConfigurationError(f"{what} must be >= 0, got {value!r}")
    return None if math.isinf(value) else float(value)


# -- topics ------------------------------------------------------------------------------


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 matching: ``+`` one level, ``#`` this level and all below; a
    filter starting with a wildcard never matches a topic starting with ``$``."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    parts, levels = topic_filter.split("/"), topic.split("/")
    for index, part in enumerate(parts):
        if part == "#":
            return True
        if index >= len(levels) or (part not in ("+", levels[index])):
            return False
    return len(parts) == len(levels)


# -- health ------------------------------------------------------------------------------


class HealthStream:
    """One subscriber's queue of health events (the ``HealthSubscription`` port)."""

    def __init__(self, on_close: Callable[[HealthStream], None]) -> None:
        self._events: collections.deque[HealthEvent] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self._on_close = on_close

    def push(self, event: HealthEvent) -> None:
        with self._ready:
            if not self._closed:
                self._events.append(event)
                self._ready.notify_all()

    def end(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def try_next(self) -> HealthEvent | None:
        with self._ready:
            return self._events.popleft() if self._events else None

    def next(self, timeout: float | None = None) -> HealthEvent | None:
        with self._ready:
            self._ready.wait_for(lambda: self._events or self._closed, timeout)
            return self._events.popleft() if self._events else None

    def __iter__(self) -> Iterator[HealthEvent]:
        while (event := self.next()) is not None:
            yield event

    def close(self) -> None:
        self.end()
        self._on_close(self)


class Health:
    """The connector's health, derived from the connection phase and two latches."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.state: ConnectorHealth = Connecting(time.monotonic_ns())
        self.phase = "connecting"  # connecting, connected, down
        self.down_reason = ""
        self.latches: dict[str, str] = {}
        self.streams: list[HealthStream] = []
        self.last: HealthEvent | None = None
        self.drops_total = 0
        self._drops_since_armed = 0
        self._dropping: set[int] = set()

    def subscribe(self) -> HealthStream:
        stream = HealthStream(self._forget)
        with self._lock:
            if self.phase == "down" and self.down_reason == "closed":
                if self.last is not None:  # closed: the final state, then the end
                    stream.push(self.last)
                stream.end()
            else:
                self.streams.append(stream)
        return stream

    def _forget(self, stream: HealthStream) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self.streams.remove(stream)

    def set_phase(self, phase: str, reason: str = "") -> None:
        with self._lock:
            if self.phase == "down" and self.down_reason == "closed":
                return  # closed is final
            self.phase = phase
            if phase == "down":
                self.down_reason = reason
            self._apply()

    def trip(self, latch: str, reason: str) -> bool:
        with self._lock:
            if latch in self.latches:
                return False
            self.latches[latch] = reason
            self._apply()
            return True

    def clear(self, latch: str) -> None:
        with self._lock:
            if self.latches.pop(latch, None) is not None:
                self._apply()

    def dropped(self, reader: int, threshold: int) -> None:
        with self._lock:
            self.drops_total += 1
            self._dropping.add(reader)
            if "inbound" in self.latches:
                return
            self._drops_since_armed += 1
            if self._drops_since_armed >= threshold:
                self.trip("inbound", f"dropped {self.drops_total} inbound frames")

    def drained(self, reader: int) -> None:
        with self._lock:
            self._dropping.discard(reader)
            if "inbound" in self.latches and not self._dropping:
                self._drops_since_armed = 0
                self.clear("inbound")

    def _target(self) -> ConnectorHealth:
        now = time.monotonic_ns()
        current = self.state
        if self.phase == "down":
            if isinstance(current, Down):
                return current
            return Down(self.down_reason, now)
        if self.phase == "connected":
            if self.latches:
                return (
                    current
                    if isinstance(current, Degraded)
                    else Degraded(next(iter(self.latches.values())))
                )
            return Up()
        return current if isinstance(current, Connecting) else Connecting(now)

    def _apply(self) -> None:
        target = self._target()
        current = self.state
        if current.kind is target.kind:
            return
        steps: list[ConnectorHealth] = [target]
        if current.kind is HealthKind.UP and target.kind is HealthKind.CONNECTING:
            steps = [Degraded(CONNECTION_LOST), target]
        elif current.kind is HealthKind.DOWN and target.kind is not HealthKind.CONNECTING:
            steps = [Connecting(time.monotonic_ns()), target]
        for step in steps:
            if not is_legal(self.state.kind, step.kind):
                return
            event = transition(self.state, step, time.monotonic_ns())
            self.state = step
            self.last = event
            for stream in list(self.streams):
                stream.push(event)

    def close(self) -> None:
        with self._lock:
            self.set_phase("down", "closed")
            for stream in self.streams:
                stream.end()
            self.streams.clear()


# -- deliveries and writers ----------------------------------------------------------------


class Delivery:
    """Completes when the message was delivered (QoS 0: written; QoS 1: PUBACK) or failed."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._error: ConnectorError | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        limit = seconds(timeout, "wait timeout")
        if isinstance(limit, ConfigurationError):
            return Failure(limit)
        if not self._done.wait(limit):
            return Failure(ConnectorTimeout("delivery", limit or 0.0))
        return Failure(self._error) if self._error is not None else Success(None)

    def finish(self, error: ConnectorError | None = None) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()


@dataclass
class Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    delivery: Delivery


class GmqttWriter(Generic[T]):
    """Sends values of one channel (the ``ChannelWriter`` port)."""

    def __init__(
        self, owner: GmqttConnector[T], descriptor: ChannelDescriptor[MqttRouting]
    ) -> None:
        self._owner = owner
        self._descriptor = descriptor
        self._lock = threading.Lock()
        self._sequence = 0
        self._closed = False
        self._unfinished: collections.deque[Delivery] = collections.deque()

    @property
    def descriptor(self) -> ChannelDescriptor[MqttRouting]:
        return self._descriptor

    def send(
        self, value: T, *, correlation_id: bytes | None = None
    ) -> Result[SendOutcome, ConnectorError]:
        if self._closed:
            return Failure(ConnectorDown(f"writer {self._descriptor.name!r} is closed"))
        if correlation_id is not None:
            try:
                validate_correlation_id(correlation_id)
            except ConfigurationError as err:
                return Failure(err)
        encoded = self._owner.codec.encode(value)
        if not is_successful(encoded):
            return Failure(encoded.failure())
        payload = encoded.unwrap()
        limit = self._descriptor.max_payload_size
        if len(payload) > limit:
            return Failure(PayloadOverflow(len(payload), limit))
        routing = self._descriptor.routing
        assert routing.topic is not None  # create_writer checked it
        delivery = Delivery()
        with self._lock:  # a refused send consumes no sequence number
            refused = self._owner.offer(
                Outgoing(routing.topic, payload, int(routing.qos), routing.retained, delivery)
            )
            if refused is not None:
                return Failure(refused)
            sequence = self._sequence
            self._sequence += 1
            while self._unfinished and self._unfinished[0].done:
                self._unfinished.popleft()
            self._unfinished.append(delivery)
        return Success(SendOutcome(sequence, time.time_ns(), len(payload), delivery))

    def flush(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        limit = seconds(timeout, "flush timeout")
        if isinstance(limit, ConfigurationError):
            return Failure(limit)
        timeout = limit
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            waiting = list(self._unfinished)
        for delivery in waiting:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            delivery.wait(left)
            if not delivery.done:
                return Failure(ConnectorTimeout("flush", timeout or 0.0))
        return Success(None)

    def close(self) -> None:
        self._closed = True


# -- readers --------------------------------------------------------------------------------


class GmqttReader(Generic[T]):
    """Receives values of one channel (the ``ChannelReader`` port)."""

    def __init__(
        self, owner: GmqttConnector[T], descriptor: ChannelDescriptor[MqttRouting]
    ) -> None:
        self._owner = owner
        self._descriptor = descriptor
        self.filter = descriptor.routing.broker_filter()  # $share/<group>/... when shared
        self.match_filter = descriptor.routing.subscription_filter()
        #: retained (topic, payload) pairs this reader already has on this connection
        self.seen_retained: set[tuple[str, bytes]] = set()
        self.qos = int(descriptor.routing.qos)
        self._queue: collections.deque[tuple[str, bytes, int, bool, int] | ConnectorError] = (
            collections.deque()
        )
        self._ready = threading.Condition()
        self._capacity = owner.options.inbound_capacity
        self._sequence = 0
        self._dropped = 0
        self._closed = False
        self._readable, self._signal = os.pipe()
        os.set_blocking(self._readable, False)
        os.set_blocking(self._signal, False)

    @property
    def descriptor(self) -> ChannelDescriptor[MqttRouting]:
        return self._descriptor

    @property
    def dropped(self) -> int:
        return self._dropped

    # loop side
    def offer(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        with self._ready:
            if self._closed:
                return
            if retain:  # a re-SUBSCRIBE for another reader resends what this one had
                if (topic, payload) in self.seen_retained:
                    return
                self.seen_retained.add((topic, payload))
            if len(self._queue) >= self._capacity:
                self._dropped += 1
                dropped = True
            else:
                self._push((topic, payload, qos, retain, time.time_ns()))
                dropped = False
        if dropped:
            self._owner.health_state.dropped(id(self), self._owner.options.inbound_drop_threshold)

    def fail(self, error: ConnectorError) -> None:
        with self._ready:
            if not self._closed:
                self._push(error)

    def _push(self, item: tuple[str, bytes, int, bool, int] | ConnectorError) -> None:
        if not self._queue:
            with contextlib.suppress(BlockingIOError):
                os.write(self._signal, b"\1")
        self._queue.append(item)
        self._ready.notify_all()

    # application side
    def try_recv(self) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        return self._receive(0)

    def recv(
        self, timeout: float | None = None
    ) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        limit = seconds(timeout, "recv timeout")
        if isinstance(limit, ConfigurationError):
            return Failure(limit)
        return self._receive(limit)

    def _receive(
        self, timeout: float | None
    ) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        with self._ready:
            if not self._closed and not self._queue and timeout != 0:
                self._ready.wait_for(lambda: self._queue or self._closed, timeout)
            if not self._queue:
                if self._closed:
                    return Failure(ConnectorDown(f"reader {self._descriptor.name!r} is closed"))
                return Success(None)
            item = self._queue.popleft()
            if not self._queue:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._readable, 16)
                emptied = True
            else:
                emptied = False
            sequence = self._sequence
            if not isinstance(item, ConnectorError):
                self._sequence += 1
        if emptied:
            self._owner.health_state.drained(id(self))
        if isinstance(item, ConnectorError):
            return Failure(item)
        topic, payload, qos, retain, stamp = item
        decoded = self._owner.codec.decode(payload)
        if not is_successful(decoded):
            failure: CodecError = decoded.failure()
            return Failure(CodecError(failure.format, failure.cause, payload))
        routing = MqttRouting.delivered(topic, qos, retain)
        return Success(
            RecvEnvelope(decoded.unwrap(), payload, sequence, stamp, ZERO_CORRELATION_ID, routing)
        )

    def __iter__(self) -> Iterator[RecvEnvelope[T, MqttRouting]]:
        while True:
            result = self._receive(None)
            if not is_successful(result):
                error = result.failure()
                if isinstance(error, ConnectorDown):
                    return
                raise error
            envelope = result.unwrap()
            if envelope is not None:
                yield envelope

    def fileno(self) -> int:
        return self._readable

    def close(self) -> None:
        with self._ready:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._ready.notify_all()
        self._owner.forget_reader(self)
        self._owner.health_state.drained(id(self))

    def release(self) -> None:
        """The connector closed: end the reader and its descriptors."""
        self.close()
        for fd in (self._readable, self._signal):
            with contextlib.suppress(OSError):
                os.close(fd)


# -- gmqtt glue ------------------------------------------------------------------------------


class _CheckedClient(gmqtt.Client):  # type: ignore[misc]
    """gmqtt's client with every byte of each connection checked by ``BrokerCheck``.

    gmqtt trusts its broker: a PUBLISH before CONNACK, a wildcard topic name, QoS 3
    or a SUBACK without return codes all go through. The kit's hostile broker fails
    that (MQTT-4.8.0-1: a client closes the connection on a protocol violation), so
    each new connection's protocol object has its ``data_received`` and
    ``write_data`` wrapped (two gmqtt internals, read nowhere else): what the broker
    sent is handed to gmqtt only up to the first violation, then the transport is
    aborted and gmqtt sees the connection lost."""

    async def _create_connection(self, *args: Any, **kwargs: Any) -> Any:
        connection = await super()._create_connection(*args, **kwargs)
        protocol, transport = connection._protocol, connection._transport
        check = BrokerCheck()
        read, write = protocol.data_received, protocol.write_data

        def data_received(data: bytes) -> None:
            fine, violation = check.received(data)
            if fine:
                read(data[:fine] if violation is not None else data)
            if violation is not None:
                log.warning("the broker broke the protocol, closing: %s", violation)
                transport.abort()

        def write_data(data: bytes) -> None:
            check.sent(bytes(data))
            write(data)

        protocol.data_received = data_received
        protocol.write_data = write_data
        return connection


class _AckWatch(PersistentStorage):  # type: ignore[misc]
    """gmqtt stores QoS 1 messages here until PUBACK: we only learn their ids."""

    def __init__(self, on_ack: Callable[[int], None]) -> None:
        super().__init__()
        self.last_mid = 0
        self._on_ack = on_ack

    def push_message(self, mid: int, raw_package: bytes) -> None:
        self.last_mid = mid  # not stored: this connector republishes after a reconnect

    def remove_message_by_mid(self, mid: int) -> None:
        self._on_ack(mid)


#: Bytes gmqtt may hold unwritten before the loop stops handing it messages.
WRITE_HIGH_WATER = 64 * 1024


def _unwritten(client: gmqtt.Client) -> int:
    """Bytes waiting in the asyncio transport under gmqtt's connection.

    gmqtt has no public flow control: its publish() writes to the transport,
    whose buffer grows without bound while the socket does not take bytes. This
    reads the buffer's size through gmqtt's connection object; if a gmqtt
    version stores it elsewhere, the answer is 0 and only the in-flight window
    (QoS 1) bounds what leaves the bridge.
    """
    transport = getattr(getattr(client, "_connection", None), "_transport", None)
    size = getattr(transport, "get_write_buffer_size", None)
    try:
        return int(size()) if callable(size) else 0
    except Exception:
        return 0


def _describe(err: BaseException) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {err.verify_message or err}"
    if isinstance(err, TimeoutError):
        return "no CONNACK within the connect timeout"
    return f"{type(err).__name__}: {err}"


# -- the connector --------------------------------------------------------------------------


@dataclass
class _Loop:
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    wake_r: int
    wake_w: int
    stop: asyncio.Event | None = None
    wake_pending: bool = False


class GmqttConnector(Generic[T]):
    """An MQTT 3.1.1 connector on gmqtt (the ``Connector`` port, routing ``MqttRouting``)."""

    #: Optional capabilities it offers (the kit checks each one claimed, and that the
    #: others are refused): shared subscriptions, ``$share/<group>/<filter>``.
    capabilities: frozenset[str] = frozenset({"shared-subscriptions"})

    def __init__(self, options: MqttConnectorOptions, codec: PayloadCodec[T]) -> None:
        self.options = options
        self.codec = codec
        self.health_state = Health()
        self._lock = threading.RLock()
        #: notified (under ``_lock``) whenever the outbound path may have emptied
        self._outbound_changed = threading.Condition(self._lock)
        self._bridge: collections.deque[Outgoing] = collections.deque()
        self._inflight: dict[int, Outgoing] = {}
        self._readers: list[GmqttReader[T]] = []
        self._writers: dict[str, GmqttWriter[T]] = {}
        self._reader_names: set[str] = set()
        self._closed = False
        self._run: _Loop | None = None
        self._client: gmqtt.Client | None = None
        self._subscribed: dict[str, int] = {}  # filter -> QoS asked for on this connection
        self._sub_mids: dict[int, str] = {}
        self._subscribed_readers: set[int] = set()
        self._acks: _AckWatch | None = None
        self._lost = asyncio.Event()
        self._pump_scheduled = False
        self._ready = threading.Event()

    # -- the port -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"gmqtt:{self.options.client_id}@{self.options.host}:{self.options.port}"

    def health(self) -> ConnectorHealth:
        return self.health_state.state

    def subscribe_health(self) -> HealthStream:
        return self.health_state.subscribe()

    def start(self) -> Result[None, ConnectorError]:
        with self._lock:
            if self._closed:
                return Failure(ConnectorDown("connector is closed"))
            if self._run is not None:
                return Success(None)
            loop = asyncio.new_event_loop()
            wake_r, wake_w = os.pipe()
            os.set_blocking(wake_r, False)
            os.set_blocking(wake_w, False)
            thread = threading.Thread(
                target=self._thread_main,
                name=f"gmqtt-connector-{self.options.client_id}",
                daemon=True,
            )
            self._run = _Loop(loop, thread, wake_r, wake_w)
        thread.start()
        self._ready.wait(5)
        return Success(None)

    def create_writer(
        self, descriptor: ChannelDescriptor[MqttRouting]
    ) -> Result[GmqttWriter[T], ConnectorError]:
        given: object = descriptor.routing  # checked: a caller may not be type-checked
        if not isinstance(given, MqttRouting):
            return Failure(ConfigurationError("the routing must be an MqttRouting"))
        routing = given
        if routing.topic is None:
            return Failure(
                ConfigurationError("a writer needs a topic; a filter is only for reading")
            )
        if routing.topic.startswith("$"):
            return Failure(
                ConfigurationError(
                    f"cannot publish to {routing.topic!r}: $ topics are the broker's"
                )
            )
        with self._lock:
            if self._closed:
                return Failure(ConnectorDown("connector is closed"))
            if descriptor.name in self._writers:
                return Failure(ConfigurationError(f"a writer named {descriptor.name!r} exists"))
            writer = GmqttWriter(self, descriptor)
            self._writers[descriptor.name] = writer
        return Success(writer)

    def create_reader(
        self, descriptor: ChannelDescriptor[MqttRouting]
    ) -> Result[GmqttReader[T], ConnectorError]:
        given: object = descriptor.routing
        if not isinstance(given, MqttRouting):
            return Failure(ConfigurationError("the routing must be an MqttRouting"))
        with self._lock:
            if self._closed:
                return Failure(ConnectorDown("connector is closed"))
            if descriptor.name in self._reader_names:
                return Failure(ConfigurationError(f"a reader named {descriptor.name!r} exists"))
            reader = GmqttReader(self, descriptor)
            self._readers.append(reader)
            self._reader_names.add(descriptor.name)
        self._wake()  # the loop subscribes it
        return Success(reader)

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        limit = seconds(timeout, "close timeout")
        if isinstance(limit, ConfigurationError):
            return Failure(limit)
        with self._lock:
            if self._closed:
                return Success(None)
            self._closed = True
            for writer in self._writers.values():
                writer.close()
            run = self._run
        deadline = math.inf if limit is None else time.monotonic() + limit
        if run is not None and self.health_state.phase == "connected":
            # Flush: the loop keeps sending (and reconnects if it must) until the
            # bridge and the in-flight window are empty or the time is up.
            self._wake()
            with self._outbound_changed:
                self._outbound_changed.wait_for(lambda: not self._outbound_busy(), limit)
        with self._lock:
            unsent = list(self._bridge) + list(self._inflight.values())
            self._bridge.clear()
            self._inflight.clear()
        for item in unsent:
            item.delivery.finish(ConnectorDown("closed before the message was delivered"))
        if run is not None:
            self._wake()
            run.thread.join(None if limit is None else max(1.0, deadline - time.monotonic()))
        for reader in list(self._readers):
            reader.release()
        self.health_state.close()
        if unsent:
            return Failure(ConnectorTimeout("close", timeout))
        return Success(None)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- application-thread helpers ----------------------------------------------------

    def offer(self, item: Outgoing) -> ConnectorError | None:
        with self._lock:
            if self._closed:
                return ConnectorDown("connector is closed")
            capacity = self.options.outbound_capacity
            if len(self._bridge) >= capacity:
                self.health_state.trip("outbound", OUTBOUND_BACKPRESSURE)
                return BackPressure(capacity)
            self._bridge.append(item)
        self._wake()
        return None

    def forget_reader(self, reader: GmqttReader[T]) -> None:
        with self._lock:
            if reader in self._readers:
                self._readers.remove(reader)
                self._reader_names.discard(reader.descriptor.name)
        self._wake()

    def _outbound_busy(self) -> bool:
        with self._lock:
            return bool(self._bridge or self._inflight)

    def _wake(self) -> None:
        """Wake the loop through its pipe (never a socket), once per pass."""
        run = self._run
        if run is None:
            return
        with self._lock:
            if run.wake_pending:
                return
            run.wake_pending = True
        with contextlib.suppress(OSError):
            os.write(run.wake_w, b"\1")

    # -- the loop thread ---------------------------------------------------------------

    def _thread_main(self) -> None:
        run = self._run
        assert run is not None
        asyncio.set_event_loop(run.loop)
        try:
            run.loop.run_until_complete(self._main(run))
        except Exception as err:  # the loop must never die silently
            log.exception("gmqtt connector loop failed")
            self.health_state.set_phase("down", f"internal error: {_describe(err)}")
        finally:
            with contextlib.suppress(Exception):
                run.loop.remove_reader(run.wake_r)
            for task in asyncio.all_tasks(run.loop):
                task.cancel()
            with contextlib.suppress(Exception):
                run.loop.run_until_complete(asyncio.sleep(0))
            run.loop.close()
            for fd in (run.wake_r, run.wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _on_wake(self) -> None:
        run = self._run
        assert run is not None
        with contextlib.suppress(BlockingIOError):
            os.read(run.wake_r, 4096)
        with self._lock:
            run.wake_pending = False
            closing = self._closed
        self._sync_subscriptions()
        self._pump()
        if closing and not self._outbound_busy() and run.stop is not None:
            run.stop.set()

    async def _main(self, run: _Loop) -> None:
        run.stop = asyncio.Event()
        run.loop.add_reader(run.wake_r, self._on_wake)
        self._ready.set()
        options = self.options
        attempts = 0
        while not self._closed:
            self.health_state.set_phase("connecting")
            client, failure = await self._connect()
            if failure == "auth":
                return
            if client is None:
                attempts += 1
                ceiling = options.reconnect_attempt_ceiling
                if ceiling is not None and attempts > ceiling:
                    self.health_state.set_phase(
                        "down", f"gave up after {attempts} attempts: {failure}"
                    )
                    await run.stop.wait()
                    return
                delay = min(
                    options.reconnect_max_backoff,
                    options.reconnect_initial_backoff * 2 ** (attempts - 1),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.stop.wait(), delay)
                continue
            attempts = 0
            lost = self._lost
            if lost.is_set():  # lost between CONNACK and here
                await self._discard(client)
                continue
            self._client = client
            self._subscribed.clear()
            self._sub_mids.clear()
            self._subscribed_readers.clear()
            with self._lock:
                for reader in self._readers:
                    reader.seen_retained.clear()
            self.health_state.set_phase("connected")
            self._send_again(client)
            self._sync_subscriptions()
            self._pump()
            stop_task = asyncio.ensure_future(run.stop.wait())
            lost_task = asyncio.ensure_future(lost.wait())
            await asyncio.wait({stop_task, lost_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            lost_task.cancel()
            self._client = None
            if run.stop.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 2)
                return
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 1)
            log.info("connection to %s:%s lost", options.host, options.port)

    @staticmethod
    def _lost_callback(lost: asyncio.Event) -> Callable[..., None]:
        def on_disconnect(*_args: Any, **_kwargs: Any) -> None:
            lost.set()

        return on_disconnect

    async def _connect(self) -> tuple[gmqtt.Client | None, str]:
        options = self.options
        self._acks = _AckWatch(self._acked)
        client = _CheckedClient(
            options.client_id,
            clean_session=options.clean_session,
            persistent_storage=self._acks,
            logger=logging.getLogger(f"{__name__}.gmqtt"),
        )
        client.reconnect_retries = -2  # below gmqtt's "unlimited" (-1): it never reconnects
        client.on_message = self._on_message
        client.on_subscribe = self._on_suback
        if options.credentials is not None:
            client.set_auth_credentials(options.credentials.username, options.credentials.password)
        context: ssl.SSLContext | bool = False
        if options.tls is not None:
            context = options.tls.context()
        lost = asyncio.Event()  # a connection closed before CONNACK fails the attempt at once
        client.on_disconnect = self._lost_callback(lost)
        self._lost = lost
        connecting = asyncio.ensure_future(
            client.connect(
                options.host,
                options.port,
                ssl=context,
                keepalive=max(1, round(options.keep_alive)),
                version=MQTTv311,
            )
        )
        closed = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait(
                {connecting, closed},
                timeout=options.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not connecting.done() and closed.done():  # a refusal may still be on its way
                await asyncio.wait({connecting}, timeout=0.05)
            if not connecting.done():
                connecting.cancel()
                await self._discard(client)
                if closed.done():
                    return None, "the connection closed before CONNACK"
                return None, "no CONNACK within the connect timeout"
            connecting.result()
        except MQTTConnectError as err:
            code = getattr(err, "_code", None)
            await self._discard(client)
            if code in _AUTH_REFUSED:
                self.health_state.set_phase(
                    "down",
                    f"authentication failed: the broker refused the credentials "
                    f"(CONNACK {code}: {_AUTH_REFUSED[code]})",
                )
                run = self._run
                assert run is not None
                assert run.stop is not None
                await run.stop.wait()
                return None, "auth"
            return None, f"the broker refused the connection: {err}"
        except (OSError, TimeoutError, ssl.SSLError) as err:
            await self._discard(client)
            return None, _describe(err)
        finally:
            closed.cancel()
        return client, ""

    def _send_again(self, client: gmqtt.Client) -> None:
        """What was never acknowledged goes again, in order: as new messages on a new
        session, as resends on a resumed one."""
        with self._lock:
            again = list(self._inflight.items())
            self._inflight.clear()
            if self.options.clean_session:
                self._bridge.extendleft(reversed([message for _, message in again]))
        if not self.options.clean_session:
            self._resend(client, again)

    def _resend(self, client: gmqtt.Client, again: list[tuple[int, Any]]) -> None:
        """A resumed session sends its unacknowledged PUBLISHes again with their own
        packet identifiers and DUP set (MQTT-4.4.0-1, MQTT-3.3.1-1); gmqtt's publish()
        would make new ones, so the bytes are encoded here, and the identifiers kept
        out of the new client's pool (``_used_ids``) until their PUBACKs free them."""
        protocol = client._connection._protocol
        for mid, message in again:
            protocol.id_generator._used_ids.add(mid)
            topic = message.topic.encode("utf-8")
            raw = encode_publish(topic, message.payload, 1, message.retain, mid, dup=True)
            protocol.write_data(raw)
            with self._lock:
                self._inflight[mid] = message

    @staticmethod
    async def _discard(client: gmqtt.Client) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 1)

    def _sync_subscriptions(self) -> None:
        client = self._client
        if client is None:
            return
        with self._lock:
            wanted: dict[str, int] = {}
            fresh: set[str] = set()
            for reader in self._readers:
                key = reader.filter
                wanted[key] = max(wanted.get(key, 0), reader.qos)
                if id(reader) not in self._subscribed_readers:
                    self._subscribed_readers.add(id(reader))
                    fresh.add(key)  # SUBSCRIBE again: the broker resends retained
        for topic_filter, qos in wanted.items():
            if topic_filter in fresh or self._subscribed.get(topic_filter, -1) < qos:
                mid = client.subscribe(topic_filter, qos=qos)
                self._subscribed[topic_filter] = qos
                self._sub_mids[int(mid)] = topic_filter
        for topic_filter in [f for f in self._subscribed if f not in wanted]:
            del self._subscribed[topic_filter]
            client.unsubscribe(topic_filter)

    def _on_suback(self, client: Any, mid: int, granted: Any, properties: Any) -> None:
        topic_filter = self._sub_mids.pop(mid, None)
        if topic_filter is None or not granted or granted[0] < 0x80:
            return
        error = StackError(f"the broker refused the subscription to {topic_filter!r}")
        with self._lock:
            readers = [r for r in self._readers if r.filter == topic_filter]
        for reader in readers:
            reader.fail(error)

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        retain = bool(props.get("retain", 0)) if isinstance(props, dict) else False
        with self._lock:
            readers = [r for r in self._readers if topic_matches(r.match_filter, topic)]
        for reader in readers:
            reader.offer(topic, bytes(payload), qos, retain)
        return 0

    def _pump(self) -> None:
        """Move messages from the bridge to gmqtt while the in-flight window allows."""
        client = self._client
        if client is None or not client.is_connected:
            return
        storage = self._acks
        assert storage is not None
        window = self.options.max_inflight
        while True:
            if _unwritten(client) > WRITE_HIGH_WATER:
                # The socket is not taking bytes (a stalled path): keep the rest in the
                # bounded bridge, where a full bridge is BackPressure, and look again soon.
                self._schedule_pump()
                break
            with self._lock:
                if not self._bridge:
                    break
                head = self._bridge[0]
                if head.qos and len(self._inflight) >= window:
                    break
                self._bridge.popleft()
            client.publish(head.topic, head.payload, qos=head.qos, retain=head.retain)
            if head.qos:
                with self._lock:
                    self._inflight[storage.last_mid] = head
            else:
                head.delivery.finish()
        self._check_drained()

    def _schedule_pump(self) -> None:
        run = self._run
        if run is not None and not self._pump_scheduled:
            self._pump_scheduled = True
            run.loop.call_later(0.005, self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        self._pump()

    def _acked(self, mid: int) -> None:
        with self._lock:
            item = self._inflight.pop(mid, None)
        if item is not None:
            item.delivery.finish()
        self._pump()

    def _check_drained(self) -> None:
        """Clear the backpressure latch once nothing waits: bridge, window and socket."""
        with self._outbound_changed:
            self._outbound_changed.notify_all()  # close() may be waiting for this
        if "outbound" not in self.health_state.latches or self._outbound_busy():
            return
        if self._closed:
            return  # close() failed what was left: not a drain; Degraded goes to Down
        client = self._client
        if client is not None and _unwritten(client):
            self._schedule_pump()  # look again once the socket took the bytes
            return
        self.health_state.clear("outbound")
