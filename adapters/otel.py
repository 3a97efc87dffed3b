"""OpenTelemetry for a connector: instruments over ``connector.metrics()``, publish
durations, and send and receive spans. The ``otel`` extra (``opentelemetry-api`` only).

    from taktora_connector.adapters.otel import instrument

    telemetry = instrument(connector)                   # the global providers
    writer = telemetry.writer(connector.create_writer(descriptor).unwrap())
    reader = telemetry.reader(connector.create_reader(descriptor).unwrap())

Rules of this module:
- nothing here is imported by the connector: without ``instrument`` no OpenTelemetry
  module is loaded and nothing is measured;
- names and attributes follow the OpenTelemetry messaging semantic conventions:
  ``messaging.system = "mqtt"``, ``messaging.client.sent.messages`` and
  ``messaging.client.consumed.messages`` (counters read from the snapshot when the
  SDK collects), ``messaging.client.operation.duration`` (seconds from ``send`` to
  the delivery's completion: the PUBACK at QoS 1, the write at QoS 0), with
  ``messaging.operation.name``/``messaging.operation.type``, ``server.address`` and
  ``server.port``, and ``error.type`` for a failed delivery;
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

import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
from returns.result import Result, Success

from taktora_connector.adapters.mqtt.metrics import ConnectorMetrics
from taktora_connector.domain import ConnectorError, RecvEnvelope, SendOutcome

T = TypeVar("T")
SYSTEM = "mqtt"


class Telemetry:
    """The instruments of one connector (``instrument``)."""

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
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("taktora_connector")
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(
            "taktora_connector"
        )
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
            description="Messages the connector received from the broker",
        )
        self._duration = meter.create_histogram(
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

    # -- attributes ------------------------------------------------------------------

    def _base(self, snapshot: ConnectorMetrics | None = None) -> dict[str, Any]:
        options = self._connector.options
        server = snapshot.server if snapshot is not None else None
        host, port = options.host, options.port
        if server is not None:  # the server in use, with several
            hostport = server.split("://", 1)[1]
            host, _, text = hostport.rpartition(":")
            host, port = host.strip("[]"), int(text)
        return {"messaging.system": SYSTEM, "server.address": host, "server.port": port}

    def _sent(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._connector.metrics()
        attributes = {**self._base(snapshot), "messaging.operation.name": "publish"}
        attributes["messaging.operation.type"] = "send"
        yield Observation(snapshot.messages_sent, attributes)

    def _consumed(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._connector.metrics()
        attributes = {**self._base(snapshot), "messaging.operation.name": "receive"}
        attributes["messaging.operation.type"] = "receive"
        yield Observation(snapshot.messages_received, attributes)

    def _gauge(self, read: Any) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            snapshot = self._connector.metrics()
            yield Observation(read(snapshot), self._base(snapshot))

        return callback

    def _reader_queues(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._connector.metrics()
        base = self._base(snapshot)
        for reader in snapshot.readers:
            yield Observation(
                reader.queued, {**base, "messaging.destination.name": reader.topic_filter}
            )

    # -- handles ---------------------------------------------------------------------

    def writer(self, writer: Any) -> TracedWriter[Any]:
        """``writer`` with publish spans and durations."""
        return TracedWriter(writer, self)

    def reader(self, reader: Any) -> TracedReader[Any]:
        """``reader`` with a receive span per message."""
        return TracedReader(reader, self)


class TracedWriter(Generic[T]):
    """A ``ChannelWriter`` that measures each delivery (the wrapped writer does the rest)."""

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._topic = str(inner.descriptor.routing.topic)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send(
        self, value: T, *, correlation_id: bytes | None = None
    ) -> Result[SendOutcome, ConnectorError]:
        telemetry = self._telemetry
        attributes = {
            **telemetry._base(),
            "messaging.destination.name": self._topic,
            "messaging.operation.name": "publish",
            "messaging.operation.type": "send",
        }
        span = telemetry._tracer.start_span(
            f"publish {self._topic}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        started = time.perf_counter()
        outcome = self._inner.send(value, correlation_id=correlation_id)
        if not isinstance(outcome, Success):
            error = outcome.failure()
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.set_attribute("error.type", type(error).__name__)
            span.end()
            return outcome  # type: ignore[no-any-return]
        delivery = outcome.unwrap().delivery
        ended = False

        def done() -> None:  # on the sidecar: once (on_done may call twice)
            nonlocal ended
            if ended:
                return
            ended = True
            result = delivery.result
            measured = dict(attributes)
            if result is not None and not isinstance(result, Success):
                failure = result.failure()
                measured["error.type"] = type(failure).__name__
                span.set_status(Status(StatusCode.ERROR, str(failure)))
            telemetry._duration.record(time.perf_counter() - started, measured)
            span.end()

        delivery.on_done(done)
        return outcome


class TracedReader(Generic[T]):
    """A ``ChannelReader`` that records a receive span for each message it hands out."""

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._filter = inner.descriptor.routing.subscription_filter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _span(self, envelope: RecvEnvelope[Any, Any]) -> None:
        telemetry = self._telemetry
        destination = envelope.routing.topic if telemetry._per_message_topic else self._filter
        attributes = {
            **telemetry._base(),
            "messaging.destination.name": destination,
            "messaging.operation.name": "receive",
            "messaging.operation.type": "receive",
            "messaging.message.body.size": len(envelope.payload),
        }
        telemetry._tracer.start_span(
            f"receive {destination}", kind=SpanKind.CONSUMER, attributes=attributes
        ).end()

    def recv(self, timeout: float | None = None) -> Any:
        got = self._inner.recv(timeout)
        if isinstance(got, Success) and got.unwrap() is not None:
            self._span(got.unwrap())
        return got

    def try_recv(self) -> Any:
        got = self._inner.try_recv()
        if isinstance(got, Success) and got.unwrap() is not None:
            self._span(got.unwrap())
        return got

    def __iter__(self) -> Iterator[Any]:
        for envelope in self._inner:
            self._span(envelope)
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
    """Register ``connector``'s instruments (on the global providers unless given)."""
    return Telemetry(
        connector, meter_provider, tracer_provider, per_message_topic=per_message_topic
    )
