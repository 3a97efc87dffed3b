"""Bad input gets a clear, typed Failure that says what was wrong and what is allowed."""

from __future__ import annotations

import logging
from typing import Any

import pytest

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
    ChannelDescriptor,
    CodecError,
    ConfigurationError,
    HealthKind,
    PayloadOverflow,
)

from .conftest import ConnectFn, unique_id, wait_until


def test_payload_over_the_channel_maximum_is_refused_and_nothing_is_sent(
    amqtt_broker: EmbeddedBroker, connect: ConnectFn
) -> None:
    with FaultProxy(amqtt_broker.port) as proxy:
        conn = connect(proxy.port, codec=BytesCodec())
        writer = conn.create_writer(
            ChannelDescriptor("small", MqttRouting(topic="big/t"), max_payload_size=10)
        ).unwrap()
        error = writer.send(b"x" * 11).failure()
        assert error == PayloadOverflow(11, 10)
        assert str(error) == "encoded payload is 11 bytes; the channel allows at most 10 bytes"
        outcome = writer.send(b"x" * 10).unwrap()
        assert outcome.sequence_number == 0  # the refused send used no sequence number
        outcome.delivery.wait(5).unwrap()
        wait_until(lambda: proxy.seen(PacketType.PUBLISH, "out"), 5, "the good PUBLISH")
        assert [p.payload() for p in proxy.seen(PacketType.PUBLISH, "out")] == [b"x" * 10]


@pytest.mark.parametrize(("qos", "limit"), [(0, 268_435_452), (1, 268_435_450)])
def test_a_payload_no_publish_can_carry_is_refused_at_send(
    connect: ConnectFn, qos: int, limit: int
) -> None:
    """A PUBLISH's remaining length (at most 268,435,455) also holds the topic and the
    packet id. Before, 268,435,453 bytes on a 1-byte topic were accepted and their
    delivery failed later with StackError."""
    conn = connect(1, codec=BytesCodec(), start=False)
    routing = MqttRouting(topic="t", qos=MqttQos(qos))
    descriptor = ChannelDescriptor("w", routing, max_payload_size=268_435_455)
    writer = conn.create_writer(descriptor).unwrap()
    payload = bytes(limit + 1)
    assert writer.send(payload).failure() == PayloadOverflow(limit + 1, limit)
    del payload
    assert writer.send(bytes(limit)).unwrap().sequence_number == 0  # exactly fits


def test_unencodable_value_is_a_codec_error_naming_the_format(connect: ConnectFn) -> None:
    conn = connect(1, start=False)
    writer = conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="c/t"))).unwrap()
    error = writer.send({"when": object()}).failure()
    assert isinstance(error, CodecError)
    assert error.format == "json"
    assert "does not encode as JSON" in str(error)
    assert writer.send({"fine": 1}).unwrap().sequence_number == 0


@pytest.mark.parametrize(
    ("correlation_id", "message"),
    [(b"short", "is 5 bytes; it must be exactly 32 bytes"), ("text" * 8, "must be bytes")],
)
def test_correlation_id_must_be_32_bytes(
    connect: ConnectFn, correlation_id: Any, message: str
) -> None:
    conn = connect(1, start=False)
    writer = conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="c/t"))).unwrap()
    error = writer.send(1, correlation_id=correlation_id).failure()
    assert isinstance(error, ConfigurationError)
    assert message in str(error)
    assert writer.send(1, correlation_id=bytes(32)).unwrap().sequence_number == 0


