"""OpenTelemetry for a connector: instruments over ``connector.metrics()``, publish
durations, and send and receive spans. The ``otel`` extra (``opentelemetry-api`` only).

    from taktora_connector.adapters.otel import instrument

    telemetry = instrument(connector)                   # the global providers
    writer = telemetry.writer(connector.create_writer(descriptor).unwrap())
    reader = telemetry.reader(connector.create_reader(descriptor).unwrap())

Rules of this module:
- nothing here is imported by the connector: without ``instrument`` no OpenTelemetry
  module is loaded and nothing is measured;
- the thread API and the asyncio connector alike (``writer``/``reader`` wrap either
  kind of handle); ``instrument`` twice on one connector and meter provider registers
  its instruments once (the second call shares them), so nothing is counted twice;
- names and attributes follow the OpenTelemetry messaging semantic conventions:
  ``messaging.system = "mqtt"``, ``messaging.client.sent.messages`` and
  ``messaging.client.consumed.messages`` (counters read from the snapshot when the
  SDK collects), ``messaging.client.operation.duration`` (seconds from ``send`` to
  the delivery's completion: the PUBACK at QoS 1, the write at QoS 0), with
  ``messaging.operation.name``/``messaging.operation.type``, ``messaging.client.id``
  (two connectors on one provider stay apart), ``server.address`` and ``server.port``
  of the server in use (with several servers, the one connected when measured; the
  first while none is), and ``error.type`` for a failed delivery (span and duration);
- consumed means handed to the application (``metrics().messages_consumed``): a
  message dropped by a full queue, unrouted or rejected is received, not consumed;
- the destination (``messaging.destination.name``) is the writer's topic or the
  reader's filter, so its values are bounded by the channels; a received message's
  own topic is used only when asked (``per_message_topic=True``);
- the connector's own gauges are ``taktora.connector.*`` (outbound queued, in flight,
  unacknowledged inbound, each reader's queue depth);
- traces: a ``publish <topic>`` span (PRODUCER) from ``send`` to the delivery's end,
  and a ``receive <filter>`` span (CONSUMER) for each message a wrapped reader hands
  out. MQTT 3.1.1 has no user properties, so no trace context travels with a
  message (it would change the payload): the spans are not linked across processes.
  Propagation waits for MQTT 5.
"""

from __future__ import annotations

import inspect
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from returns.result import Result, Success

from taktora_connector.adapters.mqtt.metrics import ConnectorMetrics
from taktora_connector.domain import ConnectorError, RecvEnvelope

T = TypeVar("T")
SYSTEM = "mqtt"

#: meter provider -> its instruments: one set per provider, which reads every connector
#: instrumented on it (an SDK keeps the first instrument of a name and ignores the
#: callbacks of a second one).
_REGISTERED: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_REGISTERING = threading.Lock()


def _server(url: str | None, options: Any) -> tuple[str, int]:
    """(host, port) of ``url`` (``mqtt[s]://host:port``), else the options' first server."""
    if url is None:
        return str(options.host), int(options.port)
    host, _, port = url.split("://", 1)[1].rpartition(":")
    return host.strip("[]"), int(port)


def base_attributes(connector: Any, server: str | None) -> dict[str, Any]:
    """What every measurement of ``connector`` carries (``server``: the one in use)."""
    options = connector.options
    host, port = _server(server, options)
    return {
        "messaging.system": SYSTEM,
        "messaging.client.id": options.client_id,
        "server.address": host,
        "server.port": port,
    }


