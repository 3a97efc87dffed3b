"""OpenTelemetry for a connector: instruments over ``connector.metrics()``, publish
durations, and send and receive spans. The ``otel`` extra (``opentelemetry-api`` only).

    from taktora_connector.adapters.otel import instrument

    telemetry = instrument(connector).unwrap()          # the global providers
    writer = telemetry.writer(connector.create_writer(descriptor)).unwrap()
    reader = telemetry.reader(connector.create_reader(descriptor)).unwrap()

Rules of this module:
- nothing here is imported by the connector: without ``instrument`` no OpenTelemetry
  module is loaded and nothing is measured;
- bad input is a ``Failure(ConfigurationError)`` saying what was given and what is
  wanted, and registers nothing; a connector whose ``metrics()`` raises at collection
  is logged once and skipped, never hiding the other connectors' series;
- the thread API and the asyncio connector alike (``writer``/``reader`` wrap either
  kind of handle); one set of instruments per meter provider, reading every
  connector instrumented on it, so ``instrument`` twice counts nothing twice; on the
  global provider the instruments are made through OpenTelemetry's global meter,
  so connectors instrumented before the SDK is set follow it there too;
- names and attributes follow the OpenTelemetry messaging semantic conventions:
  ``messaging.system = "mqtt"`` and ``messaging.client.id`` on everything (one
  series per connector); ``messaging.client.sent.messages`` and
  ``messaging.client.consumed.messages`` (counters read from the snapshot when the
  SDK collects; no server attribute, since a lifetime count does not move with the
  server); ``messaging.client.operation.duration`` (seconds from ``send`` to the
  delivery's completion: the PUBACK at QoS 1, the write at QoS 0) with
  ``messaging.operation.name``/``messaging.operation.type``, ``server.address`` and
  ``server.port`` of the server in use when it was sent (with several servers, the
  one connected; the first while none is), and ``error.type`` for a failed delivery
  (span and duration);
- consumed means handed to the application as a message
  (``metrics().messages_consumed``): one dropped by a full queue, unrouted, rejected,
  or handed out as a ``PayloadOverflow``/``CodecError`` is not consumed;
- the destination (``messaging.destination.name``) is the writer's topic or the
  reader's filter, so its values are bounded by the channels; a received message's
  own topic is used only when asked (``per_message_topic=True``);
- the connector's own gauges are ``taktora.connector.*``: outbound queued, in flight,
  unacknowledged inbound, each reader's queue depth (with ``taktora.reader.name``:
  two readers may share a filter), and ``connected`` (1 with the server in use as
  ``server.address``/``server.port``, 0 while not connected);
- traces: a ``publish <topic>`` span (PRODUCER) from ``send`` to the delivery's end,
  and a ``receive <filter>`` span (CONSUMER) for each message a wrapped reader hands
  out. MQTT 3.1.1 has no user properties, so no trace context travels with a
  message (it would change the payload): the spans are not linked across processes.
  Propagation waits for MQTT 5.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from returns.result import Failure, Result, Success

from taktora_connector.adapters.mqtt.metrics import ConnectorMetrics
from taktora_connector.domain import ConfigurationError, ConnectorError, RecvEnvelope

T = TypeVar("T")
SYSTEM = "mqtt"

#: meter provider -> its instruments: one set per provider, which reads every connector
#: instrumented on it (an SDK keeps the first instrument of a name and ignores the
#: callbacks of a second one).
_REGISTERED: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
#: The instruments made on the global provider (``meter_provider=None``), through
#: OpenTelemetry's global ``get_meter``: made before the SDK is set, they follow it there.
_GLOBAL: list[_Instruments] = []
_REGISTERING = threading.Lock()
log = logging.getLogger("taktora_connector.otel")


def series_attributes(connector: Any) -> dict[str, Any]:
    """What the counters and gauges of ``connector`` carry: one series per connector for
    its life (no server: a lifetime count does not move when the server does)."""
    return {"messaging.system": SYSTEM, "messaging.client.id": connector.options.client_id}


def server_attributes(url: str | None) -> dict[str, Any]:
    """``server.address``/``server.port`` of ``url`` (``mqtt[s]://host:port``); none for None."""
    if url is None:
        return {}
    host, _, port = url.split("://", 1)[1].rpartition(":")
    return {"server.address": host.strip("[]"), "server.port": int(port)}


def operation_attributes(connector: Any) -> dict[str, Any]:
    """What one operation of ``connector`` carries now: the server connected now, if
    one is (a publish names the server connected when it completed, see ``_published``)."""
    return {**series_attributes(connector), **server_attributes(connector.server)}


def destination(subscription: str) -> dict[str, Any]:
    """A reader's filter as the conventions name it: a shared subscription
    ``$share/group/filter`` is the filter, with ``messaging.consumer.group.name``."""
    if subscription.startswith("$share/"):
        _, group, rest = subscription.split("/", 2)
        return {"messaging.destination.name": rest, "messaging.consumer.group.name": group}
    return {"messaging.destination.name": subscription}


class _Instruments:
    """The observable instruments and the duration histogram on one meter provider,
    observing every connector instrumented on it (each its own series)."""

    def __init__(self, meter: Any) -> None:
        self.connectors: weakref.WeakSet[Any] = weakref.WeakSet()
        self._broken: set[int] = set()  # connectors whose metrics() raised (logged once)
        meter.create_observable_counter(
            "messaging.client.sent.messages",
            callbacks=[self._sent],
            unit="{message}",
            description="Messages the connector published to the broker",
        )
        meter.create_observable_counter(
            "messaging.client.consumed.messages",
            callbacks=[self._consumed],
            unit="{message}",
            description="Messages the readers handed to the application",
        )
        self.duration: Histogram = meter.create_histogram(
            "messaging.client.operation.duration",
            unit="s",
            description="From send to the delivery's end (QoS 1: PUBACK; QoS 0: written)",
        )
        for name, read, description in (
            ("taktora.connector.outbound.queued", _outbound, "Messages waiting in the bridge"),
            ("taktora.connector.inflight", _inflight, "QoS 1 messages waiting for PUBACK"),
            (
                "taktora.connector.inbound.unacknowledged",
                _unacknowledged,
                "Persistent session: received and not yet acknowledged",
            ),
        ):
            meter.create_observable_gauge(
                name, callbacks=[self._gauge(read)], unit="{message}", description=description
            )
        meter.create_observable_gauge(
            "taktora.connector.reader.queued",
            callbacks=[self._reader_queues],
            unit="{message}",
            description="Messages waiting in each reader's queue",
        )
        meter.create_observable_gauge(
            "taktora.connector.connected",
            callbacks=[self._connected],
            unit="1",
            description="1 while connected, with the server in use; 0 while not",
        )

    def _snapshots(self) -> Iterator[tuple[Any, ConnectorMetrics, dict[str, Any]]]:
        for connector in list(self.connectors):
            try:
                snapshot: ConnectorMetrics = connector.metrics()
                base = series_attributes(connector)
                if snapshot.closed:  # closed on purpose: its series end with it
                    continue
            except Exception as err:  # one broken object must not hide the others
                if id(connector) not in self._broken:
                    self._broken.add(id(connector))
                    log.warning("metrics of %r not read: %r", connector, err)
                continue
            yield connector, snapshot, base

    def _sent(self, options: CallbackOptions) -> Iterable[Observation]:
        for _, snapshot, base in self._snapshots():
            attributes = {**base, "messaging.operation.name": "publish"}
            attributes["messaging.operation.type"] = "send"
            yield Observation(snapshot.messages_sent, attributes)

    def _consumed(self, options: CallbackOptions) -> Iterable[Observation]:
        for _, snapshot, base in self._snapshots():
            attributes = {**base, "messaging.operation.name": "receive"}
            attributes["messaging.operation.type"] = "receive"
            yield Observation(snapshot.messages_consumed, attributes)

    def _gauge(self, read: Callable[[ConnectorMetrics], int]) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            for _, snapshot, base in self._snapshots():
                yield Observation(read(snapshot), base)

        return callback

    def _reader_queues(self, options: CallbackOptions) -> Iterable[Observation]:
        for _, snapshot, base in self._snapshots():
            for reader in snapshot.readers:
                attributes = {
                    **base,
                    **destination(reader.topic_filter),
                    "taktora.reader.name": reader.name,  # two readers may share a filter
                }
                yield Observation(reader.queued, attributes)

    def _connected(self, options: CallbackOptions) -> Iterable[Observation]:
        for _, snapshot, base in self._snapshots():
            if snapshot.server is None:
                yield Observation(0, base)
            else:
                yield Observation(1, {**base, **server_attributes(snapshot.server)})


def _instruments_for(meter_provider: MeterProvider | None) -> _Instruments:
    """The one set of instruments of ``meter_provider`` (None: the global one)."""
    current = metrics.get_meter_provider()
    is_global = meter_provider is None or meter_provider is current
    with _REGISTERING:
        if is_global and _GLOBAL:
            return _GLOBAL[0]
        provider = current if meter_provider is None else meter_provider
        found = _REGISTERED.get(provider)
        if found is None:
            meter = (
                metrics.get_meter("taktora_connector")  # follows a provider set later
                if meter_provider is None
                else meter_provider.get_meter("taktora_connector")
            )
            found = _REGISTERED[provider] = _Instruments(meter)
        if is_global:
            _GLOBAL.append(found)
        return found


def _flaw(connector: Any) -> str | None:
    """What makes ``connector`` no connector ``instrument`` can read, or None."""
    for name in ("metrics", "options", "server", "create_writer", "create_reader"):
        if not hasattr(connector, name):
            return f"it has no {name!r}"
    if not callable(connector.metrics):
        return "its metrics is not callable"
    if not isinstance(getattr(connector.options, "client_id", None), str):
        return "its options have no client_id"
    return None


class Telemetry:
    """The instruments and the tracer of one connector (``instrument``)."""

    def __init__(
        self,
        connector: Any,
        instruments: _Instruments,
        tracer: Tracer,
        *,
        per_message_topic: bool = False,
    ) -> None:
        self._connector = connector
        self._per_message_topic = per_message_topic
        self._instruments = instruments
        self._tracer = tracer

    def attributes(self, destination: str, operation: str) -> dict[str, Any]:
        """The attributes of one operation now: the server in use, this destination."""
        kind = "send" if operation == "publish" else "receive"
        return {
            **operation_attributes(self._connector),
            "messaging.destination.name": destination,
            "messaging.operation.name": operation,
            "messaging.operation.type": kind,
        }

    # -- handles ---------------------------------------------------------------------

    def writer(self, writer: Any) -> Result[Any, ConnectorError]:
        """``writer`` (or ``create_writer``'s result) with publish spans and durations:
        a thread or an asyncio writer; a ``Failure`` passes through unchanged."""
        if isinstance(writer, Failure):
            return writer
        if isinstance(writer, Success):
            writer = writer.unwrap()
        if isinstance(writer, TracedWriter | AsyncTracedWriter):
            return Success(writer)  # measured once: wrapping again would count it twice
        flaw = _handle_flaw(writer, "send")
        if flaw is not None:
            return Failure(ConfigurationError(f"telemetry.writer() needs a ChannelWriter: {flaw}"))
        if inspect.iscoroutinefunction(writer.send):
            return Success(AsyncTracedWriter(writer, self))
        return Success(TracedWriter(writer, self))

    def reader(self, reader: Any) -> Result[Any, ConnectorError]:
        """``reader`` (or ``create_reader``'s result) with a receive span per message: a
        thread or an asyncio reader; a ``Failure`` passes through unchanged."""
        if isinstance(reader, Failure):
            return reader
        if isinstance(reader, Success):
            reader = reader.unwrap()
        if isinstance(reader, TracedReader):
            return Success(reader)  # one span per message, not one per wrapping
        flaw = _handle_flaw(reader, "recv")
        if flaw is not None:
            return Failure(ConfigurationError(f"telemetry.reader() needs a ChannelReader: {flaw}"))
        if inspect.iscoroutinefunction(reader.recv):
            return Success(AsyncTracedReader(reader, self))
        return Success(TracedReader(reader, self))

    # -- measuring -------------------------------------------------------------------

    def _publish(self, topic: str) -> tuple[Span, dict[str, Any], float]:
        attributes = self.attributes(topic, "publish")
        span = self._tracer.start_span(
            f"publish {topic}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        return span, attributes, time.perf_counter()

    def _published(
        self, outcome: Any, span: Span, attributes: dict[str, Any], started: float
    ) -> None:
        """Measure one send's outcome: a refusal at once, a delivery when it ends."""
        if not isinstance(outcome, Success):
            _error(span, outcome.failure())
            span.end()
            return
        delivery = outcome.unwrap().delivery
        ended = False
        duration = self._instruments.duration

        def done() -> None:  # on the sidecar: once (on_done may call twice)
            nonlocal ended
            if ended:
                return
            ended = True
            result = delivery.result
            measured = dict(attributes)
            # The server it completed on (a PUBACK's); else the one it was sent on.
            server = server_attributes(self._connector.server)
            if server:
                measured.update(server)
                span.set_attributes(server)
            if result is not None and not isinstance(result, Success):
                measured["error.type"] = _error(span, result.failure())
            duration.record(time.perf_counter() - started, measured)
            span.end()

        delivery.on_done(done)

    def _received(self, envelope: RecvEnvelope[Any, Any], subscribed: dict[str, Any]) -> None:
        attributes = self.attributes(subscribed["messaging.destination.name"], "receive")
        attributes.update(subscribed)
        if self._per_message_topic:
            attributes["messaging.destination.name"] = envelope.routing.topic
        attributes["messaging.message.body.size"] = len(envelope.payload)
        name = attributes["messaging.destination.name"]
        self._tracer.start_span(
            f"receive {name}", kind=SpanKind.CONSUMER, attributes=attributes
        ).end()


def _error(span: Span, error: ConnectorError) -> str:
    name = type(error).__name__
    span.set_status(Status(StatusCode.ERROR, str(error)))
    span.set_attribute("error.type", name)
    return name


class TracedWriter(Generic[T]):
    """A ``ChannelWriter`` that measures each delivery (the wrapped writer does the rest)."""

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._topic = str(inner.descriptor.routing.topic)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send(self, value: T, *, correlation_id: bytes | None = None) -> Any:
        span, attributes, started = self._telemetry._publish(self._topic)
        outcome = self._inner.send(value, correlation_id=correlation_id)
        self._telemetry._published(outcome, span, attributes, started)
        return outcome


class AsyncTracedWriter(Generic[T]):
    """The asyncio writer's ``send`` and ``send_nowait``, measured as ``TracedWriter``'s."""

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._topic = str(inner.descriptor.routing.topic)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def send(
        self, value: T, *, timeout: float | None = None, correlation_id: bytes | None = None
    ) -> Any:
        span, attributes, started = self._telemetry._publish(self._topic)
        try:
            outcome = await self._inner.send(value, timeout=timeout, correlation_id=correlation_id)
        except BaseException as err:  # cancelled while it waited for room: nothing was sent
            span.set_status(Status(StatusCode.ERROR, repr(err)))
            span.set_attribute("error.type", type(err).__name__)
            span.end()
            raise
        self._telemetry._published(outcome, span, attributes, started)
        return outcome

    def send_nowait(self, value: T, *, correlation_id: bytes | None = None) -> Any:
        span, attributes, started = self._telemetry._publish(self._topic)
        outcome = self._inner.send_nowait(value, correlation_id=correlation_id)
        self._telemetry._published(outcome, span, attributes, started)
        return outcome


class TracedReader(Generic[T]):
    """A ``ChannelReader`` that records a receive span for each message it hands out."""

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry
        # as the reader's gauge names it (a shared subscription: filter and group)
        self._filter = destination(inner.descriptor.routing.broker_filter())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _seen(self, got: Result[Any, ConnectorError]) -> Result[Any, ConnectorError]:
        if isinstance(got, Success) and got.unwrap() is not None:
            self._telemetry._received(got.unwrap(), self._filter)
        return got

    def recv(self, timeout: float | None = None) -> Any:
        return self._seen(self._inner.recv(timeout))

    def try_recv(self) -> Any:
        return self._seen(self._inner.try_recv())

    def __iter__(self) -> Iterator[Any]:
        for envelope in self._inner:
            self._telemetry._received(envelope, self._filter)
            yield envelope


class AsyncTracedReader(TracedReader[T]):
    """The asyncio reader: ``await recv``, ``try_recv`` and ``async for``, each message
    with its receive span."""

    async def recv(self, timeout: float | None = None) -> Any:
        return self._seen(await self._inner.recv(timeout))

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Any]:
        async for envelope in self._inner:
            self._telemetry._received(envelope, self._filter)
            yield envelope


def _outbound(snapshot: ConnectorMetrics) -> int:
    return snapshot.outbound_queued


def _inflight(snapshot: ConnectorMetrics) -> int:
    return snapshot.inflight


def _unacknowledged(snapshot: ConnectorMetrics) -> int:
    return snapshot.unacknowledged_inbound


def _handle_flaw(handle: Any, method: str) -> str | None:
    routing = getattr(getattr(handle, "descriptor", None), "routing", None)
    if routing is None:
        return f"got {type(handle).__name__}, which has no descriptor with a routing"
    if not callable(getattr(handle, method, None)):
        return f"got {type(handle).__name__}, which has no {method}()"
    return None


def instrument(
    connector: Any,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    per_message_topic: bool = False,
) -> Result[Telemetry, ConnectorError]:
    """Register ``connector``'s instruments (on the global providers unless given): one
    set per meter provider, which reads every connector instrumented on it, so a second
    call for the same connector and provider counts nothing twice. Anything that is no
    connector or no provider is a ``Failure(ConfigurationError)``, and nothing is
    registered then."""
    flaw = _flaw(connector)
    if flaw is None:
        # The asyncio connector counts through the thread connector it drives: the two
        # are one connector, registered once whichever of them is given.
        connector = getattr(connector, "threaded", connector)
    if flaw is not None:
        return Failure(
            ConfigurationError(
                f"instrument() needs a connector (MqttConnector, AsyncMqttConnector): got "
                f"{type(connector).__name__}, and {flaw}"
            )
        )
    if meter_provider is not None and not callable(getattr(meter_provider, "get_meter", None)):
        return Failure(
            ConfigurationError(
                f"meter_provider must be an OpenTelemetry MeterProvider (with get_meter), "
                f"got {type(meter_provider).__name__}"
            )
        )
    if tracer_provider is not None and not callable(getattr(tracer_provider, "get_tracer", None)):
        return Failure(
            ConfigurationError(
                f"tracer_provider must be an OpenTelemetry TracerProvider (with get_tracer), "
                f"got {type(tracer_provider).__name__}"
            )
        )
    try:
        instruments = _instruments_for(meter_provider)
        tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("taktora_connector")
    except Exception as err:  # a provider that breaks its contract
        return Failure(ConfigurationError(f"the OpenTelemetry providers refused: {err!r}"))
    try:
        instruments.connectors.add(connector)  # a set: twice is once
    except TypeError as err:  # not weakly referable: it would outlive its owner here
        return Failure(ConfigurationError(f"instrument() cannot follow {connector!r}: {err}"))
    return Success(Telemetry(connector, instruments, tracer, per_message_topic=per_message_topic))
