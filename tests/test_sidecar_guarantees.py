"""Issue 9: the edge semantics an adversarial review broke, one test per point.

Each test failed before its fix. Fake brokers (``reactive.ReactiveBroker``) provoke
what real brokers rarely do; real brokers (both kinds) check the promises that
depend on a broker's own behaviour (retained messages, persistent sessions).
"""

from __future__ import annotations

import gc
import math
import os
import select
import selectors
import signal
import socket
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from returns.result import Failure

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import (
    Credentials,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
    TlsOptions,
)
from taktora_connector.adapters.mqtt.matcher import TopicMatcher
from taktora_connector.adapters.mqtt.records import Inbound
from taktora_connector.conformance.brokers import free_port
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
    ConnectorDown,
    ConnectorTimeout,
    Down,
    HealthKind,
    PayloadOverflow,
    StackError,
)

from .conftest import ConnectFn, unique_id, wait_until
from .hostile import publish
from .reactive import PINGREQ, SUBSCRIBE, Packet, ReactiveBroker, Session, suback, trickle

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


# -- point 1: no exception ends the sidecar unnoticed; any topic MQTT allows matches -------------


def test_1_matcher_handles_the_longest_and_deepest_topics() -> None:
    deep = "/".join(["l"] * 32_768)  # 65,535 bytes: the most MQTT allows, 32,768 levels
    assert len(deep.encode()) == 65_535
    matcher: TopicMatcher[str] = TopicMatcher()
    matcher.add(deep, "exact")
    matcher.add("#", "all")
    matcher.add("/".join(["+"] * 32_768), "plus")
    matcher.add("l/+/#", "prefix")
    assert sorted(matcher.match(deep)) == ["all", "exact", "plus", "prefix"]
    assert matcher.remove(deep, "exact") and matcher.remove("/".join(["+"] * 32_768), "plus")
    assert sorted(matcher.match(deep)) == ["all", "prefix"]


def test_1_a_message_on_a_1200_level_topic_reaches_its_reader(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    topic = "/".join(f"l{i}" for i in range(1_200))
    with ReactiveBroker(publish_after_subscribe(topic, b"deep")) as fake:
        conn = connect(fake.port, codec=BytesCodec())
        reader = reader_of(conn, topic)
        got = reader.recv(10).unwrap()
        assert got is not None and got.value == b"deep"
        assert conn.health().kind is HealthKind.UP
    assert thread_errors == []


def wait_up(conn: Any) -> None:
    wait_until(lambda: conn.health().kind is HealthKind.UP, 10, "Up")


def publish_after_subscribe(topic: str, payload: bytes, qos: int = 0) -> Any:
    def handler(session: Session, packet: Packet) -> bool:
        if packet.kind == SUBSCRIBE:
            codes = bytes(min(q, 1) for _, q in packet.filters())
            session.send(suback(packet.packet_id, codes))
            session.publish(topic, payload, qos)
            return True
        return False

    return handler


class Boom(RuntimeError):
    pass


def boom(*args: Any, **kwargs: Any) -> Any:
    raise Boom("injected fault")


# Where an unexpected exception is injected: (object to patch, attribute).
Injection = Callable[[Any, Any], tuple[Any, str]]
INJECTIONS: dict[str, Injection] = {
    "a reader's deliver (data plane)": lambda conn, reader: (reader, "deliver_many"),
    "the subscription step (on_connect)": lambda conn, reader: (
        conn._gateway,
        "_send_subscriptions",
    ),
    "the health controller (a step)": lambda conn, reader: (conn._controller, "outbound_drained"),
    "the matcher": lambda conn, reader: (conn._gateway._plane, "_match"),
}


@pytest.mark.parametrize("where", sorted(INJECTIONS))
def test_1_an_unexpected_exception_anywhere_goes_down_and_wakes_every_waiter(
    where: str, connect: ConnectFn, thread_errors: list[Any], caplog: Any
) -> None:
    with ReactiveBroker(publish_after_subscribe("t/x", b"x", qos=1)) as fake:
        conn = connect(fake.port, codec=BytesCodec(), start=False)
        health = conn.subscribe_health()
        victim = reader_of(conn, "t/x", "victim")
        bystander = reader_of(conn, "other/t", "bystander")
        writer = conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="t/w", qos=QOS1)))
        target, name = INJECTIONS[where](conn, victim)
        setattr(target, name, boom)
        blocked, result = in_thread(lambda: bystander.recv(None))
        conn.start().unwrap()
        if where == "the health controller (a step)":
            writer.unwrap().send(b"m").unwrap()  # completes, then the drained check raises
            conn._controller.trip_outbound()
        blocked.join(10)
        assert not blocked.is_alive(), "a blocked reader was left waiting"
        assert isinstance(result[0], Failure) and isinstance(result[0].failure(), ConnectorDown)
        down = conn.health()
        assert isinstance(down, Down) and "Boom" in down.reason
        assert conn.last_error is not None and "injected fault" in conn.last_error
        kinds = [event.to.kind for event in iter(health.try_next, None)]
        assert kinds[-1:] == [HealthKind.DOWN]
        sent = writer.unwrap().send(b"late")
        assert isinstance(sent, Failure) and isinstance(sent.failure(), ConnectorDown)
        again = conn.create_reader(ChannelDescriptor("late", MqttRouting(topic="t/late")))
        assert isinstance(again, Failure) and isinstance(again.failure(), ConnectorDown)
        assert isinstance(conn.start(), Failure)
        conn.close(timeout=1)
    logged = [r for r in caplog.records if "injected fault" in (r.exc_text or r.getMessage())]
    assert len(logged) == 1  # logged once
    assert thread_errors == []


