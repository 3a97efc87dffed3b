"""A hostile or broken peer: the connector keeps running, reports Connecting or Down,
and no exception escapes any thread."""

from __future__ import annotations

import threading
import time
import tracemalloc
from typing import Any

import pytest
from returns.pipeline import is_successful

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.domain import BackPressure, ChannelDescriptor, Down, HealthKind

from .conftest import ConnectFn, wait_until
from .hostile import CONNACK_OK, FakeBroker, publish, remaining_length
from .reactive import CONNECT, PUBACK, PUBLISH, SUBSCRIBE, Packet, ReactiveBroker, Session, suback

SCRIPTS = {
    "malformed packet": ([b"\xf0\xff\xff\xff\xff\xff"], True),
    "unknown CONNACK code": ([b"\x20\x02\x00\x42"], False),
    "truncated packet, then close": ([b"\x20\x02\x00"], True),
    "never answers": ([], False),
    "closes at once": ([], True),
}


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_broken_peer_never_crashes_the_connector(
    case: str, connect: ConnectFn, thread_errors: list[Any]
) -> None:
    script, close = SCRIPTS[case]
    with FakeBroker(script, close=close) as fake:
        conn = connect(
            fake.port,
            wait_up=False,
            connect_timeout=0.5,
            reconnect_attempt_ceiling=2,
            reconnect_initial_backoff=0.01,
            reconnect_max_backoff=0.05,
        )
        wait_until(lambda: conn.health().kind is HealthKind.DOWN, 15, f"Down for {case}")
        health = conn.health()
        assert isinstance(health, Down)
        assert "gave up after 3 failed connection attempts" in health.reason
        assert conn.sidecar is not None
        assert conn.sidecar.is_alive()  # still serving, ready for start() or close()
        assert fake.connects >= 1
        started = time.monotonic()
        assert conn.close(timeout=1).unwrap() is None
        assert time.monotonic() - started < 3
    assert thread_errors == []


def test_a_peer_that_accepts_then_breaks_is_retried_with_growing_delays(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    """CONNACK, then a PUBLISH longer than what follows, then close: again and again."""
    with FakeBroker([CONNACK_OK, b"\x30\x7f\x00\x03abc"], close=True) as fake:
        conn = connect(
            fake.port, start=False, reconnect_initial_backoff=0.05, reconnect_max_backoff=0.4
        )
        health = conn.subscribe_health()
        conn.start().unwrap()
        time.sleep(2.0)
        kinds = [event.to.kind for event in iter(health.try_next, None)]
        assert kinds[:3] == [HealthKind.UP, HealthKind.DEGRADED, HealthKind.CONNECTING]
        # Delays of 0.05, 0.1, 0.2, 0.4, 0.4, ... s: about 7 connections in 2 s, not 40.
        assert 3 <= fake.connects <= 12, fake.connects
        assert conn.sidecar is not None
        assert conn.sidecar.is_alive()
    assert thread_errors == []


def test_invalid_utf8_topic_closes_the_connection_unacknowledged(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    """MQTT-1.5.3-1: ill-formed UTF-8 closes the connection. Before, the message was
    dropped and the connection carried on (which the kit's hostile broker now fails)."""
    script = [
        CONNACK_OK,
        b"\x90\x03\x00\x01\x00",  # SUBACK for the reader's subscription
        publish(b"good/t", b"kept"),
        publish(b"bad/\xff\xfe", b"lost", qos=1, packet_id=7),
    ]
    with FakeBroker(script, close=False) as fake:
        conn = connect(fake.port, codec=BytesCodec(), wait_up=False)
        reader = conn.create_reader(ChannelDescriptor("in", MqttRouting(filter="#"))).unwrap()
        conn.start()
        envelope = reader.recv(10).unwrap()
        assert envelope is not None
        assert envelope.payload == b"kept"
        wait_until(lambda: fake.connects >= 2, 10, "the client to close and connect again")
        assert conn.rejected_inbound >= 1  # counted, not silently lost
        assert all(e.payload == b"kept" for e in _drain(reader))  # never b"lost"
        assert b"\x40\x02\x00\x07" not in fake.received  # never acknowledged
        assert conn.sidecar is not None
        assert conn.sidecar.is_alive()
    assert thread_errors == []


def _drain(reader: Any, seconds: float = 0.3) -> list[Any]:
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        envelope = reader.recv(0.05).unwrap()
        if envelope is not None:
            got.append(envelope)
    return got


def test_flood_of_random_packets_is_survived(connect: ConnectFn, thread_errors: list[Any]) -> None:
    """Bounded fuzz: random bytes after a valid CONNACK, many connections in a row."""
    import random

    rng = random.Random(20261127)
    chunks = [CONNACK_OK] + [
        bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))) for _ in range(50)
    ]
    with FakeBroker(chunks, close=True) as fake:
        conn = connect(
            fake.port,
            wait_up=False,
            reconnect_attempt_ceiling=None,
            reconnect_initial_backoff=0.01,
            reconnect_max_backoff=0.02,
        )
        wait_until(lambda: fake.connects >= 20, 20, "20 reconnects")
        assert conn.sidecar is not None
        assert conn.sidecar.is_alive()
        assert conn.health().kind in (HealthKind.CONNECTING, HealthKind.DEGRADED, HealthKind.UP)
    assert threading.active_count() < 100
    assert thread_errors == []


