"""The ``otel`` extra, read through the OpenTelemetry SDK's in-memory reader and exporter."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.adapters.otel import instrument
from taktora_connector.domain import ChannelDescriptor

from .conftest import ConnectFn, unique_id, wait_until


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def test_instruments_follow_the_messaging_conventions(brokers: Any, connect: ConnectFn) -> None:
    broker = brokers("amqtt")
    conn = connect(broker.port, codec=BytesCodec())
    metric_reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = instrument(conn, MeterProvider(metric_readers=[metric_reader]), tracing)
    topic = f"otel/{unique_id()}"
    routing = MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE)
    reader = telemetry.reader(conn.create_reader(ChannelDescriptor("in", routing)).unwrap())
    writer = telemetry.writer(conn.create_writer(ChannelDescriptor("out", routing)).unwrap())
    for n in range(5):
        writer.send(b"%d" % n).unwrap().delivery.wait(5).unwrap()
    for _ in range(5):
        assert reader.recv(5).unwrap() is not None
    wait_until(lambda: conn.metrics().messages_received == 5, 10, "5 received")

    found = points(metric_reader)
    (sent,) = found["messaging.client.sent.messages"]
    assert sent.value == 5
    assert dict(sent.attributes) == {
        "messaging.system": "mqtt",
        "server.address": "127.0.0.1",
        "server.port": broker.port,
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
    }
    (consumed,) = found["messaging.client.consumed.messages"]
    assert consumed.value == 5 and consumed.attributes["messaging.operation.type"] == "receive"
    (duration,) = found["messaging.client.operation.duration"]
    assert duration.count == 5 and 0 < duration.sum < 5
    assert duration.attributes["messaging.destination.name"] == topic  # the writer's topic
    assert "error.type" not in duration.attributes
    (queued,) = found["taktora.connector.reader.queued"]
    assert queued.value == 0 and queued.attributes["messaging.destination.name"] == topic
    assert [p.value for p in found["taktora.connector.inflight"]] == [0]

    spans = exporter.get_finished_spans()
    published = [s for s in spans if s.kind is SpanKind.PRODUCER]
    received = [s for s in spans if s.kind is SpanKind.CONSUMER]
    assert [s.name for s in published] == [f"publish {topic}"] * 5
    assert [s.name for s in received] == [f"receive {topic}"] * 5
    assert all((s.end_time or 0) >= (s.start_time or 0) > 0 for s in published)


def test_a_refused_send_is_an_error_span(brokers: Any, connect: ConnectFn) -> None:
    conn = connect(brokers("amqtt").port, codec=BytesCodec())
    exporter = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = instrument(conn, MeterProvider(metric_readers=[InMemoryMetricReader()]), tracing)
    routing = MqttRouting(topic="otel/x")
    writer = telemetry.writer(
        conn.create_writer(ChannelDescriptor("out", routing, max_payload_size=2)).unwrap()
    )
    assert writer.send(b"too long").failure() is not None
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["error.type"] == "PayloadOverflow"


def test_nothing_of_opentelemetry_is_loaded_without_the_extra() -> None:
    code = (
        "import sys\n"
        "from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions\n"
        "c = MqttConnector(MqttConnectorOptions())\n"
        "c.metrics(); c.close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