def test_channel_rules(connect: ConnectFn) -> None:
    conn = connect(1, start=False)
    routing = MqttRouting(topic="dup/t")
    conn.create_writer(ChannelDescriptor("same", routing)).unwrap()
    duplicate = conn.create_writer(ChannelDescriptor("same", routing)).failure()
    assert isinstance(duplicate, ConfigurationError)
    assert "already open" in str(duplicate) and "unique per connector" in str(duplicate)
    conn.create_reader(ChannelDescriptor("same", routing)).unwrap()  # readers have their own names
    assert isinstance(
        conn.create_reader(ChannelDescriptor("same", routing)).failure(), ConfigurationError
    )
    not_mqtt = conn.create_writer(ChannelDescriptor("x", "a routing of the wrong kind")).failure()  # type: ignore[arg-type]
    assert "needs MqttRouting" in str(not_mqtt)
    filter_only = conn.create_writer(ChannelDescriptor("f", MqttRouting(filter="a/+"))).failure()
    assert "needs MqttRouting.topic" in str(filter_only)
    dollar = conn.create_writer(ChannelDescriptor("d", MqttRouting(topic="$SYS/x"))).failure()
    assert "may be read but not published to" in str(dollar)
    reader = conn.create_reader(ChannelDescriptor("r", MqttRouting(topic="r/t"))).unwrap()
    assert "timeout must be >= 0" in str(reader.recv(-1).failure())
    with pytest.raises(ConfigurationError, match="non-empty"):
        ChannelDescriptor(" ", routing)


def test_closed_writer_and_reader_refuse(connect: ConnectFn) -> None:
    conn = connect(1, start=False)
    writer = conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="c/t"))).unwrap()
    writer.close()
    assert "writer 'w' is closed" in str(writer.send(1).failure())
    conn.create_writer(
        ChannelDescriptor("w", MqttRouting(topic="c/t"))
    ).unwrap()  # the name is free again


def test_the_password_appears_in_no_repr_log_error_or_health(
    connect: ConnectFn, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-" + unique_id()
    caplog.set_level(logging.DEBUG)
    with EmbeddedBroker(users={"alice": "right"}, tls=True) as broker:
        assert broker.tls_material is not None
        wrong = connect(broker.port, wait_up=False, credentials=Credentials("alice", secret))
        untrusted = connect(
            broker.tls_port,
            wait_up=False,
            credentials=Credentials("alice", secret),
            tls=TlsOptions(ca_pem=TlsMaterial.other_ca_pem()),
            reconnect_attempt_ceiling=0,
        )
        for conn in (wrong, untrusted):
            wait_until(lambda c=conn: c.health().kind is HealthKind.DOWN, 10, "Down")  # type: ignore[misc]
        url_error = None
        try:
            MqttConnectorOptions.from_url(f"mqtt://alice:{secret}@host/path")
        except ConfigurationError as err:
            url_error = str(err)
        texts = [
            repr(wrong),
            repr(wrong.options),
            repr(untrusted.options),
            str(wrong.health()),
            str(untrusted.health()),
            str(wrong.last_error),
            str(untrusted.last_error),
            str(url_error),
            caplog.text,
        ]
    assert all(secret not in text for text in texts), [t for t in texts if secret in t]
    assert "authentication rejected" in str(wrong.health())


def test_options_errors_never_echo_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        MqttConnectorOptions.from_url("ftp://bob:sw0rdfish@host")
    assert "sw0rdfish" not in str(caught.value)
    assert "bob:***@host" in str(caught.value)
    connector: MqttConnector[Any] = MqttConnector(
        MqttConnectorOptions(credentials=Credentials("bob", "sw0rdfish"))
    )
    assert "sw0rdfish" not in repr(connector)
    connector.close()


@pytest.mark.parametrize("codec", [42, "json", object()])
def test_a_codec_that_is_no_payload_codec_is_refused_at_construction(codec: Any) -> None:
    """It was accepted, and every send then failed with a CodecError about AttributeError."""
    with pytest.raises(ConfigurationError, match="codec must be a PayloadCodec"):
        MqttConnector(MqttConnectorOptions(), codec)


def test_options_that_are_not_options_are_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="options must be MqttConnectorOptions, got str"):
        MqttConnector("mqtt://localhost:1883")  # type: ignore[arg-type]
