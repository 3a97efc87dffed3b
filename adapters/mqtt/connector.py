"""The connector facade: what an application holds (REQ_0250).

Rules of this module:
- it wires the parts together and checks what the caller asks for; protocol
  work belongs to the gateway, health decisions to the health controller;
- every operation that can fail for the caller's input returns a ``Result``;
- writers and readers may be created before or after ``start()``;
- after ``close()`` every operation of the connector and its channels returns
  ``Failure(ConnectorDown)``, and no thread or descriptor of it is left.
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from returns.result import Failure, Result, Success

from taktora_connector.adapters.codecs import JsonCodec
from taktora_connector.adapters.health import HealthBroadcaster, QueueHealthSubscription
from taktora_connector.adapters.mqtt.sidecar.gateway import Gateway
from taktora_connector.adapters.mqtt.sidecar.subscriptions import Subscriptions
from taktora_connector.adapters.timeouts import shown, wait_seconds
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
    Connecting,
    ConnectorDown,
    ConnectorError,
    ConnectorHealth,
    ConnectorTimeout,
)
from taktora_connector.ports import PayloadCodec

from .channels import MqttReader, MqttWriter
from .health_control import HealthController, Phase
from .metrics import ConnectorMetrics, ReaderMetrics
from .options import MqttConnectorOptions
from .routing import MqttRouting
from .topics import validate_publish_topic

T = TypeVar("T")

DEFAULT_CLOSE_TIMEOUT = 5.0


class MqttConnector(Generic[T]):
    """The reference MQTT 3.1.1 connector.

    >>> connector = MqttConnector(MqttConnectorOptions(client_id="doc-example"))
    >>> connector.name, connector.health().kind.value
    ('mqtt', 'connecting')
    >>> _ = connector.close()
    """

    #: The optional capabilities it offers beyond the twelve requirements, by the names
    #: the conformance kit knows (``docs/connector-contract.md``): shared subscriptions
    #: (``MqttRouting(share_group=...)``, ``$share/<group>/<filter>`` at the broker).
    capabilities: frozenset[str] = frozenset({"shared-subscriptions"})

    def __init__(
        self,
        options: MqttConnectorOptions | None = None,
        codec: PayloadCodec[T] | None = None,
    ) -> None:
        self._options = options if options is not None else MqttConnectorOptions()
        if not isinstance(self._options, MqttConnectorOptions):
            raise ConfigurationError(
                f"options must be MqttConnectorOptions, got {type(self._options).__name__}"
            )
        self._codec: PayloadCodec[T] = codec if codec is not None else JsonCodec()
        missing = [
            name for name in ("format_name", "encode", "decode") if not hasattr(self._codec, name)
        ]
        if missing or not callable(self._codec.encode) or not callable(self._codec.decode):
            raise ConfigurationError(
                f"codec must be a PayloadCodec (format_name, encode(value), decode(bytes)), "
                f"got {type(self._codec).__name__}"
                + (f" without {', '.join(missing)}" if missing else "")
            )
        self._broadcaster = HealthBroadcaster(Connecting(time.monotonic_ns()))
        self._controller = HealthController(self._broadcaster, self._options.inbound_drop_threshold)
        # Nothing the sidecar holds may refer to this facade, so that dropping the
        # last reference to it stops the sidecar (the finalizer below): callbacks
        # into the facade are weak.
        waker = _Waker()
        self._subscriptions: Subscriptions[MqttReader[T]] = Subscriptions(waker)
        self._gateway = Gateway(
            self._options, self._controller, self._subscriptions, self._options.outbound_capacity
        )
        waker.target = self._gateway.wake
        self._lock = threading.Lock()
        self._writers: dict[str, MqttWriter[T]] = {}
        self._readers: dict[str, MqttReader[T]] = {}
        # Of the readers closed since (for metrics): messages consumed, decode failures.
        self._consumed_closed = self._undecoded_closed = 0
        self._closed = False
        self._close_done = threading.Event()
        self._close_result: Result[None, ConnectorError] = Success(None)
        self._finalizer = weakref.finalize(
            self,
            _abandoned,
            self._gateway,
            self._controller,
            self._broadcaster,
            f"{self._options.broker_url()} client_id={self._options.client_id!r}",
        )

    # -- Connector port ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return "mqtt"

    @property
    def options(self) -> MqttConnectorOptions:
        return self._options

    @property
    def codec(self) -> PayloadCodec[T]:
        return self._codec

    def health(self) -> ConnectorHealth:
        return self._broadcaster.state

    def subscribe_health(self) -> QueueHealthSubscription:
        return self._broadcaster.subscribe()

    @property
    def last_error(self) -> str | None:
        """The most recent connection failure, as text (never contains the password)."""
        return self._gateway.last_error

    @property
    def server(self) -> str | None:
        """The server this connector is connected to now, as ``mqtt[s]://host:port``
        (one of ``options.server_list``); None while it is not connected."""
        return self._gateway.server

    @property
    def rejected_inbound(self) -> int:
        """Inbound messages the broker sent on something that is no topic name: not UTF-8,
        empty, with a wildcard or with U+0000 (dropped, counted, logged)."""
        return self._gateway.rejected_inbound

    @property
    def unrouted_inbound(self) -> int:
        """Inbound messages that matched no open reader when they arrived. With
        ``clean_session=False`` the last ``inbound_capacity`` of them are held and go to
        the first reader created for them (a session's backlog arrives before readers
        created after ``start()`` exist)."""
        return self._gateway.unrouted_inbound

    @property
    def unacknowledged_inbound(self) -> int:
        """QoS 1 messages of a persistent session (``clean_session=False``) received on this
        connection and not yet acknowledged: the application has not taken them, or has not
        yet come back to their reader for more. Always 0 for a clean session."""
        acks = self._gateway.inbound_acks
        return 0 if acks is None else acks.unacknowledged

    @property
    def session_resumes(self) -> int:
        """Reconnects this connector made on purpose to resume a persistent session: a
        reader whose full queue dropped QoS 1 messages (not acknowledged) had drained, so
        the connector disconnected and connected again at once, and the broker sent those
        messages again. Always 0 for a clean session, whose drops are lost."""
        return self._gateway.session_resumes

    @property
    def unresent_inbound(self) -> int:
        """QoS 1 messages a full reader queue dropped in a persistent session that the
        broker did not send again when the session resumed, so they are lost. A broker
        that keeps MQTT-4.4.0-1 (mosquitto, measured) leaves this at 0; amqtt 0.12 does
        not resend, and once this is above 0 the connector stops asking it: later drops
        are acknowledged and lost, as in a clean session."""
        acks = self._gateway.inbound_acks
        return 0 if acks is None else acks.unresent

    @property
    def inbound_drops(self) -> int:
        """Inbound messages dropped across all readers so far."""
        return self._controller.inbound_drops

    def metrics(self) -> ConnectorMetrics:
        """Counters and gauges of this connector now (``ConnectorMetrics``): cheap, from
        any thread, as often as you like (it reads plain integers the sidecar keeps)."""
        with self._lock:  # the open readers and the closed ones' counts, together
            readers = list(self._readers.values())
            shown = tuple(
                ReaderMetrics(
                    r.descriptor.name,
                    r.topic_filter,
                    r.queued,
                    r.dropped,
                    r.consumed,
                    r.oversized,
                    r.decode_failures,
                )
                for r in readers
            )
            consumed = self._consumed_closed + sum(r.consumed for r in shown)
            undecoded = self._undecoded_closed + sum(r.decode_failures for r in shown)
        return self._gateway.metrics(
            health=self._broadcaster.state,
            transitions=dict(self._broadcaster.transitions),
            dropped=self._controller.inbound_drops,
            sends_refused=self._controller.sends_refused,
            readers=shown,
            consumed=consumed,
            decode_failures=undecoded,
            session="clean" if self._options.clean_session else "persistent",
            closed=self._closed,
        )

    def start(self) -> Result[None, ConnectorError]:
        """Start the sidecar and connect; again after ``Down``, retry connecting."""
        with self._lock:
            if self._closed:
                return Failure(ConnectorDown("connector is closed"))
            if self._gateway.died is not None:
                return Failure(ConnectorDown(self._gateway.died))
            self._gateway.start()
        return Success(None)

    def create_writer(
        self, descriptor: ChannelDescriptor[MqttRouting]
    ) -> Result[MqttWriter[T], ConnectorError]:
        checked = _check_descriptor(descriptor)
        if checked is not None:
            return Failure(checked)
        routing = descriptor.routing
        if routing.topic is None:
            return Failure(
                ConfigurationError(
                    f"writer {descriptor.name!r} needs MqttRouting.topic to publish to; "
                    f"a filter ({routing.filter!r}) is only for reading"
                )
            )
        if routing.share_group is not None:
            return Failure(
                ConfigurationError(
                    f"writer {descriptor.name!r} has share_group {routing.share_group!r}; "
                    "a share group is only for reading (publish to the plain topic)"
                )
            )
        try:
            validate_publish_topic(routing.topic)
        except ConfigurationError as err:
            return Failure(err)
        with self._lock:
            if self._closed:
                return Failure(ConnectorDown("connector is closed"))
            if self._gateway.died is not None:
                return Failure(ConnectorDown(self._gateway.died))
            if descriptor.name in self._writers:
                return Failure(_duplicate("writer", descriptor.name))
            writer = MqttWriter(
                descriptor,
                self._codec,
                self._gateway.outbound,
                self._controller,
                _weak_method(self._forget_writer),
            )
            self._writers[descriptor.name] = writer
        return Success(writer)

    def create_reader(
        self, descriptor: ChannelDescriptor[MqttRouting]
    ) -> Result[MqttReader[T], ConnectorError]:
        checked = _check_descriptor(descriptor)
        if checked is not None:
            return Failure(checked)
        with self._lock:
            if self._closed:
                return Failure(ConnectorDown("connector is closed"))
            if self._gateway.died is not None:
                return Failure(ConnectorDown(self._gateway.died))
            if descriptor.name in self._readers:
                return Failure(_duplicate("reader", descriptor.name))
            reader = MqttReader(
                descriptor,
                self._codec,
                self._options.inbound_capacity,
                self._controller,
                _weak_method(self._forget_reader),
                acks=self._gateway.inbound_acks,
            )
            self._readers[descriptor.name] = reader
            self._subscriptions.add(reader.topic_filter, reader, int(descriptor.routing.qos))
        return Success(reader)

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> Result[None, ConnectorError]:
        """Flush what was accepted (up to ``timeout`` s), disconnect, stop the sidecar.

        Idempotent: a later or concurrent call waits (up to its own timeout) for the
        first to finish and returns its outcome. ``Failure(ConnectorTimeout)`` when
        messages were still undelivered at the deadline (their handles fail with ``ConnectorDown``);
        the connector is closed either way. ``math.inf``: no deadline; NaN or
        a negative timeout is a ``Failure(ConfigurationError)`` and closes nothing.
        """
        seconds = wait_seconds(timeout, "close timeout")
        if isinstance(seconds, ConfigurationError):
            return Failure(seconds)
        with self._lock:
            closing = self._closed
            self._closed = True
            writers = list(self._writers.values())
            readers = list(self._readers.values())
        if closing:
            if not self._close_done.wait(seconds):
                return Failure(ConnectorTimeout("close", shown(seconds)))
            return self._close_result
        self._finalizer.detach()
        try:
            self._close_result = self._close(seconds, writers, readers)
        finally:
            self._close_done.set()
        return self._close_result

    def _close(
        self, seconds: float | None, writers: list[MqttWriter[T]], readers: list[MqttReader[T]]
    ) -> Result[None, ConnectorError]:
        for writer in writers:
            writer.close()
        acks = self._gateway.inbound_acks
        if acks is not None:
            # A persistent session: what the application took is acknowledged before the
            # DISCONNECT; what it never took is not, and comes again with the next session.
            for reader in readers:
                reader.release_taken()
            acks.seal()
        flushed = self._gateway.stop(seconds)
        for reader in readers:
            reader.close()
        self._controller.set_phase(Phase.DOWN, "closed")
        self._broadcaster.close_all()
        if self._gateway.died is not None:
            return Failure(ConnectorDown(self._gateway.died))
        if not flushed:
            return Failure(ConnectorTimeout("close", shown(seconds)))
        return Success(None)

    def __enter__(self) -> Self:
        started = self.start()
        if isinstance(started, Failure):
            raise started.failure()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<MqttConnector {self._options.broker_url()} client_id="
            f"{self._options.client_id!r} {self.health().kind.value}>"
        )

    # -- internals -----------------------------------------------------------------------

    @property
    def sidecar(self) -> threading.Thread | None:
        """The sidecar thread (for diagnostics and tests), once started."""
        return self._gateway.thread

    def _forget_writer(self, writer: MqttWriter[Any]) -> None:
        with self._lock:
            if self._writers.get(writer.descriptor.name) is writer:
                del self._writers[writer.descriptor.name]

    def _forget_reader(self, reader: MqttReader[Any]) -> None:
        with self._lock:
            if self._readers.get(reader.descriptor.name) is reader:
                del self._readers[reader.descriptor.name]
                self._consumed_closed += reader.consumed
                self._undecoded_closed += reader.decode_failures
        self._subscriptions.remove(reader.topic_filter, reader)


class _Waker:
    """Wakes the sidecar; set once the gateway exists (no reference to the facade)."""

    __slots__ = ("target",)

    def __init__(self) -> None:
        self.target: Callable[[], None] | None = None

    def __call__(self) -> None:
        target = self.target
        if target is not None:
            target()


def _weak_method(method: Callable[[Any], None]) -> Callable[[Any], None]:
    """``method`` of an object, called only while that object lives."""
    ref = weakref.WeakMethod(method)

    def call(arg: Any) -> None:
        bound = ref()
        if bound is not None:
            bound(arg)

    return call


def _abandoned(
    gateway: Gateway,
    controller: HealthController,
    broadcaster: HealthBroadcaster,
    name: str,
) -> None:
    """The connector became unreachable without ``close()``: stop its sidecar, as an
    unclosed file or socket would be, with a ``ResourceWarning``.

    A finalizer runs wherever the collector ran, possibly inside a lock of this very
    connector (a health broadcast, a bridge offer): so it takes no lock itself and
    leaves the stopping to a short-lived thread."""
    warnings.warn(
        f"MqttConnector {name} was not closed; its sidecar is stopped now "
        "(call close() or use it as a context manager)",
        ResourceWarning,
        stacklevel=2,
    )
    try:
        threading.Thread(
            target=_stop_abandoned,
            args=(gateway, controller, broadcaster),
            name="taktora-mqtt-cleanup",
            daemon=True,
        ).start()
    except RuntimeError:  # interpreter shutdown: no new threads, and nothing left to wait
        pass


def _stop_abandoned(
    gateway: Gateway, controller: HealthController, broadcaster: HealthBroadcaster
) -> None:
    reason = "connector was dropped without close()"
    gateway.abandon(reason)
    controller.set_phase(Phase.DOWN, reason)
    broadcaster.close_all()


def _check_descriptor(descriptor: object) -> ConnectorError | None:
    if not isinstance(descriptor, ChannelDescriptor):
        return ConfigurationError(f"expected a ChannelDescriptor, got {type(descriptor).__name__}")
    if not isinstance(descriptor.routing, MqttRouting):
        return ConfigurationError(
            f"channel {descriptor.name!r} has routing {type(descriptor.routing).__name__}; "
            "the MQTT connector needs MqttRouting"
        )
    return None


def _duplicate(kind: str, name: str) -> ConfigurationError:
    return ConfigurationError(
        f"a {kind} named {name!r} is already open on this connector; "
        f"channel names must be unique per connector (close the other {kind} first)"
    )