# -- point 2: every option checked at construction -------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MqttConnectorOptions(client_id="x\ud800"), "client_id"),
        (lambda: MqttConnectorOptions(client_id="a\x00b"), "client_id"),
        (lambda: Credentials("u\ud800", "p"), "username"),
        (lambda: Credentials("u", "p\udfff"), "password"),
        (lambda: MqttConnectorOptions(host="h\ud800st"), "host"),
        (lambda: MqttConnectorOptions(host="h\x00st"), "host"),
        (lambda: TlsOptions(server_hostname="n\ud800"), "server_hostname"),
        (lambda: MqttConnectorOptions.from_url("mqtt://u:p\ud800@h"), "password"),
    ],
)
def test_2_options_that_cannot_go_on_the_wire_are_refused_at_construction(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


# -- point 7: a health subscription taken after close ends ---------------------------------------


def test_7_subscribe_health_after_close_yields_the_final_state_and_ends(
    connect: ConnectFn,
) -> None:
    conn = connect(free_port(), start=False)
    conn.close()
    late = conn.subscribe_health()
    done, events = in_thread(lambda: list(late))
    done.join(10)
    assert not done.is_alive(), "iterating a late subscription blocked"
    assert [event.to for event in events[0]] == [conn.health()]
    assert isinstance(conn.health(), Down)


# -- point 8: any timeout value; inf is no deadline, NaN and negatives a Failure, nothing raises ----

BAD_TIMEOUTS = [math.nan, -1.0, -math.inf]


def test_8_timeouts_inf_huge_nan_negative_never_raise(connect: ConnectFn) -> None:
    with ReactiveBroker(echo=True) as fake:
        conn = connect(fake.port, codec=BytesCodec())
        reader = reader_of(conn, "to/t", qos=QOS1)
        writer = conn.create_writer(
            ChannelDescriptor("w", MqttRouting(topic="to/t", qos=QOS1))
        ).unwrap()
        delivery = writer.send(b"x").unwrap().delivery
        for timeout in (math.inf, 1e12, 1e300):
            assert delivery.wait(timeout).unwrap() is None
            assert writer.flush(timeout).unwrap() is None
        for timeout in BAD_TIMEOUTS:
            for call in (reader.recv, delivery.wait, writer.flush, conn.close):
                result = call(timeout)
                assert isinstance(result, Failure), (call, timeout)
                assert isinstance(result.failure(), ConfigurationError), (call, timeout)
        assert conn.health().kind is HealthKind.UP  # a refused close(nan) closed nothing
        # Blocking forever (inf) and for 1e12 s both end when the reader is closed.
        for timeout in (math.inf, 1e12):
            waiting, result = in_thread(lambda t=timeout: reader.recv(t))
            writer.send(b"y").unwrap()
            waiting.join(10)
            assert not waiting.is_alive()
            assert result[0].unwrap() is not None
        sub = conn.subscribe_health()
        for timeout in BAD_TIMEOUTS:
            assert sub.next(timeout) is None  # nothing waits: no event, no exception
        assert conn.close(math.inf).unwrap() is None
        assert conn.sidecar is not None and not conn.sidecar.is_alive()
        assert isinstance(conn.health(), Down)
        assert isinstance(reader.recv(0), Failure)
        events = list(iter(lambda: sub.next(math.inf), None))  # ends: the connector closed
        assert events[-1].to == conn.health()


# -- point 13: default client ids are unique ----------------------------------------------------


def test_13_default_client_ids_are_unique_and_explicit_ones_stay() -> None:
    ids = {MqttConnectorOptions().client_id for _ in range(1_000)}
    assert len(ids) == 1_000
    for client_id in ids:  # what every MQTT 3.1.1 broker must accept (MQTT-3.1.3-5)
        assert 1 <= len(client_id) <= 23 and client_id.isalnum() and client_id.isascii()
    assert MqttConnectorOptions(client_id="given").client_id == "given"
    assert MqttConnectorOptions.from_url("mqtt://h").client_id != MqttConnectorOptions().client_id


def test_13_two_default_connectors_on_one_broker_do_not_take_each_other_over(
    mosquitto_broker: Any,
) -> None:
    from taktora_connector.adapters.mqtt import MqttConnector

    options = MqttConnectorOptions(host="127.0.0.1", port=mosquitto_broker.port)
    first: Any = MqttConnector(options.replace(client_id=MqttConnectorOptions().client_id))
    second: Any = MqttConnector(MqttConnectorOptions(host="127.0.0.1", port=mosquitto_broker.port))
    try:
        sub = first.subscribe_health()
        first.start().unwrap()
        second.start().unwrap()
        wait_until(lambda: first.health().kind is second.health().kind is HealthKind.UP, 10)
        probe = second.create_writer(ChannelDescriptor("p", MqttRouting(topic="p", qos=QOS1)))
        probe.unwrap().send(1).unwrap().delivery.wait(10).unwrap()  # second is settled
        kinds = [event.to.kind for event in iter(sub.try_next, None)]
        assert kinds == [HealthKind.UP]  # the first was never disconnected
    finally:
        first.close()
        second.close()


# -- point 3: a keep-alive loss is one loss, not a failed attempt too ---------------------------


def test_3_keep_alive_loss_reconnects_even_with_no_failed_attempts_allowed(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    def mute_first_connection(session: Session, packet: Packet) -> bool:
        # The first connection never answers PINGREQ: paho's own keep-alive ends it.
        return packet.kind == PINGREQ and session is fake.sessions[0]

    with ReactiveBroker(mute_first_connection) as fake:
        conn = connect(
            fake.port, keep_alive=1, reconnect_attempt_ceiling=0, reconnect_initial_backoff=0.01
        )
        sub = conn.subscribe_health()
        wait_until(lambda: fake.connects >= 2, 10, "a reconnect after the keep-alive loss")
        wait_until(lambda: conn.health().kind in (HealthKind.UP, HealthKind.DOWN), 10)
        kinds = [event.to.kind for event in iter(sub.try_next, None)]
        assert conn.health().kind is HealthKind.UP, (conn.health(), kinds)
        assert kinds[:3] == [HealthKind.DEGRADED, HealthKind.CONNECTING, HealthKind.UP]
    assert thread_errors == []


# -- point 4: liveness needs complete packets, not a byte trickle --------------------------------


def test_4_a_byte_trickle_without_pingresp_is_a_dead_link(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    stop = threading.Event()

    def trickle_on_subscribe(session: Session, packet: Packet) -> bool:
        if packet.kind == PINGREQ:
            return True  # never answered
        if packet.kind == SUBSCRIBE and session is fake.sessions[0]:
            session.send(suback(packet.packet_id, b"\x00"))
            big = publish(b"tr/t", b"x" * 200)  # 200+ bytes at 0.4 s each: ~80 s
            threading.Thread(target=trickle, args=(session, big, 0.4, stop), daemon=True).start()
            return True
        return False

    with ReactiveBroker(trickle_on_subscribe) as fake:
        conn = connect(fake.port, keep_alive=1, reconnect_initial_backoff=0.01)
        sub = conn.subscribe_health()
        reader_of(conn, "tr/t")
        try:
            # 1.5 x keep-alive is 1.5 s; 8 s is a generous bound against a ~80 s trickle.
            wait_until(lambda: conn.health().kind is not HealthKind.UP, 8, "the dead link noticed")
        finally:
            stop.set()
        kinds = [event.to.kind for event in iter(sub.try_next, None)]
        assert kinds[:2] == [HealthKind.DEGRADED, HealthKind.CONNECTING]
        assert conn.last_error is not None and "keep-alive" in conn.last_error
    assert thread_errors == []


def test_4_an_idle_healthy_link_stays_up(connect: ConnectFn, thread_errors: list[Any]) -> None:
    """The liveness check must not kill a link that answers its pings (event order: three
    PINGREQs answered in turn and still one connection, Up all along)."""
    with ReactiveBroker() as fake:
        conn = connect(fake.port, keep_alive=1)
        sub = conn.subscribe_health()
        wait_until(lambda: len(fake.seen(PINGREQ)) >= 3, 10, "three keep-alive rounds")
        assert fake.connects == 1
        assert conn.health().kind is HealthKind.UP
        assert list(iter(sub.try_next, None)) == []
    assert thread_errors == []


# -- point 5: a lost connection is visible whatever latch is set ---------------------------------


def test_5_a_loss_is_broadcast_even_while_a_drop_latch_is_set(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    with ReactiveBroker(publish_after_subscribe("dr/t", b"1")) as fake:
        conn = connect(
            fake.port,
            inbound_capacity=1,
            reconnect_attempt_ceiling=2,
            reconnect_initial_backoff=0.01,
            reconnect_max_backoff=0.02,
            codec=BytesCodec(),
        )
        sub = conn.subscribe_health()
        reader_of(conn, "dr/t")
        wait_until(lambda: fake.sessions and fake.seen(SUBSCRIBE), 5, "SUBSCRIBE")
        fake.sessions[0].publish("dr/t", b"2")  # the queue holds one: this one is dropped
        wait_until(lambda: conn.health().kind is HealthKind.DEGRADED, 5, "the drop latch")
        fake.stop()  # the broker goes away and stays away
        wait_until(lambda: conn.health().kind is HealthKind.DOWN, 10, "Down after the ceiling")
        kinds = [event.to.kind for event in iter(sub.try_next, None)]
        assert kinds == [HealthKind.DEGRADED, HealthKind.CONNECTING, HealthKind.DOWN], kinds
        assert conn.last_error is not None and "gave up" in conn.last_error
    assert thread_errors == []


# -- point 12: a connector dropped without close() stops its sidecar -----------------------------


def test_12_a_dropped_connector_stops_its_sidecar_with_a_resource_warning(
    thread_errors: list[Any],
) -> None:
    from taktora_connector.adapters.mqtt import MqttConnector

    with ReactiveBroker() as fake:
        conn: Any = MqttConnector(MqttConnectorOptions(host="127.0.0.1", port=fake.port))
        conn.start().unwrap()
        wait_up(conn)
        reader = reader_of(conn, "drop/t")  # the application keeps a reader, not the connector
        conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="drop/t"))).unwrap()
        sidecar = conn.sidecar
        assert sidecar is not None and sidecar.is_alive()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            del conn
            gc.collect()
        assert [w for w in seen if issubclass(w.category, ResourceWarning)]
        assert "not closed" in str(seen[0].message)
        wait_until(lambda: not sidecar.is_alive(), 10, "the sidecar to stop")
        result = reader.recv(None)  # does not block: the reader learns its connector is gone
        assert isinstance(result, Failure) and isinstance(result.failure(), ConnectorDown)
    assert thread_errors == []


# -- point 14: decided and documented edges -------------------------------------------------------


def test_14_concurrent_close_calls_share_the_first_ones_outcome(connect: ConnectFn) -> None:
    held: list[Session] = []

    def never_ack(session: Session, packet: Packet) -> bool:
        return packet.kind == 3  # PUBLISH: never acknowledged, so close has to wait

    with ReactiveBroker(never_ack) as fake:
        conn = connect(fake.port)
        writer = conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="c/t", qos=QOS1)))
        writer.unwrap().send(1).unwrap()
        first, first_result = in_thread(lambda: conn.close(0.5))
        wait_until(lambda: conn._closed, 5, "the first close to begin")
        second = conn.close(10)  # returns when the first is done, with its outcome
        first.join(10)
        assert not first.is_alive()
        assert isinstance(first_result[0], Failure)
        assert isinstance(first_result[0].failure(), ConnectorTimeout)
        assert second == first_result[0]
        assert not held


