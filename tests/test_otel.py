"""The ``otel`` extra, read through the OpenTelemetry SDK's in-memory reader and exporter."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from taktora_connector.adapters.aio import AsyncMqttConnector
from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttConnectorOptions, MqttQos, MqttRouting
from taktora_connector.adapters.otel import instrument
from taktora_connector.domain import ChannelDescriptor, ConfigurationError

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
    telemetry = instrument(conn, MeterProvider(metric_readers=[metric_reader]), tracing).unwrap()
    topic = f"otel/{unique_id()}"
    routing = MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE)
    reader = telemetry.reader(conn.create_reader(ChannelDescriptor("in", routing))).unwrap()
    writer = telemetry.writer(conn.create_writer(ChannelDescriptor("out", routing))).unwrap()
    for n in range(5):
        writer.send(b"%d" % n).unwrap().delivery.wait(5).unwrap()
    for _ in range(5):
        assert reader.recv(5).unwrap() is not None
    wait_until(lambda: conn.metrics().messages_received == 5, 10, "5 received")

    found = points(metric_reader)
    (sent,) = found["messaging.client.sent.messages"]
    assert sent.value == 5
    assert dict(sent.attributes) == {  # one series for the connector's life: no server
        "messaging.system": "mqtt",
        "messaging.client.id": conn.options.client_id,
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
    }
    (connected,) = found["taktora.connector.connected"]
    assert connected.value == 1
    assert (connected.attributes["server.address"], connected.attributes["server.port"]) == (
        "127.0.0.1",
        broker.port,
    )
    (consumed,) = found["messaging.client.consumed.messages"]
    assert consumed.value == 5 and consumed.attributes["messaging.operation.type"] == "receive"
    (duration,) = found["messaging.client.operation.duration"]
    assert duration.count == 5 and 0 < duration.sum < 5
    assert duration.attributes["messaging.destination.name"] == topic  # the writer's topic
    assert "error.type" not in duration.attributes
    (queued,) = found["taktora.connector.reader.queued"]
    assert queued.value == 0 and queued.attributes["messaging.destination.name"] == topic
    assert queued.attributes["taktora.reader.name"] == "in"
    assert duration.attributes["server.port"] == broker.port  # an operation: where it went
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
    telemetry = instrument(
        conn, MeterProvider(metric_readers=[InMemoryMetricReader()]), tracing
    ).unwrap()
    routing = MqttRouting(topic="otel/x")
    writer = telemetry.writer(
        conn.create_writer(ChannelDescriptor("out", routing, max_payload_size=2))
    ).unwrap()
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


def telemetry_of(conn: Any) -> tuple[Any, InMemoryMetricReader, InMemorySpanExporter]:
    metric_reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    meters = MeterProvider(metric_readers=[metric_reader])
    return instrument(conn, meters, tracing).unwrap(), metric_reader, exporter


def test_consumed_is_what_the_application_took_not_what_was_dropped(
    brokers: Any, connect: ConnectFn
) -> None:
    conn = connect(brokers("amqtt").port, codec=BytesCodec(), inbound_capacity=2)
    telemetry, metric_reader, _ = telemetry_of(conn)
    routing = MqttRouting(topic=f"otel/{unique_id()}", qos=MqttQos.AT_LEAST_ONCE)
    reader = telemetry.reader(conn.create_reader(ChannelDescriptor("in", routing))).unwrap()
    writer = conn.create_writer(ChannelDescriptor("out", routing)).unwrap()
    for n in range(5):
        writer.send(b"%d" % n).unwrap().delivery.wait(5).unwrap()
    wait_until(lambda: conn.metrics().messages_received == 5, 10, "5 received")
    assert reader.recv(1).unwrap() is not None  # 2 queued, 3 dropped, 1 taken
    (consumed,) = points(metric_reader)["messaging.client.consumed.messages"]
    assert consumed.value == 1 == conn.metrics().messages_consumed


def test_two_connectors_on_one_provider_stay_apart_and_a_second_instrument_counts_once(
    brokers: Any, connect: ConnectFn
) -> None:
    port = brokers("amqtt").port
    first, second = connect(port, codec=BytesCodec()), connect(port, codec=BytesCodec())
    metric_reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[metric_reader])
    instrument(first, meters)
    again = instrument(first, meters).unwrap()  # the same connector and provider: shared, not twice
    instrument(second, meters)
    routing = MqttRouting(topic=f"otel/{unique_id()}", qos=MqttQos.AT_LEAST_ONCE)
    writer = again.writer(first.create_writer(ChannelDescriptor("out", routing))).unwrap()
    for n in range(3):
        writer.send(b"%d" % n).unwrap().delivery.wait(5).unwrap()
    found = points(metric_reader)
    by_client = {
        p.attributes["messaging.client.id"]: p.value
        for p in found["messaging.client.sent.messages"]
    }
    assert by_client == {first.options.client_id: 3, second.options.client_id: 0}
    (duration,) = found["messaging.client.operation.duration"]
    assert duration.count == 3  # one record per send, not one per instrument() call


def test_attributes_name_the_server_in_use(brokers: Any, connect: ConnectFn) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = int(sock.getsockname()[1])
    port = brokers("amqtt").port
    conn = connect(0, codec=BytesCodec(), servers=[("127.0.0.1", dead), ("127.0.0.1", port)])
    telemetry, metric_reader, exporter = telemetry_of(conn)
    routing = MqttRouting(topic=f"otel/{unique_id()}")
    writer = telemetry.writer(conn.create_writer(ChannelDescriptor("out", routing))).unwrap()
    writer.send(b"x").unwrap().delivery.wait(5).unwrap()
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["server.port"] == port
    (duration,) = points(metric_reader)["messaging.client.operation.duration"]
    assert duration.attributes["server.port"] == port
    (connected,) = points(metric_reader)["taktora.connector.connected"]
    assert connected.attributes["server.port"] == port


def test_a_failed_delivery_is_an_error_span_and_an_error_duration(connect: ConnectFn) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = int(sock.getsockname()[1])
    conn = connect(dead, codec=BytesCodec(), wait_up=False)
    telemetry, metric_reader, exporter = telemetry_of(conn)
    routing = MqttRouting(topic=f"otel/{unique_id()}")
    writer = telemetry.writer(conn.create_writer(ChannelDescriptor("out", routing))).unwrap()
    delivery = writer.send(b"x").unwrap().delivery  # accepted while connecting
    conn.close(timeout=0)
    assert delivery.wait(5).failure() is not None
    assert conn.metrics().deliveries_failed == 1
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["error.type"] == "ConnectorDown"
    (duration,) = points(metric_reader)["messaging.client.operation.duration"]
    assert duration.attributes["error.type"] == "ConnectorDown"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_asyncio_connector_is_instrumented_too(brokers: Any) -> None:
    port = brokers("amqtt").port
    options = MqttConnectorOptions(host="127.0.0.1", port=port, client_id=unique_id())
    async with AsyncMqttConnector[bytes](options, BytesCodec()) as conn:
        telemetry, metric_reader, exporter = telemetry_of(conn)
        routing = MqttRouting(topic=f"otel/{unique_id()}", qos=MqttQos.AT_LEAST_ONCE)
        made = await conn.create_reader(ChannelDescriptor("in", routing))
        reader = telemetry.reader(made).unwrap()
        writer = telemetry.writer(await conn.create_writer(ChannelDescriptor("out", routing)))
        writer = writer.unwrap()
        for n in range(3):
            sent = await writer.send(b"%d" % n, timeout=5)
            assert (await sent.unwrap().delivery).unwrap() is None
        writer.send_nowait(b"3").unwrap()
        await writer.flush(5)
        got = [(await reader.recv(5)).unwrap() for _ in range(2)]
        async for envelope in reader:
            got.append(envelope)
            if len(got) == 4:
                break
        assert [e.payload for e in got] == [b"0", b"1", b"2", b"3"]
        kinds = [s.kind for s in exporter.get_finished_spans()]
        assert kinds.count(SpanKind.PRODUCER) == 4 and kinds.count(SpanKind.CONSUMER) == 4
        (consumed,) = points(metric_reader)["messaging.client.consumed.messages"]
        assert consumed.value == 4
        # the asyncio connector and its thread view are one connector: counted once
        meters = MeterProvider(metric_readers=[metric_reader2 := InMemoryMetricReader()])
        instrument(conn, meters).unwrap()
        instrument(conn.threaded, meters).unwrap()
        (sent,) = points(metric_reader2)["messaging.client.sent.messages"]
        assert sent.value == 4
        # wrapping a wrapped handle measures it once
        assert telemetry.writer(writer).unwrap() is writer
        assert telemetry.reader(reader).unwrap() is reader


def test_bad_input_is_a_configuration_error_and_registers_nothing(
    brokers: Any, connect: ConnectFn
) -> None:
    conn = connect(brokers("amqtt").port, codec=BytesCodec())
    writer = conn.create_writer(ChannelDescriptor("out", MqttRouting(topic="otel/x"))).unwrap()
    metric_reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[metric_reader])
    for wrong, said in (
        (writer, "got MqttWriter, and it has no 'metrics'"),
        (None, "got NoneType"),
        ("mqtt://x", "got str"),
    ):
        failure = instrument(wrong, meters).failure()
        assert isinstance(failure, ConfigurationError) and said in str(failure), failure
    failure = instrument(conn, "nope").failure()  # type: ignore[arg-type]
    assert isinstance(failure, ConfigurationError) and "MeterProvider" in str(failure)
    failure = instrument(conn, meters, meters).failure()  # type: ignore[arg-type]
    assert isinstance(failure, ConfigurationError) and "TracerProvider" in str(failure)
    assert metric_reader.get_metrics_data() is None  # nothing registered by any of them
    telemetry = instrument(conn, meters).unwrap()
    failure = telemetry.writer(conn).failure()
    assert isinstance(failure, ConfigurationError) and "needs a ChannelWriter" in str(failure)
    refused = conn.create_writer(ChannelDescriptor("out", MqttRouting(topic="otel/x")))
    assert telemetry.writer(refused) is refused  # a Failure passes through


def test_a_connector_whose_metrics_break_does_not_hide_the_others(
    brokers: Any, connect: ConnectFn
) -> None:
    port = brokers("amqtt").port
    good, bad = connect(port), connect(port)
    metric_reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[metric_reader])
    instrument(good, meters).unwrap()
    instrument(bad, meters).unwrap()

    def broken() -> Any:
        raise RuntimeError("broken on purpose")

    bad.metrics = broken  # type: ignore[method-assign]
    for _ in range(3):  # every collection: the good one's series, every time
        ids = [
            p.attributes["messaging.client.id"]
            for p in points(metric_reader)["messaging.client.sent.messages"]
        ]
        assert ids == [good.options.client_id]


def test_connectors_instrumented_before_the_sdk_is_set_follow_it() -> None:
    code = """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.adapters.otel import instrument
