"""Credentials, TLS, saturation, drops and reconnects against real brokers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from returns.pipeline import is_successful

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import (
    Credentials,
    MqttConnector,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
    TlsOptions,
)
from taktora_connector.conformance.brokers import EmbeddedBroker, TlsMaterial
from taktora_connector.conformance.proxy import FaultProxy, PacketType
from taktora_connector.domain import (
    BackPressure,
    ChannelDescriptor,
    CodecError,
    Degraded,
    Down,
    HealthEvent,
    HealthKind,
)

from .conftest import ConnectFn, loopback, unique_id, wait_until
from .test_mqtt_broker import receive, wait_subscribed

QOS1 = MqttQos.AT_LEAST_ONCE
USERS = {"alice": "correct horse"}


def events(sub: Any) -> list[HealthEvent]:
    found = []
    while (event := sub.try_next()) is not None:
        found.append(event)
    return found


@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
def test_good_credentials_reach_up(kind: str, brokers: Any, connect: ConnectFn) -> None:
    broker = brokers(kind, users=USERS)
    with FaultProxy(broker.port) as proxy:
        _, writer, reader = loopback(
            connect, proxy.port, credentials=Credentials("alice", "correct horse")
        )
        wait_subscribed(reader, writer, "hello")
        (connect_packet,) = proxy.seen(PacketType.CONNECT, "out")
        assert connect_packet.has_credentials()
        assert connect_packet.protocol() == ("MQTT", 4)  # REQ_0257: MQTT 3.1.1


@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
def test_wrong_credentials_go_down_without_retrying(
    kind: str, brokers: Any, connect: ConnectFn
) -> None:
    broker = brokers(kind, users=USERS)
    with FaultProxy(broker.port) as proxy:
        conn = connect(
            proxy.port,
            wait_up=False,
            credentials=Credentials("alice", "wrong-password-123"),
            reconnect_initial_backoff=0.01,
        )
        wait_until(lambda: conn.health().kind is HealthKind.DOWN, 10, "Down")
        health = conn.health()
        assert isinstance(health, Down)
        assert health.reason.startswith("authentication rejected")
        assert "wrong-password-123" not in health.reason
        time.sleep(0.5)
        assert len(proxy.seen(PacketType.CONNECT, "out")) == 1  # no further attempts


@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
def test_tls_round_trip_with_a_ca_made_at_run_time(
    kind: str, brokers: Any, connect: ConnectFn
) -> None:
    broker = brokers(kind, tls=True)
    assert broker.tls_material is not None
    tls = TlsOptions(ca_pem=broker.tls_material.ca_pem)
    _, writer, reader = loopback(connect, broker.tls_port, tls=tls)
    wait_subscribed(reader, writer, "secret")
    writer.send({"over": "tls"}).unwrap().delivery.wait(10).unwrap()
    assert receive(reader, 1)[0].value == {"over": "tls"}


def test_tls_with_an_untrusted_ca_never_reaches_up(connect: ConnectFn) -> None:
    with EmbeddedBroker(tls=True) as broker:
        conn = connect(
            broker.tls_port,
            wait_up=False,
            tls=TlsOptions(ca_pem=TlsMaterial.other_ca_pem()),
            reconnect_attempt_ceiling=1,
            reconnect_initial_backoff=0.01,
        )
        wait_until(lambda: conn.health().kind is HealthKind.DOWN, 10, "Down")
        health = conn.health()
        assert isinstance(health, Down)
        assert "certificate verification failed" in health.reason
        assert "gave up after 2 failed connection attempts" in health.reason


def test_tls_host_name_must_match_the_certificate(connect: ConnectFn) -> None:
    with EmbeddedBroker(tls=True) as broker:
        assert broker.tls_material is not None
        ca = broker.tls_material.ca_pem
        good = connect(broker.tls_port, tls=TlsOptions(ca_pem=ca, server_hostname="localhost"))
        assert good.health().kind is HealthKind.UP
        bad = connect(
            broker.tls_port,
            wait_up=False,
            tls=TlsOptions(ca_pem=ca, server_hostname="not-the-broker.example"),
            reconnect_attempt_ceiling=0,
        )
        wait_until(lambda: bad.health().kind is HealthKind.DOWN, 10, "Down")
        assert "certificate verification failed" in str(bad.last_error)


def test_plain_client_to_a_tls_port_and_tls_to_a_plain_port_fail_cleanly(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    with EmbeddedBroker(tls=True) as broker:
        assert broker.tls_material is not None
        plain_to_tls = connect(
            broker.tls_port, wait_up=False, reconnect_attempt_ceiling=0, connect_timeout=1.0
        )
        tls_to_plain = connect(
            broker.port,
            wait_up=False,
            reconnect_attempt_ceiling=0,
            connect_timeout=1.0,
            tls=TlsOptions(ca_pem=broker.tls_material.ca_pem),
        )
        both = (plain_to_tls, tls_to_plain)
        wait_until(lambda: all(c.health().kind is HealthKind.DOWN for c in both), 10, "Down")
        assert "TLS" in str(tls_to_plain.last_error)
    assert thread_errors == []


@pytest.mark.parametrize("qos", [MqttQos.AT_MOST_ONCE, MqttQos.AT_LEAST_ONCE])
def test_stalled_broker_surfaces_as_backpressure(
    amqtt_broker: EmbeddedBroker, connect: ConnectFn, qos: MqttQos
) -> None:
    with FaultProxy(amqtt_broker.port) as proxy:
        conn = connect(proxy.port, outbound_capacity=2, max_inflight=4, codec=BytesCodec())
        sub = conn.subscribe_health()
        writer = conn.create_writer(
            ChannelDescriptor("out", MqttRouting(topic="bp/t", qos=qos))
        ).unwrap()
        proxy.pause()
        payload = b"x" * 65_536
        refused = None
        accepted = 0
        for _ in range(2_000):
            result = writer.send(payload)
            if not is_successful(result):
                refused = result.failure()
                break
            accepted += 1
            time.sleep(0.0005 if qos == MqttQos.AT_MOST_ONCE else 0)
        assert isinstance(refused, BackPressure), f"no BackPressure after {accepted} sends"
        if qos == MqttQos.AT_LEAST_ONCE:
            assert accepted <= 4 + 2  # the in-flight window plus the bridge
        assert writer.send(payload).failure() == BackPressure(2)  # still full, still refused
        seen = events(sub)
        assert [e.to for e in seen] == [Degraded("outbound backpressure")]  # once, broadcast
        proxy.resume()
        wait_until(lambda: conn.health().kind is HealthKind.UP, 10, "Up after the stall")
        assert [e.to.kind for e in events(sub)] == [HealthKind.UP]
        assert writer.send(b"after").unwrap().delivery.wait(10).unwrap() is None


@pytest.mark.parametrize("threshold", [1, 3])
def test_inbound_flood_drops_are_counted_and_signalled_once(
    amqtt_broker: EmbeddedBroker, connect: ConnectFn, threshold: int
) -> None:
    sub_conn = connect(amqtt_broker.port, inbound_capacity=4, inbound_drop_threshold=threshold)
    # QoS 0 to the reader: amqtt stalls 5 s on some of its own QoS 1 deliveries (amqtt_quirks).
    reader = sub_conn.create_reader(ChannelDescriptor("in", MqttRouting(topic="fl/t"))).unwrap()
    pub = connect(amqtt_broker.port, outbound_capacity=200)
    writer = pub.create_writer(
        ChannelDescriptor("out", MqttRouting(topic="fl/t", qos=QOS1))
    ).unwrap()
    wait_subscribed(reader, writer, -1)
    health = sub_conn.subscribe_health()
    published = 50
    for i in range(published):
        writer.send(i).unwrap()
    assert writer.flush(10).unwrap() is None
    wait_until(lambda: reader.dropped == published - 4, 10, "all but 4 dropped")
    seen = events(health)
    assert [e.to for e in seen] == [Degraded(f"dropped {threshold} inbound frames")]
    received = receive(reader, 4)
    assert reader.recv(0.2).unwrap() is None
    assert reader.dropped + len(received) == published  # nothing unaccounted
    assert [e.value for e in received] == [0, 1, 2, 3]  # the newest are dropped, not the oldest
    wait_until(lambda: sub_conn.health().kind is HealthKind.UP, 5, "Up after draining")
    assert [e.to.kind for e in events(health)] == [HealthKind.UP]
    for i in range(10):  # re-armed: a new flood is signalled again
        writer.send(i).unwrap()
    writer.flush(10).unwrap()
    wait_until(lambda: sub_conn.health().kind is HealthKind.DEGRADED, 10, "Degraded again")


def test_undecodable_inbound_payload_is_a_codec_failure_and_the_reader_carries_on(
    amqtt_broker: EmbeddedBroker, connect: ConnectFn
) -> None:
    raw = connect(amqtt_broker.port, codec=BytesCodec())
    json_conn = connect(amqtt_broker.port)
    reader = json_conn.create_reader(
        ChannelDescriptor("in", MqttRouting(topic="cd/t", qos=QOS1))
    ).unwrap()
    writer = raw.create_writer(
        ChannelDescriptor("out", MqttRouting(topic="cd/t", qos=QOS1))
    ).unwrap()
    wait_subscribed(reader, writer, b"1")
    writer.send(b"{not json").unwrap()
    writer.send(b"[2]").unwrap()
    failure = reader.recv(10).failure()
    assert isinstance(failure, CodecError)
    assert failure.format == "json"
    assert failure.payload == b"{not json"
    envelope = reader.recv(10).unwrap()
    assert envelope is not None
    assert envelope.value == [2]
    assert reader.decode_failures == 1


def test_refused_port_goes_down_after_the_ceiling(connect: ConnectFn) -> None:
    from taktora_connector.conformance.brokers import free_port

    conn = connect(
        free_port(),
        wait_up=False,
        reconnect_attempt_ceiling=2,
        reconnect_initial_backoff=0.01,
        reconnect_max_backoff=0.02,
    )
    sub = conn.subscribe_health()
    wait_until(lambda: conn.health().kind is HealthKind.DOWN, 10, "Down")
    health = conn.health()
    assert isinstance(health, Down)
    assert "gave up after 3 failed connection attempts" in health.reason
    assert [e.to.kind for e in events(sub)] == [HealthKind.DOWN]


def test_unresolvable_host_is_reported(connect: ConnectFn) -> None:
    conn = connect(1883, host="no-such-host.invalid", wait_up=False, reconnect_attempt_ceiling=0)
    wait_until(lambda: conn.health().kind is HealthKind.DOWN, 15, "Down")
    assert "cannot resolve host 'no-such-host.invalid'" in str(conn.last_error)


def test_start_after_down_tries_again(amqtt_broker: EmbeddedBroker) -> None:
    port = amqtt_broker.port
    amqtt_broker.stop()
    conn: MqttConnector[Any] = MqttConnector(
        MqttConnectorOptions(
            host="127.0.0.1", port=port, client_id=unique_id(), reconnect_attempt_ceiling=0
        )
    )
    try:
        conn.start().unwrap()
        wait_until(lambda: conn.health().kind is HealthKind.DOWN, 10, "Down")
        amqtt_broker.start()
        conn.start().unwrap()
        wait_until(lambda: conn.health().kind is HealthKind.UP, 10, "Up after restart")
    finally:
        conn.close()