def test_14_a_forked_child_refuses_to_send(connect: ConnectFn) -> None:
    with ReactiveBroker() as fake:
        conn = connect(fake.port, codec=BytesCodec())
        writer = conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="f/t"))).unwrap()
        reader = reader_of(conn, "f/t")
        reader.deliver_many(
            [Inbound(b"the parent's", "f/t", 0, False, 0, None)]
        )  # waiting at the fork
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what send and recv said, then leave at once
            try:
                signal.alarm(20)  # whatever happens, the child ends
                sent = writer.send(b"x")
                got = reader.recv(5)
                ok = (
                    isinstance(sent, Failure)
                    and isinstance(sent.failure(), ConnectorDown)
                    and "fork" in str(sent.failure())
                    and isinstance(got, Failure)
                    and isinstance(got.failure(), ConnectorDown)
                    and conn.health().kind is HealthKind.DOWN
                )
                os.write(write_end, b"ok" if ok else f"{sent!r} {got!r}".encode())
            finally:
                os._exit(0)
        os.close(write_end)
        assert select.select([read_end], [], [], 30)[0], "the child did not answer"
        answer = os.read(read_end, 4096)
        os.close(read_end)
        os.waitpid(pid, 0)
        assert answer == b"ok", answer
        assert writer.send(b"parent").unwrap().delivery.wait(10).unwrap() is None  # parent fine
        waiting = reader.recv(5).unwrap()
        assert waiting is not None and waiting.value == b"the parent's"  # still the parent's