class _Instruments:
    """The observable instruments and the duration histogram on one meter provider,
    observing every connector instrumented on it (each its own series)."""

    def __init__(self, meter_provider: MeterProvider) -> None:
        self.connectors: weakref.WeakSet[Any] = weakref.WeakSet()
        meter = meter_provider.get_meter("taktora_connector")
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

    def _snapshots(self) -> Iterator[tuple[ConnectorMetrics, dict[str, Any]]]:
        for connector in list(self.connectors):
            snapshot: ConnectorMetrics = connector.metrics()
            yield snapshot, base_attributes(connector, snapshot.server)

    def _sent(self, options: CallbackOptions) -> Iterable[Observation]:
        for snapshot, base in self._snapshots():
            attributes = {**base, "messaging.operation.name": "publish"}
            attributes["messaging.operation.type"] = "send"
            yield Observation(snapshot.messages_sent, attributes)

    def _consumed(self, options: CallbackOptions) -> Iterable[Observation]:
        for snapshot, base in self._snapshots():
            attributes = {**base, "messaging.operation.name": "receive"}
            attributes["messaging.operation.type"] = "receive"
            yield Observation(snapshot.messages_consumed, attributes)

    def _gauge(self, read: Callable[[ConnectorMetrics], int]) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            for snapshot, base in self._snapshots():
                yield Observation(read(snapshot), base)

        return callback

    def _reader_queues(self, options: CallbackOptions) -> Iterable[Observation]:
        for snapshot, base in self._snapshots():
            for reader in snapshot.readers:
                yield Observation(
                    reader.queued, {**base, "messaging.destination.name": reader.topic_filter}
                )


class Telemetry:
    """The instruments and the tracer of one connector (``instrument``)."""

    def __init__(
        self,
        connector: Any,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        *,
        per_message_topic: bool = False,
    ) -> None:
        self._connector = connector
        self._per_message_topic = per_message_topic
        provider = meter_provider or metrics.get_meter_provider()
        with _REGISTERING:  # one set of instruments per provider (module docstring)
            found = _REGISTERED.get(provider)
            if found is None:
                found = _REGISTERED[provider] = _Instruments(provider)
            found.connectors.add(connector)  # a set: twice is once
        self._instruments = found
        self._tracer: Tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(
            "taktora_connector"
        )

    def attributes(self, destination: str, operation: str) -> dict[str, Any]:
        """The attributes of one operation now: the server in use, this destination."""
        kind = "send" if operation == "publish" else "receive"
        return {
            **base_attributes(self._connector, self._connector.server),
            "messaging.destination.name": destination,
            "messaging.operation.name": operation,
            "messaging.operation.type": kind,
        }

    # -- handles ---------------------------------------------------------------------

    def writer(self, writer: Any) -> Any:
        """``writer`` with publish spans and durations (a thread or an asyncio writer)."""
        if inspect.iscoroutinefunction(getattr(writer, "send", None)):
            return AsyncTracedWriter(writer, self)
        return TracedWriter(writer, self)

    def reader(self, reader: Any) -> Any:
        """``reader`` with a receive span per message (a thread or an asyncio reader)."""
        if inspect.iscoroutinefunction(getattr(reader, "recv", None)):
            return AsyncTracedReader(reader, self)
        return TracedReader(reader, self)

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
            if result is not None and not isinstance(result, Success):
                measured["error.type"] = _error(span, result.failure())
            duration.record(time.perf_counter() - started, measured)
            span.end()

        delivery.on_done(done)

    def _received(self, envelope: RecvEnvelope[Any, Any], subscribed: str) -> None:
        destination = envelope.routing.topic if self._per_message_topic else subscribed
        attributes = self.attributes(destination, "receive")
        attributes["messaging.message.body.size"] = len(envelope.payload)
        self._tracer.start_span(
            f"receive {destination}", kind=SpanKind.CONSUMER, attributes=attributes
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
        outcome = await self._inner.send(value, timeout=timeout, correlation_id=correlation_id)
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
        self._filter = inner.descriptor.routing.subscription_filter()

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


def instrument(
    connector: Any,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    per_message_topic: bool = False,
) -> Telemetry:
    """Register ``connector``'s instruments (on the global providers unless given); a
    second call for the same meter provider shares the first's instruments."""
    return Telemetry(
        connector, meter_provider, tracer_provider, per_message_topic=per_message_topic
    )
