"""Issue 9: the edge semantics an adversarial review broke, one test per point.

Each test failed before its fix. Fake brokers (``reactive.ReactiveBroker``) provoke
what real brokers rarely do; real brokers (both kinds) check the promises that
depend on a broker's own behaviour (retained messages, persistent sessions).
"""

from __future__ import annotations

import selectors
import threading
from typing import Any

from returns.result import Failure

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.domain import ChannelDescriptor, StackError

from .conftest import ConnectFn, unique_id, wait_until
from .reactive import SUBSCRIBE, Packet, ReactiveBroker, Session, suback

QOS1 = MqttQos.AT_LEAST_ONCE


def reader_of(conn: Any, topic: str, name: str = "in", **routing: Any) -> Any:
    return conn.create_reader(ChannelDescriptor(name, MqttRouting(topic=topic, **routing))).unwrap()


def in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


# -- point 6: a refused subscription reaches whoever waits, and stays ---------------------------


def test_6_refused_subscription_wakes_blocked_readers_and_selectors_and_stays(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    held: list[tuple[Session, Packet]] = []

    def hold_subscribe(session: Session, packet: Packet) -> bool:
        if packet.kind == SUBSCRIBE:
            held.append((session, packet))
            return True
        return False

    with ReactiveBroker(hold_subscribe) as fake:
        conn = connect(fake.port, codec=BytesCodec())
        reader = reader_of(conn, "refused/t")
        wait_until(lambda: held, 5, "the SUBSCRIBE")
        blocked, result = in_thread(lambda: reader.recv(None))
        selector = selectors.DefaultSelector()
        selector.register(reader.fileno(), selectors.EVENT_READ)
        session, packet = held[0]
        session.send(suback(packet.packet_id, b"\x80"))
        blocked.join(10)
        assert not blocked.is_alive()
        assert isinstance(result[0], Failure)
        assert isinstance(result[0].failure(), StackError)
        assert selector.select(10)  # the descriptor became readable
        selector.close()
        for _ in range(3):  # and stays visible: never a silent None afterwards
            again = reader.recv(0)
            assert isinstance(again, Failure) and isinstance(again.failure(), StackError)
    assert thread_errors == []


# -- point 9: a second reader of a retained topic gets the retained set --------------------------


def test_9_second_reader_of_a_retained_topic_gets_it_and_the_first_no_duplicate(
    broker: Any, connect: ConnectFn
) -> None:
    topic = f"ret/{unique_id()}"
    conn = connect(broker.port, codec=BytesCodec())
    writer = conn.create_writer(
        ChannelDescriptor("w", MqttRouting(topic=topic, qos=QOS1, retained=True))
    ).unwrap()
    writer.send(b"state").unwrap().delivery.wait(10).unwrap()
    first = reader_of(conn, topic, "first", qos=QOS1)
    got = first.recv(10).unwrap()
    assert got is not None and got.value == b"state" and got.routing.retained
    second = reader_of(conn, topic, "second", qos=QOS1)
    got = second.recv(10).unwrap()
    assert got is not None and got.value == b"state" and got.routing.retained
    live = conn.create_writer(ChannelDescriptor("live", MqttRouting(topic=topic, qos=QOS1)))
    live.unwrap().send(b"marker").unwrap().delivery.wait(10).unwrap()
    # Event order, not time: the first reader's next message is the live one, no retained copy.
    got = first.recv(10).unwrap()
    assert got is not None and got.value == b"marker"
    got = second.recv(10).unwrap()
    assert got is not None and got.value == b"marker"
    cleanup = conn.create_writer(
        ChannelDescriptor("clear", MqttRouting(topic=topic, qos=QOS1, retained=True))
    ).unwrap()
    cleanup.send(b"").unwrap().delivery.wait(10)