def test_14_a_subscribe_the_broker_answers_by_hanging_up_fails_that_reader_only(
    mosquitto_broker: Any, connect: ConnectFn, thread_errors: list[Any]
) -> None:
    """mosquitto closes the connection on a filter of more than 200 levels."""
    conn = connect(mosquitto_broker.port, codec=BytesCodec(), reconnect_initial_backoff=0.01)
    sub = conn.subscribe_health()
    deep = reader_of(conn, "/".join(["d"] * 250), "deep")
    failed = deep.recv(30)
    assert isinstance(failed, Failure) and isinstance(failed.failure(), StackError), failed
    assert "SUBSCRIBE" in str(failed.failure())
    wait_up(conn)
    normal = reader_of(conn, "n/t", "normal")
    writer = conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="n/t", qos=QOS1)))
    writer.unwrap().send(b"still here").unwrap().delivery.wait(10).unwrap()
    got = normal.recv(10).unwrap()
    assert got is not None and got.value == b"still here"
    losses = [e for e in iter(sub.try_next, None) if e.to.kind is HealthKind.CONNECTING]
    assert 1 <= len(losses) <= 3  # a few reconnects to find the culprit, not a loop
    assert isinstance(deep.recv(0), Failure)  # and it stays failed
    assert thread_errors == []