@pytest.mark.parametrize("qos", [0, 1])
def test_what_is_no_topic_name_closes_the_connection_unacknowledged(
    connect: ConnectFn, thread_errors: list[Any], qos: int
) -> None:
    """A broker may only send topic names: not empty (MQTT-4.7.3-1), no wildcard
    (MQTT-3.3.2-2), no U+0000 (MQTT-1.5.3-2). Each closes the connection (MQTT-4.8.0-1),
    is counted in ``rejected_inbound``, reaches no reader and is never acknowledged.
    Before issue 16 each reached a ``#`` reader; before the kit's hostile broker
    (issue 18) each was dropped and acknowledged while the connection carried on."""
    bad = [b"a/+", b"a/#", b"a/+/b", b"#", b"a\x00b", b""]
    connection = iter(range(100))

    def one_bad_per_connection(session: Session, packet: Packet) -> bool:
        if packet.kind != SUBSCRIBE:
            return False
        session.send(suback(packet.packet_id, b"\x01"))
        number = next(connection)
        if number < len(bad):
            session.send(publish(bad[number], b"bad", qos=qos, packet_id=number + 1))
        else:
            session.send(publish(b"good/t", b"kept", qos=qos, packet_id=99))
        return True

    with ReactiveBroker(one_bad_per_connection) as fake:
        conn = connect(fake.port, codec=BytesCodec(), start=False, reconnect_attempt_ceiling=None)
        routing = MqttRouting(filter="#", qos=MqttQos(qos))
        reader: Any = conn.create_reader(ChannelDescriptor("in", routing)).unwrap()
        conn.start().unwrap()
        envelope = reader.recv(20).unwrap()
        assert envelope is not None and envelope.payload == b"kept"
        assert envelope.routing.topic == "good/t"
        assert reader.recv(0.2).unwrap() is None
        assert conn.rejected_inbound == len(bad)
        assert fake.connects == len(bad) + 1  # each bad one ended its connection
        assert conn.health().kind is HealthKind.UP
        if qos:  # only the good one acknowledged
            wait_until(lambda: fake.seen(PUBACK), 10, "the PUBACK of the good one")
            assert [int.from_bytes(p.body[:2], "big") for p in fake.seen(PUBACK)] == [99]
    assert thread_errors == []


