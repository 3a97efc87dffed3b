"""``GmqttConnector``: the Connector port over gmqtt, on an asyncio loop of its own.

What is gmqtt's here is connecting, publishing, receiving and reconnecting; the rest
of the contract (docs/connector-contract.md) comes from the public building blocks
in ``taktora_connector.adapters.toolkit``, the same ones the reference connector is
made of (docs/writing-a-connector.md walks through this file):

- threads: application calls never touch a socket. ``send`` puts the message in an
  ``OutboundBridge`` whose wake-up writes one byte to a pipe the loop watches;
  everything gmqtt does happens on the connector's one thread, which ``close`` joins;
- outbound: the loop moves messages to gmqtt while fewer than ``max_inflight`` QoS 1
  messages wait for PUBACK and the socket has taken all but ``WRITE_HIGH_WATER``
  bytes. A full bridge is ``BackPressure`` (health Degraded once, until the bridge,
  the window and the socket's buffer are empty again);
- deliveries: QoS 0 completes when handed to the transport, QoS 1 at its PUBACK
  (seen through the storage object gmqtt reports PUBACKs to); unacknowledged QoS 1
  messages go again after a reconnect;
- inbound: every reader whose filter matches gets a copy in its own ``InboundQueue``;
- connection: a fresh gmqtt client per attempt (gmqtt's own reconnection is off),
  exponential backoff, at most ``reconnect_attempt_ceiling`` attempts in a row;
  refused credentials stop at once (Down).

Two gmqtt internals are read (see ``_CheckedClient`` and ``_resend``): the
connection's protocol object (its ``data_received`` and ``write_data``) and its
packet-id generator's ``_used_ids``; and ``_unwritten`` reads the transport's buffer
size through ``client._connection._transport``.
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
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import gmqtt
from gmqtt.mqtt.constants import MQTTv311
from gmqtt.mqtt.handler import MQTTConnectError
from gmqtt.storage import PersistentStorage
from returns.result import Failure, Result, Success

from taktora_connector.adapters.mqtt import MqttConnectorOptions, MqttRouting
from taktora_connector.adapters.mqtt.protocol.broker_check import BrokerCheck
from taktora_connector.adapters.mqtt.protocol.packets import encode_publish
from taktora_connector.adapters.toolkit import (
    BridgeWriter,
    HealthBroadcaster,
    HealthController,
    OutboundBridge,
    Outgoing,
    Phase,
    QueueHealthSubscription,
    QueueReader,
    TopicMatcher,
    validate_publish_topic,
    wait_seconds,
)
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
    Connecting,
    ConnectorDown,
    ConnectorError,
    ConnectorHealth,
    ConnectorTimeout,
    StackError,
)
from taktora_connector.ports import PayloadCodec

T = TypeVar("T")
log = logging.getLogger(__name__)
_AUTH_REFUSED = {4: "bad user name or password", 5: "not authorized"}
#: Bytes gmqtt may hold unwritten before the loop stops handing it messages.
WRITE_HIGH_WATER = 64 * 1024


class GmqttReader(QueueReader[T]):
    """A ``QueueReader`` that knows its subscription and the retained messages it has
    on this connection (a re-SUBSCRIBE for another reader resends them)."""

    def __init__(
        self, owner: GmqttConnector[T], descriptor: ChannelDescriptor[MqttRouting]
    ) -> None:
        options = owner.options
        super().__init__(
            descriptor, owner.codec, options.inbound_capacity, owner.controller, owner.forget_reader
        )
        routing = descriptor.routing
        self.filter = routing.broker_filter()  # $share/<group>/... when shared
        self.match_filter = routing.subscription_filter()
        self.qos = int(routing.qos)
        self.seen_retained: set[tuple[str, bytes]] = set()


class _CheckedClient(gmqtt.Client):  # type: ignore[misc]
    """gmqtt's client with every byte of each connection checked by ``BrokerCheck``.

    gmqtt trusts its broker: a PUBLISH before CONNACK, a wildcard topic name, QoS 3
    or a SUBACK without return codes all go through. A client must close the
    connection on a protocol violation (MQTT-4.8.0-1), so each new connection's
    protocol object has its ``data_received`` and ``write_data`` wrapped (two gmqtt
    internals): what the broker sent is handed to gmqtt only up to the first
    violation, then the transport is aborted and gmqtt sees the connection lost."""

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

        protocol.data_received, protocol.write_data = data_received, write_data
        return connection


class _AckWatch(PersistentStorage):  # type: ignore[misc]
    """gmqtt stores QoS 1 messages here until PUBACK: we only learn their ids."""

    def __init__(self, on_ack: Callable[[int], None]) -> None:
        super().__init__()
        self.last_mid = 0
        self._on_ack = on_ack

    def push_message(self, mid: int, raw_package: bytes) -> None:
        self.last_mid = mid  # not stored: this connector sends again after a reconnect

    def remove_message_by_mid(self, mid: int) -> None:
        self._on_ack(mid)


def _unwritten(client: gmqtt.Client) -> int:
    """Bytes waiting in the asyncio transport under gmqtt (it has no flow control of
    its own: publish() writes to a buffer that grows while the socket takes nothing).
    0 if a gmqtt version keeps the transport elsewhere: then only the QoS 1 window
    bounds what leaves the bridge."""
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


class GmqttConnector(Generic[T]):
    """An MQTT 3.1.1 connector on gmqtt (the ``Connector`` port, routing ``MqttRouting``)."""

    #: Optional capabilities (the kit checks each one claimed, and that the others are
    #: refused): shared subscriptions, ``$share/<group>/<filter>``.
    capabilities: frozenset[str] = frozenset({"shared-subscriptions"})

    def __init__(self, options: MqttConnectorOptions, codec: PayloadCodec[T]) -> None:
        self.options, self.codec = options, codec
        self.health_broadcaster = HealthBroadcaster(Connecting(time.monotonic_ns()))
        self.controller = HealthController(self.health_broadcaster, options.inbound_drop_threshold)
        self.bridge: OutboundBridge[Outgoing] = OutboundBridge(
            options.outbound_capacity, self._wake
        )
        self._lock = threading.RLock()
        self._outbound_changed = threading.Condition(self._lock)  # close() waits on it
        self._again: collections.deque[Outgoing] = collections.deque()  # sent before the bridge
        self._inflight: dict[int, Outgoing] = {}
        self._readers: TopicMatcher[GmqttReader[T]] = TopicMatcher()
        self._reader_list: list[GmqttReader[T]] = []
        self._writers: dict[str, BridgeWriter[T]] = {}
        self._closed = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._stop: asyncio.Event | None = None
        self._client: gmqtt.Client | None = None
        self._subscribed: dict[str, int] = {}  # filter -> QoS asked for on this connection
        self._sub_mids: dict[int, str] = {}
        self._subscribed_readers: set[int] = set()
        self._acks: _AckWatch | None = None
        self._pump_scheduled = False
        self._ready = threading.Event()

    # -- the port -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"gmqtt:{self.options.client_id}@{self.options.host}:{self.options.port}"

    def health(self) -> ConnectorHealth:
        return self.health_broadcaster.state

    def subscribe_health(self) -> QueueHealthSubscription:
        return self.health_broadcaster.subscribe()

    def start(self) -> Result[None, ConnectorError]:
        with self._lock:
            if self._closed:
                return Failure(ConnectorDown("connector is closed"))
            if self._thread is not None:
                return Success(None)
            self._thread = threading.Thread(
                target=self._thread_main,
                name=f"gmqtt-connector-{self.options.client_id}",
                daemon=True,
            )
        self._thread.start()
        self._ready.wait(5)
        return Success(None)

    def create_writer(
        self, descriptor: ChannelDescriptor[MqttRouting]
    ) -> Result[BridgeWriter[T], ConnectorError]:
        routing: object = descriptor.routing  # checked: a caller may not be type-checked
        if not isinstance(routing, MqttRouting):
            return Failure(ConfigurationError("the routing must be an MqttRouting"))
        if routing.topic is None:
            return Failure(
                ConfigurationError("a writer needs a topic; a filter is only for reading")
            )
        try:
            validate_publish_topic(routing.topic)  # e.g. no $ topic: those are the broker's
        except ConfigurationError as err:
            return Failure(err)
        with self._lock:
            if self._closed:
                return Failure(ConnectorDown("connector is closed"))
            if descriptor.name in self._writers:
                return Failure(ConfigurationError(f"a writer named {descriptor.name!r} exists"))
            writer = BridgeWriter(descriptor, self.codec, self.bridge, self.controller)
            self._writers[descriptor.name] = writer
        return Success(writer)

    def create_reader(
        self, descriptor: ChannelDescriptor[MqttRouting]
    ) -> Result[GmqttReader[T], ConnectorError]:
        routing: object = descriptor.routing  # checked: a caller may not be type-checked
        if not isinstance(routing, MqttRouting):
            return Failure(ConfigurationError("the routing must be an MqttRouting"))
        with self._lock:
            if self._closed:
                return Failure(ConnectorDown("connector is closed"))
            if any(r.descriptor.name == descriptor.name for r in self._reader_list):
                return Failure(ConfigurationError(f"a reader named {descriptor.name!r} exists"))
            reader = GmqttReader(self, descriptor)
            self._reader_list.append(reader)
            self._readers.add(reader.match_filter, reader)
        self._wake()  # the loop subscribes it
        return Success(reader)

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        limit = wait_seconds(timeout, "close timeout")
        if isinstance(limit, ConfigurationError):
            return Failure(limit)
        with self._lock:
            if self._closed:
                return Success(None)
            self._closed = True
            for writer in self._writers.values():
                writer.close()
        deadline = math.inf if limit is None else time.monotonic() + limit
        if self._thread is not None and self.controller.phase is Phase.CONNECTED:
            # Flush: the loop keeps sending (and reconnects if it must) until the
            # bridge and the in-flight window are empty or the time is up.
            self._wake()
            with self._outbound_changed:
                self._outbound_changed.wait_for(lambda: not self._outbound_busy(), limit)
        unsent = self.bridge.close()
        with self._lock:
            unsent += list(self._again) + list(self._inflight.values())
            self._again.clear()
            self._inflight.clear()
        for item in unsent:
            item.delivery.fail(ConnectorDown("closed before the message was delivered"))
        if self._thread is not None:
            self._wake()
            self._thread.join(None if limit is None else max(1.0, deadline - time.monotonic()))
        for reader in list(self._reader_list):
            reader.close()
        self.controller.set_phase(Phase.DOWN, "closed")
        self.health_broadcaster.close_all()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        return Failure(ConnectorTimeout("close", timeout)) if unsent else Success(None)

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

    # -- helpers for the handles -----------------------------------------------------

    def forget_reader(self, reader: QueueReader[T]) -> None:
        with self._lock:
            if isinstance(reader, GmqttReader) and reader in self._reader_list:
                self._reader_list.remove(reader)
                self._readers.remove(reader.match_filter, reader)
        self._wake()

    def _outbound_busy(self) -> bool:
        with self._lock:
            return bool(len(self.bridge) or self._again or self._inflight)

    def _wake(self) -> None:
        """Wake the loop through its pipe (never a socket); a full pipe is awake already."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\1")

    def _phase(self, phase: Phase, reason: str = "") -> None:
        if not self._closed:  # closed is final: the loop's last words change nothing
            self.controller.set_phase(phase, reason)

    # -- the loop thread ---------------------------------------------------------------

    def _thread_main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(loop))
        except Exception as err:  # the loop must never die silently
            log.exception("gmqtt connector loop failed")
            self._phase(Phase.DOWN, f"internal error: {_describe(err)}")
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self._wake_r)
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _on_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        self._sync_subscriptions()
        self._pump()
        if self._closed and not self._outbound_busy() and self._stop is not None:
            self._stop.set()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        stop = self._stop = asyncio.Event()
        loop.add_reader(self._wake_r, self._on_wake)
        self._ready.set()
        options, attempts = self.options, 0
        while not self._closed:
            self._phase(Phase.CONNECTING)
            client, lost, failure = await self._connect()
            if failure == "auth":
                return
            if client is None:
                attempts += 1
                ceiling = options.reconnect_attempt_ceiling
                if ceiling is not None and attempts > ceiling:
                    self._phase(Phase.DOWN, f"gave up after {attempts} attempts: {failure}")
                    await stop.wait()
                    return
                delay = min(
                    options.reconnect_max_backoff,
                    options.reconnect_initial_backoff * 2 ** (attempts - 1),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            attempts = 0
            self._client = client
            self._subscribed.clear()
            self._sub_mids.clear()
            self._subscribed_readers.clear()
            for reader in list(self._reader_list):
                reader.seen_retained.clear()
            self._phase(Phase.CONNECTED)
            self._send_again(client)
            self._sync_subscriptions()
            self._pump()
            waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            self._client = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2 if stop.is_set() else 1)
            if stop.is_set():
                return
            log.info("connection to %s:%s lost", options.host, options.port)

    async def _connect(self) -> tuple[gmqtt.Client | None, asyncio.Event, str]:
        """One attempt: the client, the event its loss sets, and why it failed ("auth":
        refused credentials, Down already)."""
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
        lost = asyncio.Event()  # a connection closed before CONNACK fails the attempt at once
        client.on_disconnect = lambda *_args, **_kwargs: lost.set()
        context = options.tls.context() if options.tls is not None else False
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
                failure = (
                    "the connection closed before CONNACK"
                    if closed.done()
                    else "no CONNACK within the connect timeout"
                )
                return await self._discard(client, lost, failure)
            connecting.result()
        except MQTTConnectError as err:
            code = getattr(err, "_code", None)
            if code in _AUTH_REFUSED:
                self._phase(
                    Phase.DOWN,
                    "authentication failed: the broker refused the credentials "
                    f"(CONNACK {code}: {_AUTH_REFUSED[code]})",
                )
                await self._discard(client, lost, "")
                assert self._stop is not None
                await self._stop.wait()
                return None, lost, "auth"
            return await self._discard(client, lost, f"the broker refused the connection: {err}")
        except (OSError, TimeoutError, ssl.SSLError) as err:
            return await self._discard(client, lost, _describe(err))
        finally:
            closed.cancel()
        if lost.is_set():  # lost between CONNACK and here
            return await self._discard(client, lost, "the connection was lost at once")
        return client, lost, ""

    @staticmethod
    async def _discard(
        client: gmqtt.Client, lost: asyncio.Event, failure: str
    ) -> tuple[None, asyncio.Event, str]:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 1)
        return None, lost, failure

    def _send_again(self, client: gmqtt.Client) -> None:
        """What was never acknowledged goes again, in order: as new messages on a new
        session, as resends on a resumed one."""
        with self._lock:
            again = list(self._inflight.items())  # (in the order they were sent)
            self._inflight.clear()
            if self.options.clean_session:
                self._again.extendleft(reversed([message for _, message in again]))
                return
        self._resend(client, again)

    def _resend(self, client: gmqtt.Client, again: list[tuple[int, Outgoing]]) -> None:
        """A resumed session sends its unacknowledged PUBLISHes again with their own
        packet identifiers and DUP set (MQTT-4.4.0-1, MQTT-3.3.1-1); gmqtt's publish()
        would make new ones, so the bytes are encoded here, and the identifiers kept
        out of the new client's pool (``_used_ids``) until their PUBACKs free them."""
        protocol = client._connection._protocol
        for mid, message in again:
            protocol.id_generator._used_ids.add(mid)
            raw = encode_publish(
                message.topic.encode("utf-8"), message.payload, 1, message.retain, mid, dup=True
            )
            protocol.write_data(raw)
            with self._lock:
                self._inflight[mid] = message

    def _sync_subscriptions(self) -> None:
        client = self._client
        if client is None:
            return
        wanted: dict[str, int] = {}
        fresh: set[str] = set()
        for reader in list(self._reader_list):
            wanted[reader.filter] = max(wanted.get(reader.filter, 0), reader.qos)
            if id(reader) not in self._subscribed_readers:
                self._subscribed_readers.add(id(reader))
                fresh.add(reader.filter)  # SUBSCRIBE again: the broker resends retained
        for topic_filter, qos in wanted.items():
            if topic_filter in fresh or self._subscribed.get(topic_filter, -1) < qos:
                self._sub_mids[int(client.subscribe(topic_filter, qos=qos))] = topic_filter
                self._subscribed[topic_filter] = qos
        for topic_filter in [f for f in self._subscribed if f not in wanted]:
            del self._subscribed[topic_filter]
            client.unsubscribe(topic_filter)

    def _on_suback(self, client: Any, mid: int, granted: Any, properties: Any) -> None:
        topic_filter = self._sub_mids.pop(mid, None)
        if topic_filter is None or not granted or granted[0] < 0x80:
            return
        error = StackError(f"the broker refused the subscription to {topic_filter!r}")
        for reader in [r for r in list(self._reader_list) if r.filter == topic_filter]:
            reader.fail(error)

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        retain = bool(props.get("retain", 0)) if isinstance(props, dict) else False
        with self._lock:
            readers = self._readers.match(topic)
        for reader in readers:
            if retain:  # a re-SUBSCRIBE for another reader resends what this one had
                if (topic, payload) in reader.seen_retained:
                    continue
                reader.seen_retained.add((topic, payload))
            reader.deliver(topic, bytes(payload), qos, retain)
        return 0

    def _pump(self) -> None:
        """Move messages from the bridge to gmqtt while the in-flight window allows."""
        client = self._client
        if client is None or not client.is_connected:
            return
        assert self._acks is not None
        while True:
            if _unwritten(client) > WRITE_HIGH_WATER:
                # The socket is not taking bytes (a stalled path): keep the rest in the
                # bounded bridge, where a full bridge is BackPressure, and look again soon.
                self._schedule_pump()
                break
            with self._lock:
                head = self._again[0] if self._again else self.bridge.peek()
                if head is None or (head.qos and len(self._inflight) >= self.options.max_inflight):
                    break
                self._again.popleft() if self._again else self.bridge.pop()
            client.publish(head.topic, head.payload, qos=head.qos, retain=head.retain)
            if head.qos:
                with self._lock:
                    self._inflight[self._acks.last_mid] = head
            else:
                head.delivery.succeed()
        self._check_drained()

    def _schedule_pump(self) -> None:
        if self._loop is not None and not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_later(0.005, self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        self._pump()

    def _acked(self, mid: int) -> None:
        with self._lock:
            item = self._inflight.pop(mid, None)
        if item is not None:
            item.delivery.succeed()
        self._pump()

    def _check_drained(self) -> None:
        """End the backpressure episode once nothing waits: bridge, window and socket."""
        with self._outbound_changed:
            self._outbound_changed.notify_all()  # close() may be waiting for this
        if not self.controller.outbound_latched or self._outbound_busy() or self._closed:
            return  # (closed: close() failed what was left; not a drain)
        client = self._client
        if client is not None and _unwritten(client):
            self._schedule_pump()  # look again once the socket took the bytes
            return
        self.controller.outbound_drained()