# -- point 10: a persistent session's backlog is not lost before a reader exists -----------------


def test_10_persistent_backlog_waits_for_a_reader_created_after_start(
    mosquitto_broker: Any, connect: ConnectFn
) -> None:
    topic, session = f"ps/{unique_id()}", unique_id("session")
    first = connect(
        mosquitto_broker.port, client_id=session, clean_session=False, codec=BytesCodec()
    )
    reader = reader_of(first, topic, qos=QOS1)
    pub = connect(mosquitto_broker.port, codec=BytesCodec())
    writer = pub.create_writer(ChannelDescriptor("w", MqttRouting(topic=topic, qos=QOS1)))
    writer.unwrap().send(b"probe").unwrap().delivery.wait(10).unwrap()
    assert reader.recv(10).unwrap() is not None  # subscribed
    first.close()
    for i in range(3):
        writer.unwrap().send(b"%d" % i).unwrap().delivery.wait(10).unwrap()
    again = connect(
        mosquitto_broker.port, client_id=session, clean_session=False, codec=BytesCodec()
    )
    # The broker sends the backlog at once; no reader matches yet: counted and held.
    wait_until(lambda: again.unrouted_inbound == 3, 10, "the backlog to arrive")
    late = reader_of(again, topic, qos=QOS1)
    got = [late.recv(10).unwrap() for _ in range(3)]
    assert [e.value for e in got if e is not None] == [b"0", b"1", b"2"]