@pytest.mark.parametrize("codes", [b"\x01", b"\x01\x01\x01"], ids=["one short", "one long"])
def test_a_suback_without_one_code_per_filter_closes_the_connection(
    connect: ConnectFn, thread_errors: list[Any], codes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """MQTT-3.8.4-5: a SUBACK has a return code for every filter of its SUBSCRIBE. Before,
    one code for two filters was taken as an answer: the second reader waited forever on
    a subscription never made, and health stayed Up."""

    def answer_wrongly(session: Session, packet: Packet) -> bool:
        if packet.kind != SUBSCRIBE:
            return False
        assert len(packet.filters()) == 2
        session.send(suback(packet.packet_id, codes))
        return True

    with ReactiveBroker(answer_wrongly) as fake:
        conn = connect(
            fake.port, start=False, reconnect_initial_backoff=0.05, reconnect_max_backoff=0.2
        )
        health = conn.subscribe_health()
        for name in ("a", "b"):
            conn.create_reader(ChannelDescriptor(name, MqttRouting(topic=f"s/{name}"))).unwrap()
        conn.start().unwrap()
        wait_until(lambda: fake.connects >= 2, 10, "the client to close and connect again")
        kinds = [event.to.kind for event in iter(health.try_next, None)]
        assert kinds[:3] == [HealthKind.UP, HealthKind.DEGRADED, HealthKind.CONNECTING], kinds
        assert any("MQTT-3.8.4-5" in r.getMessage() for r in caplog.records), caplog.text
        assert conn.sidecar is not None and conn.sidecar.is_alive()
    assert thread_errors == []


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (1, "Unsupported protocol version"),
        (2, "Client identifier not valid"),
        (4, "Bad user name or password"),
        (5, "Not authorized"),
    ],
)
def test_a_permanent_connack_refusal_is_down_at_once_naming_it(
    connect: ConnectFn, thread_errors: list[Any], code: int, words: str
) -> None:
    """CONNACK codes 1, 2, 4 and 5 will not change by trying again: Down after one
    CONNECT, naming the refusal. Before, code 1 made paho itself reconnect with MQTT
    3.1 (16 CONNECTs in 1.5 s, health Connecting): the session must stay 3.1.1."""
    with ReactiveBroker(connack=bytes([0x20, 0x02, 0x00, code])) as fake:
        conn = connect(
            fake.port,
            start=False,
            wait_up=False,
            reconnect_initial_backoff=0.05,
            reconnect_max_backoff=0.1,
        )
        conn.start()
        wait_until(lambda: conn.health().kind is HealthKind.DOWN, 10, "Down")
        time.sleep(0.5)  # room for a reconnect that must not come
        assert fake.connects == 1
        assert words in str(conn.health()), conn.health()
        levels = {p.body[6] for p in fake.seen(CONNECT)}  # after b"\x00\x04MQTT"
        assert levels == {4}
    assert thread_errors == []