early = MqttConnector(MqttConnectorOptions(client_id="early"))
late = MqttConnector(MqttConnectorOptions(client_id="late"))
instrument(early).unwrap()               # the global provider is still the proxy
reader = InMemoryMetricReader()
sdk = MeterProvider(metric_readers=[reader])
metrics.set_meter_provider(sdk)
instrument(late).unwrap()                # now the SDK
instrument(early, sdk).unwrap()          # the same provider, given: counted once
data = reader.get_metrics_data()
names = {}
for r in data.resource_metrics:
    for sc in r.scope_metrics:
        for m in sc.metrics:
            names[m.name] = sorted(p.attributes["messaging.client.id"] for p in m.data.data_points)
print(names["messaging.client.sent.messages"], names["taktora.connector.inflight"])
early.close(); late.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "['early', 'late'] ['early', 'late']", done.stderr


@pytest.mark.anyio
async def test_a_cancelled_asyncio_send_ends_its_span(brokers: Any) -> None:
    import asyncio

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = int(sock.getsockname()[1])
    options = MqttConnectorOptions(
        host="127.0.0.1", port=dead, client_id=unique_id(), outbound_capacity=1
    )
    async with AsyncMqttConnector[bytes](options, BytesCodec()) as conn:
        telemetry, _, exporter = telemetry_of(conn)
        made = await conn.create_writer(ChannelDescriptor("out", MqttRouting(topic="otel/c")))
        writer = telemetry.writer(made).unwrap()
        writer.send_nowait(b"fills the bridge").unwrap()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.send(b"waits for room"), 0.2)
        ended = [dict(s.attributes or {}) for s in exporter.get_finished_spans()]
        assert [a.get("error.type") for a in ended] == ["CancelledError"]


def test_shared_readers_name_filter_and_group_alike_and_closed_connectors_leave(
    brokers: Any, connect: ConnectFn
) -> None:
    conn = connect(brokers("mosquitto").port, codec=BytesCodec())
    telemetry, metric_reader, exporter = telemetry_of(conn)
    topic = f"otel/{unique_id()}"
    shared = MqttRouting(filter=topic, share_group="g")
    reader = telemetry.reader(conn.create_reader(ChannelDescriptor("in", shared))).unwrap()
    writer = conn.create_writer(ChannelDescriptor("out", MqttRouting(topic=topic))).unwrap()
    writer.send(b"x").unwrap().delivery.wait(5).unwrap()
    assert reader.recv(5).unwrap() is not None
    (span,) = exporter.get_finished_spans()
    (queued,) = points(metric_reader)["taktora.connector.reader.queued"]
    for attributes in (span.attributes, queued.attributes):
        assert attributes is not None
        assert attributes["messaging.destination.name"] == topic
        assert attributes["messaging.consumer.group.name"] == "g"
    conn.close(timeout=2)
    assert metric_reader.get_metrics_data() is None  # closed on purpose: no series left