def test_10_messages_that_match_no_reader_are_counted(connect: ConnectFn) -> None:
    with ReactiveBroker(publish_after_subscribe("other/t", b"stray")) as fake:
        conn = connect(fake.port, codec=BytesCodec())
        reader_of(conn, "mine/t")  # its SUBSCRIBE makes the fake send a stray message
        wait_until(lambda: conn.unrouted_inbound == 1, 10, "the stray message counted")


# -- point 11: a payload above a reader's limit is skipped, counted and reported -------------------


def test_11_an_oversized_payload_is_reported_to_the_small_reader_only(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    big = b"x" * 32_768

    def send_big_then_small(session: Session, packet: Packet) -> bool:
        if packet.kind == SUBSCRIBE:
            session.send(suback(packet.packet_id, bytes(min(q, 1) for _, q in packet.filters())))
            if len(fake.seen(SUBSCRIBE)) == 1:  # both readers exist before start
                session.publish("big/t", big)
                session.publish("big/t", b"small")
            return True
        return False

    with ReactiveBroker(send_big_then_small) as fake:
        conn = connect(fake.port, codec=BytesCodec(), start=False)
        small: Any = conn.create_reader(
            ChannelDescriptor("small", MqttRouting(topic="big/t"), max_payload_size=1024)
        ).unwrap()
        large = reader_of(conn, "big/t", "large")
        conn.start().unwrap()
        first = small.recv(10)
        assert isinstance(first, Failure) and isinstance(first.failure(), PayloadOverflow)
        assert first.failure().actual == len(big) and first.failure().max == 1024
        assert small.recv(10).unwrap().value == b"small"  # and it carries on
        assert small.oversized == 1
        assert large.recv(10).unwrap().value == big
        assert large.recv(10).unwrap().value == b"small"
    assert thread_errors == []


def test_14_close_interrupts_a_hanging_tcp_connect(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    """A listener whose accept queue is full never completes a TCP handshake."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        conn = connect(port, wait_up=False, connect_timeout=60)
        wait_until(lambda: conn.sidecar is not None and conn.sidecar.is_alive(), 5)
        started = time.monotonic()
        conn.close(0.5)
        # Generous bound: without the interruption close waits for connect_timeout (60 s).
        assert time.monotonic() - started < 20
        assert conn.sidecar is not None and not conn.sidecar.is_alive()
    finally:
        for filler in fillers:
            filler.close()
        server.close()
    assert thread_errors == []


def test_11_an_oversized_payload_is_skipped_in_the_stream_not_buffered_whole(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    """Peak memory allocated while a 32 MiB payload arrives for readers limited to 1 KiB
    (tracemalloc: Python allocations since the test began, whatever thread made them)."""
    huge = publish(b"huge/t", b"x" * (32 << 20), qos=1, packet_id=9)

    def send_huge(session: Session, packet: Packet) -> bool:
        if packet.kind == SUBSCRIBE:
            session.send(suback(packet.packet_id, b"\x01"))
            session.send(huge)
            session.publish("huge/t", b"after")
            return True
        return False

    with ReactiveBroker(send_huge) as fake:
        conn = connect(fake.port, codec=BytesCodec(), start=False)
        reader: Any = conn.create_reader(
            ChannelDescriptor("r", MqttRouting(topic="huge/t", qos=QOS1), max_payload_size=1024)
        ).unwrap()
        tracemalloc.start()
        try:
            conn.start().unwrap()
            first = reader.recv(30)
            after = reader.recv(30)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert isinstance(first, Failure) and isinstance(first.failure(), PayloadOverflow)
        assert first.failure().actual == 32 << 20
        assert after.unwrap().value == b"after"
        assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a skipped 32 MiB payload"
        wait_until(lambda: any(p.kind == 4 for p in fake.packets), 10, "the PUBACK of the skipped")
    assert thread_errors == []


def test_1_the_longest_topic_mqtt_allows_reaches_its_reader(
    connect: ConnectFn, thread_errors: list[Any]
) -> None:
    topic = "/".join(["l"] * 32_768)  # 65,535 bytes, 32,768 levels
    with ReactiveBroker(publish_after_subscribe(topic, b"longest")) as fake:
        conn = connect(fake.port, codec=BytesCodec())
        reader = reader_of(conn, topic)
        got = reader.recv(10).unwrap()
        assert got is not None and got.value == b"longest" and got.routing.topic == topic
        assert conn.health().kind is HealthKind.UP
    assert thread_errors == []