def test_server_unavailable_is_retried_with_mqtt_311(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    """CONNACK code 3 may pass: it is retried, with backoff, always as MQTT 3.1.1."""
    with ReactiveBroker(connack=b"\x20\x02\x00\x03") as fake:
        conn = connect(
            fake.port,
            start=False,
            wait_up=False,
            reconnect_initial_backoff=0.05,
            reconnect_max_backoff=0.2,
        )
        conn.start()
        wait_until(lambda: fake.connects >= 3, 10, "three CONNECTs")
        assert conn.health().kind is HealthKind.CONNECTING
        assert "Server unavailable" in (conn.last_error or ""), conn.last_error
        assert {p.body[6] for p in fake.seen(CONNECT)} == {4}
    assert thread_errors == []


BEFORE_CONNACK = {
    "QoS 1 PUBLISH": publish(b"early/t", b"early", qos=1, packet_id=5),
    "QoS 0 PUBLISH": publish(b"early/t", b"early"),
    "PUBACK": b"\x40\x02\x00\x01",
    "SUBACK": suback(1, b"\x00"),
    "PINGRESP": b"\xd0\x00",
}


@pytest.mark.parametrize("case", sorted(BEFORE_CONNACK))
def test_a_packet_before_connack_closes_the_connection_unanswered(
    connect: ConnectFn, thread_errors: list[Any], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """MQTT-3.2.0-1: a broker's first packet is CONNACK. Before, a QoS 1 PUBLISH sent
    ahead of CONNACK reached the reader, was acknowledged before any CONNACK, and the
    connection went Up. Now the connection ends at that packet, nothing is delivered
    or acknowledged, and it is never Up."""

    def early(session: Session, packet: Packet) -> bool:
        if packet.kind != CONNECT:
            return False
        session.send(BEFORE_CONNACK[case] + CONNACK_OK)
        return True

    with ReactiveBroker(early) as fake:
        conn = connect(
            fake.port,
            codec=BytesCodec(),
            start=False,
            reconnect_initial_backoff=0.05,
            reconnect_max_backoff=0.1,
        )
        health = conn.subscribe_health()
        reader: Any = conn.create_reader(ChannelDescriptor("in", MqttRouting(filter="#"))).unwrap()
        conn.start().unwrap()
        wait_until(lambda: fake.connects >= 3, 10, "the client to close and connect again")
        assert reader.recv(0.2).unwrap() is None
        assert fake.seen(PUBACK) == []
        assert fake.seen(SUBSCRIBE) == []
        kinds = [event.to.kind for event in iter(health.try_next, None)]
        assert HealthKind.UP not in kinds, kinds
        assert any("MQTT-3.2.0-1" in r.getMessage() for r in caplog.records), caplog.text
    assert thread_errors == []


AFTER_CONNACK = {
    "a second CONNACK": (CONNACK_OK, "second CONNACK"),
    "PINGREQ": (b"\xc0\x00", "only a client sends it"),
    "DISCONNECT": (b"\xe0\x00", "only a client sends it"),
    "PUBREL": (b"\x62\x02\x00\x01", "no QoS 2 flow"),
    "PUBREC": (b"\x50\x02\x00\x01", "no QoS 2 flow"),
    "a SUBACK for no SUBSCRIBE": (suback(999, b"\x00"), "no SUBSCRIBE awaiting"),
}


@pytest.mark.parametrize("case", sorted(AFTER_CONNACK))
def test_a_packet_no_broker_may_send_a_client_closes_the_connection(
    connect: ConnectFn, thread_errors: list[Any], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Once connected, a broker sends PUBLISH, PUBACK, SUBACK, UNSUBACK and PINGRESP.
    Anything else is a protocol violation and closes the connection (MQTT-4.8.0-1);
    a message after it on the same connection is not delivered."""
    bad, words = AFTER_CONNACK[case]

    def then_bad(session: Session, packet: Packet) -> bool:
        if packet.kind != SUBSCRIBE:
            return False
        session.send(suback(packet.packet_id, b"\x00") + bad + publish(b"t", b"after"))
        return True

    with ReactiveBroker(then_bad) as fake:
        conn = connect(
            fake.port,
            codec=BytesCodec(),
            start=False,
            reconnect_initial_backoff=0.05,
            reconnect_max_backoff=0.1,
        )
        reader: Any = conn.create_reader(ChannelDescriptor("in", MqttRouting(topic="t"))).unwrap()
        conn.start().unwrap()
        wait_until(lambda: fake.connects >= 2, 10, "the client to close and connect again")
        assert reader.recv(0.2).unwrap() is None
        assert any(words in r.getMessage() for r in caplog.records), caplog.text
    assert thread_errors == []


SKIPPED_HEADERS = {
    # (first byte, packet id): each header is wrong whatever the payload's size
    "QoS 3": (0x36, 9),
    "QoS 2": (0x34, 9),
    "QoS 1, packet id 0": (0x32, 0),
    "QoS 0 with DUP": (0x38, None),
}


@pytest.mark.parametrize("case", sorted(SKIPPED_HEADERS))
def test_a_publish_skipped_for_its_size_is_checked_like_any_other(
    connect: ConnectFn, thread_errors: list[Any], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A PUBLISH above every reader's limit is discarded as it arrives, but its header
    is checked first. Before, QoS 3, QoS 2 and packet id 0 were all acknowledged when
    skipped (a PUBACK with id 0), and closed the connection only when not skipped."""
    first, packet_id = SKIPPED_HEADERS[case]
    topic = b"big/t"
    body = len(topic).to_bytes(2, "big") + topic
    if packet_id is not None:
        body += packet_id.to_bytes(2, "big")
    body += bytes(200_000)
    packet = bytes([first]) + remaining_length(len(body)) + body

    def send_big(session: Session, packet_in: Packet) -> bool:
        if packet_in.kind != SUBSCRIBE:
            return False
        session.send(suback(packet_in.packet_id, b"\x01"))
        session.send(packet[:100])  # the header first: the client decides to skip on it
        time.sleep(0.2)
        session.send(packet[100:] + publish(b"big/t", b"small", qos=1, packet_id=10))
        return True

    with ReactiveBroker(send_big) as fake:
        conn = connect(
            fake.port,
            codec=BytesCodec(),
            start=False,
            reconnect_initial_backoff=0.05,
            reconnect_max_backoff=0.1,
        )
        routing = MqttRouting(topic="big/t", qos=MqttQos.AT_LEAST_ONCE)
        descriptor = ChannelDescriptor("in", routing, max_payload_size=1000)
        reader: Any = conn.create_reader(descriptor).unwrap()
        conn.start().unwrap()
        wait_until(lambda: fake.connects >= 2, 10, "the client to close and connect again")
        assert fake.seen(PUBACK) == []
        assert reader.recv(0.2).unwrap() is None
        assert conn.health().kind is not HealthKind.DOWN
    assert any("PUBLISH" in r.getMessage() for r in caplog.records), caplog.text
    assert thread_errors == []


def test_a_held_puback_stalls_the_window_and_nothing_hangs_once_it_comes(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    """Issue 16 point 7: the broker holds the first message's PUBACK and acknowledges
    the others at once. Before, their identifiers were freed and reused while they
    waited behind the first; after the identifiers wrapped (65,599 messages), 64
    deliveries and every later one never completed. Now a message acknowledged early
    keeps its identifier and its place in the window until it completes in turn: the
    window stalls at ``max_inflight`` (sends get BackPressure), and when the PUBACK
    comes every delivery completes, in order."""
    release = threading.Event()
    held: list[bytes] = []

    def hold_first(session: Session, packet: Packet) -> bool:
        if packet.kind != PUBLISH:
            return False
        topic_len = int.from_bytes(packet.body[:2], "big")
        ack = b"\x40\x02" + packet.body[2 + topic_len : 4 + topic_len]
        if not held:
            held.append(ack)

            def later() -> None:
                release.wait(20)
                session.send(ack)

            threading.Thread(target=later, daemon=True).start()
            return True
        session.send(ack)
        return True

    with ReactiveBroker(hold_first) as fake:
        conn = connect(fake.port, max_inflight=8, outbound_capacity=16)
        routing = MqttRouting(topic="held/t", qos=MqttQos.AT_LEAST_ONCE)
        writer: Any = conn.create_writer(ChannelDescriptor("out", routing)).unwrap()
        accepted = []
        refused = 0
        for n in range(40):
            result = writer.send(n)
            if is_successful(result):
                accepted.append(result.unwrap().delivery)
            else:
                assert isinstance(result.failure(), BackPressure), result
                refused += 1
            time.sleep(0.005)
        wait_until(lambda: len(fake.seen(PUBLISH)) >= 8, 10, "the window to fill")
        time.sleep(0.3)  # room for a PUBLISH the stalled window must not send
        assert len(fake.seen(PUBLISH)) == 8
        assert len(accepted) <= 8 + 16 and refused == 40 - len(accepted)  # BackPressure
        assert not any(delivery.done for delivery in accepted)
        release.set()
        assert is_successful(writer.flush(10))
        assert all(is_successful(delivery.wait(0)) for delivery in accepted)
        assert len(fake.seen(PUBLISH)) == len(accepted)
    assert thread_errors == []


UNWANTED = {
    # (topic, clean_session, the counter that counts it)
    "no reader, clean session": (b"other/t", True, "unrouted_inbound"),
    "no reader, persistent session": (b"other/t", False, "unrouted_inbound"),
}


@pytest.mark.parametrize("case", sorted(UNWANTED))
def test_an_unwanted_payload_is_skipped_as_it_arrives_not_buffered_whole(
    connect: ConnectFn, thread_errors: list[Any], case: str
) -> None:
    """Issue 16 point 5: a 96 MiB PUBLISH on a topic that is not UTF-8, or that no reader
    matches, was buffered whole before being counted and dropped (peak RSS +192 to
    288 MB). Now it is skipped as its bytes arrive, counted and acknowledged; memory
    stays bounded (tracemalloc peak, Python allocations of every thread). The
    persistent session's hold keeps an unrouted message whole up to 1 MiB only
    (``DEFAULT_MAX_PAYLOAD_SIZE``), so this one is counted, not held."""
    topic, clean, counter = UNWANTED[case]
    size = 32 << 20
    huge = publish(topic, bytes(size), qos=1, packet_id=9)

    def send_huge(session: Session, packet: Packet) -> bool:
        if packet.kind != SUBSCRIBE:
            return False
        session.send(suback(packet.packet_id, b"\x01"))
        session.send(huge)
        session.send(publish(b"huge/t", b"after", qos=1, packet_id=10))
        return True

    with ReactiveBroker(send_huge) as fake:
        conn = connect(fake.port, codec=BytesCodec(), start=False, clean_session=clean)
        routing = MqttRouting(topic="huge/t", qos=MqttQos.AT_LEAST_ONCE)
        reader: Any = conn.create_reader(ChannelDescriptor("r", routing)).unwrap()
        tracemalloc.start()
        try:
            conn.start().unwrap()
            after = reader.recv(30)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert after.unwrap().value == b"after"
        assert getattr(conn, counter) == 1
        assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for an unwanted 32 MiB payload"
        reader.recv(0)  # a persistent session acknowledges "after" once asked for more
        wait_until(lambda: len(fake.seen(PUBACK)) == 2, 10, "both PUBACKs")
        assert [p.packet_id for p in fake.seen(PUBACK)] == [9, 10]
        assert conn.health().kind is HealthKind.UP
    assert thread_errors == []


@pytest.mark.parametrize("topic", [b"\xff\xfe/t", b"huge/+"])
def test_a_huge_publish_that_is_no_topic_name_is_skipped_as_it_arrives_and_closes(
    connect: ConnectFn, thread_errors: list[Any], topic: bytes
) -> None:
    """Issue 16 point 5 with issue 18: a 32 MiB PUBLISH whose topic is no topic name is
    discarded as its bytes arrive (never buffered whole), then closes the connection
    (MQTT-4.8.0-1) without its PUBACK."""
    huge = publish(topic, bytes(32 << 20), qos=1, packet_id=9)

    def send_huge(session: Session, packet: Packet) -> bool:
        if packet.kind != SUBSCRIBE:
            return False
        session.send(suback(packet.packet_id, b"\x01"))
        session.send(huge)
        return True

    with ReactiveBroker(send_huge) as fake:
        conn = connect(fake.port, codec=BytesCodec(), start=False)
        routing = MqttRouting(topic="huge/t", qos=MqttQos.AT_LEAST_ONCE)
        conn.create_reader(ChannelDescriptor("r", routing)).unwrap()
        tracemalloc.start()
        try:
            conn.start().unwrap()
            wait_until(lambda: fake.connects >= 2, 30, "the client to close and connect again")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert conn.rejected_inbound >= 1
        assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a refused 32 MiB payload"
        assert not fake.seen(PUBACK)
    assert thread_errors == []


def publish_n_after_subscribe(topics: list[bytes], n: int) -> Any:
    """A handler: grant every SUBSCRIBE; after the first, ``n`` QoS 1 messages on the
    first topic (ids 1..n), and later one on each further topic as it is subscribed."""
    subscribed: list[int] = []

    def handler(session: Session, packet: Packet) -> bool:
        if packet.kind != SUBSCRIBE:
            return False
        session.send(suback(packet.packet_id, b"\x01" * len(packet.filters())))
        subscribed.append(packet.packet_id)
        if len(subscribed) == 1:
            for number in range(1, n + 1):
                session.send(publish(topics[0], b"%d" % number, qos=1, packet_id=number))
        return True

    return handler


def test_closing_a_reader_inside_a_loop_acknowledges_what_its_batch_held(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    """Issue 16 point 8: in a persistent session, ``for e in reader: reader.close();
    break`` with 10 messages waiting sent one PUBACK. The 9 batch items put back were
    discarded without release, so every later PUBACK on the connection stalled,
    another reader's too. Closing discards and acknowledges, in order."""
    with ReactiveBroker(publish_n_after_subscribe([b"a/t"], 10)) as fake:
        conn = connect(fake.port, codec=BytesCodec(), start=False, clean_session=False)
        qos1 = MqttQos.AT_LEAST_ONCE
        reader: Any = conn.create_reader(ChannelDescriptor("a", MqttRouting("a/t", qos1))).unwrap()
        other: Any = conn.create_reader(ChannelDescriptor("b", MqttRouting("b/t", qos1))).unwrap()
        conn.start().unwrap()
        wait_until(lambda: conn.unacknowledged_inbound == 10, 10, "ten messages waiting")
        for envelope in reader:
            assert envelope.payload == b"1"
            reader.close()
            break
        wait_until(lambda: len(fake.seen(PUBACK)) == 10, 10, "ten PUBACKs")
        assert [p.packet_id for p in fake.seen(PUBACK)] == list(range(1, 11))
        fake.sessions[-1].send(publish(b"b/t", b"other", qos=1, packet_id=11))
        assert other.recv(10).unwrap().payload == b"other"
        other.recv(0)  # done with it: acknowledged
        wait_until(lambda: len(fake.seen(PUBACK)) == 11, 10, "the other reader's PUBACK")
        assert conn.unacknowledged_inbound == 0
    assert thread_errors == []


@pytest.mark.parametrize("clean", [True, False], ids=["clean session", "persistent session"])
def test_iteration_ends_when_the_reader_is_closed_in_the_loop_body(
    connect: ConnectFn, thread_errors: list[Any], clean: bool
) -> None:
    """Issue 16 point 9: after ``reader.close()`` in a ``for`` body the loop still
    yielded every message of the batch it had taken (20 of 20). The contract says
    iteration ends once the reader is closed."""
    with ReactiveBroker(publish_n_after_subscribe([b"a/t"], 20)) as fake:
        conn = connect(fake.port, codec=BytesCodec(), start=False, clean_session=clean)
        routing = MqttRouting("a/t", MqttQos.AT_LEAST_ONCE)
        reader: Any = conn.create_reader(ChannelDescriptor("a", routing)).unwrap()
        conn.start().unwrap()
        wait_until(lambda: len(fake.seen(PUBACK)) == 20 or not clean, 10, "twenty acknowledged")
        if not clean:
            wait_until(lambda: conn.unacknowledged_inbound == 20, 10, "twenty waiting")
        got = []
        for envelope in reader:
            got.append(envelope.payload)
            reader.close()
        assert got == [b"1"]
        wait_until(lambda: len(fake.seen(PUBACK)) == 20, 10, "every PUBACK")
    assert thread_errors == []
