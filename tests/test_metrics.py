"""``connector.metrics()``: every counter and gauge says what happened, on a real broker."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from returns.result import Success

from taktora_connector.adapters.aio import AsyncMqttConnector
from taktora_connector.adapters.codecs import BytesCodec, JsonCodec
from taktora_connector.adapters.mqtt import (
    ConnectorMetrics,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
)
from taktora_connector.conformance.brokers import EmbeddedBroker
from taktora_connector.conformance.proxy import FaultProxy
from taktora_connector.domain import ChannelDescriptor, HealthKind

from .conftest import ConnectFn, unique_id, wait_until

QOS1 = MqttQos.AT_LEAST_ONCE


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_counters_and_gauges_follow_the_traffic(brokers: Any, connect: ConnectFn) -> None:
    topic = f"m/{unique_id()}"
    broker = brokers("amqtt")  # (a fixture: the connectors close before it does)
    conn = connect(
        0,
        codec=BytesCodec(),
        servers=[("127.0.0.1", dead_port()), ("127.0.0.1", broker.port)],
        inbound_capacity=4,
    )
    before = conn.metrics()
    assert isinstance(before, ConnectorMetrics)
    assert before.failed_attempts == 1  # the dead server first
    assert before.reconnects == 0 and before.messages_sent == 0
    assert before.server == f"mqtt://127.0.0.1:{broker.port}"
    assert before.health is HealthKind.UP and before.session == "clean"
    assert before.health_transitions == {HealthKind.UP: 1}
    routing = MqttRouting(topic=topic, qos=QOS1)
    reader = conn.create_reader(ChannelDescriptor("in", routing)).unwrap()
    writer = conn.create_writer(ChannelDescriptor("out", routing)).unwrap()
    for n in range(10):
        writer.send(b"%03d" % n).unwrap().delivery.wait(5).unwrap()
    wait_until(lambda: conn.metrics().messages_received == 10, 10, "10 received")
    now = conn.metrics()
    assert (now.messages_sent, now.messages_delivered) == (10, 10)
    # Every byte written: CONNECT, SUBSCRIBE, 10 PUBLISHes and the 10 PUBACKs of what
    # came back (a clean session acknowledges what it drops too).
    connect_size = 2 + 10 + 2 + len(conn.options.client_id)
    subscribe_size = 2 + 2 + 2 + len(topic) + 1
    publish_size = 2 + 2 + len(topic) + 2 + 3  # header, topic, id, payload
    assert now.bytes_sent == connect_size + subscribe_size + 10 * publish_size + 10 * 4
    # Every byte read: CONNACK, SUBACK, 10 PUBACKs and the 10 PUBLISHes back.
    assert now.bytes_received == 4 + 5 + 10 * 4 + 10 * publish_size
    assert now.client_id == conn.options.client_id
    assert now.deliveries_failed == 0 and now.sends_refused == 0
    assert now.messages_consumed == 0  # received is not consumed: nothing taken yet
    assert now.last_error is not None and str(before.server) not in now.last_error
    assert now.health_reason == "dropped 1 inbound frames"  # the threshold was reached
    assert now.inflight == 0 and now.outbound_queued == 0
    # four fit the reader's queue, six were dropped
    assert now.dropped_inbound == 6 == reader.dropped
    (shown,) = now.readers
    assert (shown.name, shown.topic_filter, shown.queued, shown.dropped) == ("in", topic, 4, 6)
    assert now.health_transitions[HealthKind.DEGRADED] == 1  # the drops
    for _ in range(4):
        reader.try_recv().unwrap()
    after = conn.metrics()
    assert after.readers[0].queued == 0 and after.readers[0].consumed == 4
    assert after.messages_consumed == 4
    reader.close()  # a closed reader's count stays in the total
    assert conn.metrics().messages_consumed == 4 and conn.metrics().readers == ()


def test_a_reconnect_is_counted_and_the_server_goes_while_away(
    brokers: Any, connect: ConnectFn
) -> None:
    broker = brokers("amqtt")
    with FaultProxy(broker.port) as proxy:
        conn = connect(proxy.port, reconnect_initial_backoff=0.05)
        proxy.cut()
        wait_until(lambda: conn.metrics().reconnects == 1, 10, "a reconnect")
        wait_until(lambda: conn.health().kind is HealthKind.UP, 10, "Up")
        metrics = conn.metrics()
        assert metrics.server == f"mqtt://127.0.0.1:{proxy.port}"
        assert metrics.health_transitions[HealthKind.CONNECTING] >= 1
        assert metrics.last_error is not None and "connection lost" in metrics.last_error
        conn.close(timeout=2)
        closed = conn.metrics()
        assert conn.server is None and closed.server is None  # no server once closed
        assert (closed.health, closed.health_reason) == (HealthKind.DOWN, "closed")


def test_a_persistent_session_counts_what_waits_for_the_application(
    brokers: Any, connect: ConnectFn
) -> None:
    topic = f"m/{unique_id()}"
    broker = brokers("amqtt")
    conn = connect(broker.port, clean_session=False, codec=BytesCodec())
    routing = MqttRouting(topic=topic, qos=QOS1)
    reader = conn.create_reader(ChannelDescriptor("in", routing)).unwrap()
    writer = conn.create_writer(ChannelDescriptor("out", routing)).unwrap()
    for n in range(3):
        writer.send(b"%d" % n).unwrap().delivery.wait(5).unwrap()
    wait_until(lambda: conn.metrics().unacknowledged_inbound == 3, 10, "3 unacknowledged")
    assert conn.metrics().session == "persistent"
    reader.recv(1).unwrap()
    reader.recv(1).unwrap()  # the first is acknowledged once the second is asked for
    wait_until(lambda: conn.metrics().unacknowledged_inbound == 2, 10, "2 unacknowledged")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_asyncio_connector_gives_the_same_snapshot() -> None:
    with EmbeddedBroker() as broker:
        options = MqttConnectorOptions(host="127.0.0.1", port=broker.port, client_id=unique_id())
        async with AsyncMqttConnector[Any](options, BytesCodec()) as connector:
            metrics = connector.metrics()
            assert isinstance(metrics, ConnectorMetrics)
            assert (metrics.failed_attempts, metrics.messages_sent, metrics.session) == (
                0,
                0,
                "clean",
            )
            routing = MqttRouting(topic=f"m/{unique_id()}", qos=QOS1)
            reader = (await connector.create_reader(ChannelDescriptor("in", routing))).unwrap()
            writer = (await connector.create_writer(ChannelDescriptor("out", routing))).unwrap()
            for n in range(5):
                (await writer.send(b"%d" % n)).unwrap()
            await writer.flush(5)
            wait_until(lambda: connector.metrics().messages_received == 5, 10, "5 received")
            assert (await reader.recv(5)).unwrap() is not None
            # the asyncio reader took the five in one batch and handed out one
            now = connector.metrics()
            assert now.messages_consumed == 1 and now.readers[0].queued == 4
            reader.close()  # what it took ahead is discarded, not consumed
            assert connector.metrics().messages_consumed == 1


def test_refused_sends_and_failed_deliveries_are_counted(connect: ConnectFn) -> None:
    conn = connect(dead_port(), start=False, codec=BytesCodec(), outbound_capacity=2)
    writer = conn.create_writer(ChannelDescriptor("out", MqttRouting(topic="m/x"))).unwrap()
    accepted = [writer.send(b"a").unwrap().delivery for _ in range(2)]
    refused = [writer.send(b"b") for _ in range(3)]
    assert all(r.failure() is not None for r in refused)
    assert conn.metrics().sends_refused == 3
    conn.close(timeout=0)  # never started: what was accepted fails
    assert all(d.wait(1).failure() is not None for d in accepted)
    assert conn.metrics().deliveries_failed == 2


def test_an_error_handed_out_in_a_message_place_is_not_consumed(
    brokers: Any, connect: ConnectFn
) -> None:
    port = brokers("amqtt").port
    topic = f"m/{unique_id()}"
    routing = MqttRouting(topic=topic, qos=QOS1)
    conn = connect(port, codec=JsonCodec())
    small = conn.create_reader(ChannelDescriptor("small", routing, max_payload_size=8)).unwrap()
    json_reader = conn.create_reader(ChannelDescriptor("json", routing)).unwrap()
    sender = connect(port, codec=BytesCodec())
    writer = sender.create_writer(ChannelDescriptor("out", routing)).unwrap()
    for payload in (b'"a"', b"not json", b'"a long string"'):
        writer.send(payload).unwrap().delivery.wait(5).unwrap()
    wait_until(lambda: conn.metrics().messages_received == 3, 10, "3 received")
    got_small = [small.recv(1) for _ in range(3)]
    got_json = [json_reader.recv(1) for _ in range(3)]
    assert [type(r.failure()).__name__ for r in got_small if not isinstance(r, Success)] == [
        "CodecError",
        "PayloadOverflow",
    ]
    assert sum(isinstance(r, Success) for r in got_json) == 2
    shown = {r.name: r for r in conn.metrics().readers}
    assert (shown["small"].consumed, shown["small"].oversized) == (1, 1)
    assert (shown["small"].decode_failures, shown["json"].decode_failures) == (1, 1)
    assert (shown["json"].consumed, shown["json"].oversized) == (2, 0)
    now = conn.metrics()
    assert (now.messages_consumed, now.decode_failures) == (3, 2)


@pytest.mark.anyio
async def test_the_asyncio_reader_counts_errors_as_handed_out_never_below_zero(
    brokers: Any,
) -> None:
    port = brokers("amqtt").port
    options = MqttConnectorOptions(host="127.0.0.1", port=port, client_id=unique_id())
    async with AsyncMqttConnector[Any](options, JsonCodec()) as connector:
        routing = MqttRouting(topic=f"m/{unique_id()}", qos=QOS1)
        reader = (await connector.create_reader(ChannelDescriptor("in", routing))).unwrap()
        writer = (await connector.create_writer(ChannelDescriptor("out", routing))).unwrap()
        for value in ({"ok": 1}, {"ok": 2}):
            (await writer.send(value)).unwrap()
        await writer.flush(5)
        raw = connector.threaded  # the undecodable payloads, sent as bytes by a second one
        other = MqttConnectorOptions(host="127.0.0.1", port=port, client_id=unique_id())
        async with AsyncMqttConnector[Any](other, BytesCodec()) as sender:
            bad = (await sender.create_writer(ChannelDescriptor("out", routing))).unwrap()
            for payload in (b"bad", b"bad"):
                (await bad.send(payload)).unwrap()
            await bad.flush(5)
        wait_until(lambda: raw.metrics().messages_received == 4, 10, "4 received")
        assert reader.try_recv().unwrap() is not None  # the batch of four taken, one out
        now = connector.metrics()
        assert (now.messages_consumed, now.readers[0].queued) == (1, 3)
        assert reader.try_recv().unwrap() is not None
        for _ in range(2):
            assert reader.try_recv().failure() is not None  # the CodecErrors
        now = connector.metrics()
        assert (now.messages_consumed, now.decode_failures, now.readers[0].queued) == (2, 2, 0)
