"""The public building blocks for connector authors (taktora_connector.adapters.toolkit),
without any broker: each keeps the part of the contract its docstring names."""

from __future__ import annotations

import math
import select
import time
from typing import Any

import pytest
from returns.result import Failure, Result, Success

from taktora_connector.adapters import toolkit
from taktora_connector.adapters.codecs import BytesCodec, JsonCodec
from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.adapters.toolkit import (
    BridgeWriter,
    Delivery,
    HealthBroadcaster,
    HealthController,
    Offer,
    OutboundBridge,
    Outgoing,
    Phase,
    QueueReader,
    encode_payload,
    payload_limit,
)
from taktora_connector.domain import (
    BackPressure,
    ChannelDescriptor,
    CodecError,
    ConfigurationError,
    Connecting,
    ConnectorDown,
    ConnectorError,
    Degraded,
    HealthKind,
    PayloadOverflow,
    StackError,
)


def controller(threshold: int = 1) -> tuple[HealthController, HealthBroadcaster]:
    broadcaster = HealthBroadcaster(Connecting(0))
    made = HealthController(broadcaster, threshold)
    made.set_phase(Phase.CONNECTED)
    return made, broadcaster


def descriptor(topic: str = "t/1", **kw: Any) -> ChannelDescriptor[MqttRouting]:
    return ChannelDescriptor("c", MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE), **kw)


class Raises:
    format_name = "raises"

    def encode(self, value: object) -> Result[bytes, CodecError]:
        raise RuntimeError("boom")

    def decode(self, payload: bytes) -> Result[object, CodecError]:
        raise RuntimeError("boom")


class AnswersText:
    format_name = "text"

    def encode(self, value: object) -> Any:
        return Success("not bytes")

    def decode(self, payload: bytes) -> Any:
        return Success(payload)


def test_the_toolkit_exports_what_its_docstring_names() -> None:
    assert toolkit.__doc__ is not None
    for name in toolkit.__all__:
        assert getattr(toolkit, name) is not None
        if name not in ("CONNECTION_LOST", "OUTBOUND_BACKPRESSURE"):
            assert f"``{name}``" in toolkit.__doc__, name


@pytest.mark.parametrize(
    ("codec", "correlation_id", "limit", "error", "words"),
    [
        (Raises(), None, 100, CodecError, "encode raised RuntimeError('boom')"),
        (AnswersText(), None, 100, CodecError, "encode gave a str, not bytes"),
        (BytesCodec(), b"short", 100, ConfigurationError, "correlation"),
        (BytesCodec(), None, 3, PayloadOverflow, "4"),
    ],
)
def test_encode_payload_answers_every_broken_send_with_its_error(
    codec: Any, correlation_id: bytes | None, limit: int, error: type, words: str
) -> None:
    answer = encode_payload(codec, b"abcd", correlation_id, limit)
    assert isinstance(answer, error), answer
    assert words in str(answer)


def test_encode_payload_gives_the_bytes_and_the_limit_is_what_a_publish_carries() -> None:
    assert encode_payload(JsonCodec(), {"a": 1}, None, 100) == b'{"a":1}'
    assert payload_limit(10, "t", 1) == 10
    assert payload_limit(2**40, "t", 1) == 268_435_455 - 2 - 1 - 2  # length, topic, id


def test_a_full_bridge_is_back_pressure_once_per_episode() -> None:
    made, broadcaster = controller()
    bridge: OutboundBridge[Outgoing] = OutboundBridge(2, lambda: None)
    writer: BridgeWriter[bytes] = BridgeWriter(descriptor(), BytesCodec(), bridge, made)
    outcomes = [writer.send(b"x") for _ in range(3)]
    assert [type(o) for o in outcomes] == [Success, Success, Failure]
    refused = outcomes[2].failure()
    assert isinstance(refused, BackPressure) and refused.capacity == 2
    assert [o.unwrap().sequence_number for o in outcomes[:2]] == [0, 1]
    assert broadcaster.state == Degraded("outbound backpressure")
    # the I/O thread takes one and delivers it: room again, flush waits for the last
    first = bridge.pop()
    first.delivery.succeed()
    made.outbound_drained()
    assert broadcaster.state.kind is HealthKind.UP
    assert writer.send(b"y").unwrap().sequence_number == 2  # the refused send took none
    flushed = writer.flush(0.01)
    assert isinstance(flushed.failure(), ConnectorError)  # two still undelivered
    for item in bridge.close():
        item.delivery.succeed()
    assert writer.flush(0) == Success(None)
    assert bridge.offer(Outgoing("t", b"", 0, False, Delivery())) is Offer.CLOSED
    assert isinstance(writer.send(b"z").failure(), ConnectorDown)


def test_a_writer_needs_a_topic_and_refuses_what_no_publish_carries() -> None:
    made, _ = controller()
    bridge: OutboundBridge[Outgoing] = OutboundBridge(2, lambda: None)
    with pytest.raises(ConfigurationError, match="needs a topic"):
        BridgeWriter(ChannelDescriptor("c", MqttRouting(filter="a/#")), BytesCodec(), bridge, made)
    small: BridgeWriter[bytes] = BridgeWriter(
        descriptor(max_payload_size=4), BytesCodec(), bridge, made
    )
    assert isinstance(small.send(b"12345").failure(), PayloadOverflow)
    assert len(bridge) == 0


def test_a_full_reader_drops_the_newest_counts_it_and_degrades_once() -> None:
    made, broadcaster = controller(threshold=2)
    reader: QueueReader[bytes] = QueueReader(descriptor(), BytesCodec(), 2, made)
    for n in range(5):
        reader.deliver("t/1", str(n).encode(), 1, False)
    assert reader.dropped == 3
    assert broadcaster.state == Degraded("dropped 2 inbound frames")
    ready, _, _ = select.select([reader.fileno()], [], [], 0)
    assert ready  # readable while something waits
    got = [reader.try_recv().unwrap() for _ in range(3)]
    assert [g.value if g else None for g in got] == [b"0", b"1", None]  # the oldest kept
    assert [g.sequence_number for g in got if g] == [0, 1]
    assert got[0] is not None and got[0].routing.topic == "t/1"
    assert broadcaster.state.kind is HealthKind.UP  # drained: the latch re-armed
    ready, _, _ = select.select([reader.fileno()], [], [], 0)
    assert not ready


def test_a_reader_waits_with_any_timeout_fails_and_closes() -> None:
    made, _ = controller()
    reader: QueueReader[bytes] = QueueReader(descriptor(), Raises(), 4, made)  # type: ignore[arg-type]
    for bad in (math.nan, -1.0, "1"):
        assert isinstance(reader.recv(bad).failure(), ConfigurationError)  # type: ignore[arg-type]
    started = time.monotonic()
    assert reader.recv(0.05) == Success(None)
    assert time.monotonic() - started >= 0.04
    reader.deliver("t/1", b"x", 0, False)
    reader.fail(StackError("refused"))
    broke = reader.recv(1).failure()  # a codec that raises: a CodecError, not a crash
    assert isinstance(broke, CodecError) and "decode raised RuntimeError('boom')" in str(broke)
    assert isinstance(reader.recv(1).failure(), StackError)
    closed: list[object] = []
    other: QueueReader[bytes] = QueueReader(descriptor(), BytesCodec(), 4, made, closed.append)
    other.deliver("t/1", b"x", 0, False)
    other.close()
    assert closed == [other] and other.closed
    assert isinstance(other.recv(1).failure(), ConnectorDown)
    assert list(other) == []  # iteration ends once closed
