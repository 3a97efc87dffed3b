"""An adversarial suite that keeps looking for defects of the kinds issue 9 found.

Property tests (hypothesis) over option values, timeout values, connector
lifecycles and a chaotic fake broker. Every run draws new cases; the invariants
are the promises of README "Guarantees and failure behaviour": nothing raises
where a Result is promised, no exception escapes a thread, nothing blocks past
its timeout, health moves only along legal edges, and close() ends the sidecar.
Bounded: few examples, loopback only, each call bounded.
"""

from __future__ import annotations

import gc
import math
import os
import random
import select
import threading
import time
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from returns.result import Failure, Result, Success

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.health import MAX_QUEUED_EVENTS, HealthBroadcaster
from taktora_connector.adapters.mqtt import (
    Credentials,
    MqttConnector,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
)
from taktora_connector.adapters.mqtt.bridge import InboundQueue
from taktora_connector.adapters.mqtt.health_control import HealthController, Phase
from taktora_connector.adapters.mqtt.records import Inbound
from taktora_connector.adapters.timeouts import wait_seconds
from taktora_connector.conformance.brokers import free_port
from taktora_connector.domain import (
    ChannelDescriptor,
    CodecError,
    ConfigurationError,
    Connecting,
    ConnectorDown,
    ConnectorError,
    Degraded,
    HealthKind,
    StackError,
    Up,
    is_legal,
)

from .hostile import CONNACK_OK, FakeBroker, publish
from .reactive import PINGREQ, PUBLISH, SUBSCRIBE, Packet, ReactiveBroker, Session, suback

QUICK = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

any_text = st.text(st.characters(codec=None), max_size=12)  # surrogates and NUL included
any_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)


# -- option values --------------------------------------------------------------------------


@QUICK
@given(
    client_id=any_text,
    host=any_text,
    username=any_text,
    password=st.one_of(any_text, st.binary(max_size=8)),
    numbers=st.dictionaries(
        st.sampled_from(
            [
                "port",
                "keep_alive",
                "outbound_capacity",
                "inbound_capacity",
                "inbound_drop_threshold",
                "reconnect_initial_backoff",
                "reconnect_max_backoff",
                "reconnect_attempt_ceiling",
                "max_inflight",
                "connect_timeout",
            ]
        ),
        any_number,
        max_size=3,
    ),
)
def test_any_option_values_are_accepted_whole_or_refused_with_configuration_error(
    client_id: str, host: str, username: str, password: str | bytes, numbers: dict[str, Any]
) -> None:
    try:
        credentials = Credentials(username, password)
        options = MqttConnectorOptions(
            client_id=client_id, host=host, credentials=credentials, **numbers
        )
    except ConfigurationError:
        return
    # Accepted: everything that goes on the wire must encode, as paho will encode it.
    options.client_id.encode("utf-8")
    options.host.encode("utf-8")
    assert "\x00" not in options.client_id and "\x00" not in options.host
    assert options.credentials is not None
    options.credentials.username.encode("utf-8")
    if isinstance(options.credentials.password, str):
        options.credentials.password.encode("utf-8")


@settings(max_examples=12, deadline=None)
@given(
    client_id=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=30
    ),
    password=st.one_of(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=20), st.binary(max_size=20)
    ),
)
def test_accepted_options_connect_and_close_cleanly(client_id: str, password: str | bytes) -> None:
    """Whatever the constructor accepts, the sidecar can put on the wire (no silent death)."""
    errors: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    try:
        with ReactiveBroker() as fake:
            conn: MqttConnector[Any] = MqttConnector(
                MqttConnectorOptions(
                    host="127.0.0.1",
                    port=fake.port,
                    client_id=client_id,
                    credentials=Credentials("user", password),
                )
            )
            try:
                conn.start().unwrap()
                deadline = time.monotonic() + 10
                while conn.health().kind is not HealthKind.UP:
                    assert time.monotonic() < deadline, (conn.health(), conn.last_error)
                    time.sleep(0.005)
            finally:
                conn.close(2)
            assert conn.sidecar is not None and not conn.sidecar.is_alive()
    finally:
        threading.excepthook = previous
    assert errors == []


# -- timeout values ---------------------------------------------------------------------------

timeouts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.none(),
)


def refused(value: float | None) -> bool:
    if value is None:
        return False
    if isinstance(value, int):
        return value < 0
    return math.isnan(value) or value < 0


@settings(max_examples=200, deadline=None)
@given(timeouts)
def test_wait_seconds_is_total(value: Any) -> None:
    seconds = wait_seconds(value)
    if refused(value):
        assert isinstance(seconds, ConfigurationError)
    else:
        assert seconds is None or (
            isinstance(seconds, float) and 0 <= seconds < threading.TIMEOUT_MAX
        )


@QUICK
@given(st.one_of(timeouts.filter(lambda t: refused(t) or t is None), st.sampled_from([0, 0.0])))
def test_every_public_wait_takes_any_timeout_without_raising(value: Any) -> None:
    """Values that would block are given something to return at once (an item, a done
    delivery); the point is that no value raises, and bad ones are a ConfigurationError."""
    conn: MqttConnector[Any] = MqttConnector(
        MqttConnectorOptions(client_id="adv-timeouts"), BytesCodec()
    )
    try:
        reader: Any = conn.create_reader(ChannelDescriptor("r", MqttRouting(topic="a/t"))).unwrap()
        reader.deliver_many([Inbound(b"x", "a/t", 0, False, 0, None)])
        writer: Any = conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="a/t"))).unwrap()
        results: list[Result[Any, ConnectorError]] = [reader.recv(value), writer.flush(value)]
        sub = conn.subscribe_health()
        assert sub.next(0 if value is None else value) is None  # never raises
    finally:
        results.append(conn.close(value if refused(value) else 0))
        conn.close(0)
    for result in results:
        if refused(value):
            assert isinstance(result, Failure) and isinstance(result.failure(), ConfigurationError)
        else:
            assert not isinstance(result, Failure) or not isinstance(
                result.failure(), ConfigurationError
            )


# -- health subscriptions stay bounded --------------------------------------------------------


def test_an_unread_health_subscription_keeps_the_latest_events_only() -> None:
    broadcaster = HealthBroadcaster(Up())
    sub = broadcaster.subscribe()
    for _ in range(2_500):  # Up <-> Degraded, 5,000 events, never read
        broadcaster.move(Degraded("flap"))
        broadcaster.move(Up())
    events = list(iter(sub.try_next, None))
    assert len(events) == MAX_QUEUED_EVENTS
    assert sub.missed == 5_000 - MAX_QUEUED_EVENTS
    assert events[-1].to == broadcaster.state  # the latest state is never lost


# -- lifecycles against a chaotic broker ------------------------------------------------------


class Chaos:
    """Per-packet misbehaviour, drawn from a seeded generator (the seed comes from
    hypothesis, so a failing case is replayed with the same misbehaviour)."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.lock = threading.Lock()

    def choose(self, kind: int) -> str:
        options = ["normal"] * 8 + ["hang up", "ignore"]
        if kind == SUBSCRIBE:
            options += ["refuse", "garbage"]
        with self.lock:
            return self.random.choice(options)

    def __call__(self, session: Session, packet: Packet) -> bool:
        if packet.kind not in (SUBSCRIBE, PINGREQ, PUBLISH):
            return False
        action = self.choose(packet.kind)
        if action == "hang up":
            session.close()
            return True
        if action == "ignore":
            return True
        if action == "refuse":
            session.send(suback(packet.packet_id, b"\x80" * len(packet.filters())))
            return True
        if action == "garbage":
            session.send(b"\xf0\x05\x01\x02")
            return True
        return False


class Lifecycle(RuleBasedStateMachine):
    """Random sequences of the public operations on one connector, a chaotic broker
    underneath; after each step the promises hold."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[Any] = []
        self.previous_hook = threading.excepthook
        threading.excepthook = self.errors.append
        self.fake: ReactiveBroker | None = None
        self.conn: MqttConnector[Any] | None = None
        self.sub: Any = None
        self.readers: list[Any] = []
        self.writers: list[Any] = []
        self.closed = False
        self.count = 0

    @initialize(seed=st.integers(0, 2**32 - 1))
    def setup(self, seed: int) -> None:
        self.fake = ReactiveBroker(Chaos(seed), echo=True).start()
        self.conn = MqttConnector(
            MqttConnectorOptions(
                host="127.0.0.1",
                port=self.fake.port,
                client_id=f"adv-{id(self)}",
                keep_alive=1,
                inbound_capacity=2,
                outbound_capacity=4,
                reconnect_initial_backoff=0.01,
                reconnect_max_backoff=0.05,
                reconnect_attempt_ceiling=3,
                connect_timeout=1,
            ),
            BytesCodec(),
        )
        self.sub = self.conn.subscribe_health()

    @property
    def c(self) -> MqttConnector[Any]:
        assert self.conn is not None
        return self.conn

    @rule()
    def start(self) -> None:
        result = self.c.start()
        assert not self.closed or isinstance(result.failure(), ConnectorDown)

    @rule(qos=st.sampled_from([MqttQos.AT_MOST_ONCE, MqttQos.AT_LEAST_ONCE]))
    def add_reader(self, qos: MqttQos) -> None:
        self.count += 1
        result = self.c.create_reader(
            ChannelDescriptor(f"r{self.count}", MqttRouting(topic="c/t", qos=qos))
        )
        if self.closed:
            assert isinstance(result.failure(), ConnectorDown)
        elif not isinstance(result, Failure):
            self.readers.append(result.unwrap())

    @rule(qos=st.sampled_from([MqttQos.AT_MOST_ONCE, MqttQos.AT_LEAST_ONCE]))
    def add_writer(self, qos: MqttQos) -> None:
        self.count += 1
        result = self.c.create_writer(
            ChannelDescriptor(f"w{self.count}", MqttRouting(topic="c/t", qos=qos))
        )
        if not isinstance(result, Failure):
            self.writers.append(result.unwrap())

    @precondition(lambda self: self.writers)
    @rule(index=st.integers(0, 50), wait=st.booleans())
    def send(self, index: int, wait: bool) -> None:
        writer = self.writers[index % len(self.writers)]
        result = writer.send(b"m")
        if not isinstance(result, Failure) and wait:
            result.unwrap().delivery.wait(0.2)  # never raises, never blocks past 0.2 s

    @precondition(lambda self: self.readers)
    @rule(index=st.integers(0, 50), timeout=st.sampled_from([0, 0.05, math.nan, -1]))
    def recv(self, index: int, timeout: float) -> None:
        reader = self.readers[index % len(self.readers)]
        started = time.monotonic()
        result = reader.recv(timeout)
        assert time.monotonic() - started < 5
        if math.isnan(timeout) or timeout < 0:
            assert isinstance(result.failure(), ConfigurationError)

    @precondition(lambda self: self.readers)
    @rule(index=st.integers(0, 50))
    def close_reader(self, index: int) -> None:
        self.readers.pop(index % len(self.readers)).close()

    @rule()
    def broker_hangs_up(self) -> None:
        assert self.fake is not None
        if self.fake.sessions:  # not a precondition: it depends on the broker's threads
            self.fake.sessions[-1].close()

    @rule(timeout=st.sampled_from([0, 0.2, 1.0, math.nan]))
    def close(self, timeout: float) -> None:
        started = time.monotonic()
        result = self.c.close(timeout)
        assert time.monotonic() - started < 15
        if math.isnan(timeout):
            assert isinstance(result.failure(), ConfigurationError)
            return
        self.closed = True
        assert self.c.health().kind is HealthKind.DOWN
        assert self.c.sidecar is None or not self.c.sidecar.is_alive()

    @invariant()
    def health_moves_only_along_legal_edges(self) -> None:
        if self.sub is None:
            return
        for event in iter(self.sub.try_next, None):
            assert is_legal(event.from_.kind, event.to.kind)

    @invariant()
    def no_thread_died(self) -> None:
        assert self.errors == []
        sidecar = self.conn.sidecar if self.conn is not None else None
        if sidecar is not None and not self.closed:
            assert sidecar.is_alive() or self.c.health().kind is HealthKind.DOWN

    def teardown(self) -> None:
        try:
            if self.conn is not None:
                started = time.monotonic()
                self.conn.close(0.5)
                assert time.monotonic() - started < 15
                assert self.conn.sidecar is None or not self.conn.sidecar.is_alive()
                for reader in self.readers:  # every reader learns the end
                    assert isinstance(reader.recv(None), Failure)
        finally:
            if self.fake is not None:
                self.fake.stop()
            threading.excepthook = self.previous_hook
        assert self.errors == []


Lifecycle.TestCase.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)
test_random_lifecycles_against_a_chaotic_broker_keep_every_promise = Lifecycle.TestCase


# -- any packet sequence from the broker --------------------------------------------------------

broker_packets = st.one_of(
    st.builds(  # SUBACK with any packet id and codes
        suback,
        st.integers(0, 65535),
        st.binary(min_size=0, max_size=3),
    ),
    st.builds(lambda pid: b"\x40\x02" + pid.to_bytes(2, "big"), st.integers(0, 65535)),  # PUBACK
    st.just(b"\xd0\x00"),  # PINGRESP
    st.just(b"\x20\x02\x00\x00"),  # a second CONNACK
    st.builds(  # PUBLISH at any QoS (3 is illegal), any flags
        publish,
        st.sampled_from([b"c/t", b"c/+", b"", b"$SYS/x", b"c/t\x00"]),
        st.binary(max_size=64),
        st.integers(0, 3),
        st.integers(0, 65535),
    ),
    st.binary(min_size=1, max_size=8),  # noise
)


@settings(max_examples=30, deadline=None)
@given(st.lists(broker_packets, min_size=1, max_size=8), st.booleans())
def test_any_packet_sequence_from_the_broker_keeps_every_promise(
    packets: list[bytes], hang_up: bool
) -> None:
    errors: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    try:
        with FakeBroker([CONNACK_OK, *packets], close=hang_up) as fake:
            conn: MqttConnector[Any] = MqttConnector(
                MqttConnectorOptions(
                    host="127.0.0.1",
                    port=fake.port,
                    client_id="adv-packets",
                    reconnect_initial_backoff=0.01,
                    reconnect_max_backoff=0.05,
                    reconnect_attempt_ceiling=3,
                    connect_timeout=1,
                ),
                BytesCodec(),
            )
            sub = conn.subscribe_health()
            reader: Any = conn.create_reader(
                ChannelDescriptor("r", MqttRouting(filter="c/#", qos=MqttQos.AT_LEAST_ONCE))
            ).unwrap()
            writer: Any = conn.create_writer(
                ChannelDescriptor("w", MqttRouting(topic="c/t", qos=MqttQos.AT_LEAST_ONCE))
            ).unwrap()
            conn.start().unwrap()
            sent = writer.send(b"m")
            for _ in range(3):
                started = time.monotonic()
                reader.recv(0.1)  # whatever it returns, it returns in time
                assert time.monotonic() - started < 5
            started = time.monotonic()
            conn.close(0.2)
            assert time.monotonic() - started < 10
            assert conn.sidecar is not None and not conn.sidecar.is_alive()
            if not isinstance(sent, Failure):
                assert sent.unwrap().delivery.done  # delivered or failed, never pending
            for event in iter(sub.try_next, None):
                assert is_legal(event.from_.kind, event.to.kind)
    finally:
        threading.excepthook = previous
    assert errors == []


# -- connectors dropped without close(), wherever they got to -----------------------------------


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@settings(max_examples=8, deadline=None)
@given(stage=st.sampled_from(["created", "reader only", "dead port", "up", "up with readers"]))
def test_a_connector_dropped_at_any_stage_stops_and_leaves_nothing_open(stage: str) -> None:
    with ReactiveBroker() as fake:
        gc.collect()
        before_fds = open_descriptors()
        before_threads = {t.ident for t in threading.enumerate()}
        port = free_port() if stage == "dead port" else fake.port
        conn: Any = MqttConnector(MqttConnectorOptions(host="127.0.0.1", port=port), BytesCodec())
        readers = []
        if stage != "created":
            readers.append(conn.create_reader(ChannelDescriptor("r", MqttRouting(topic="d/t"))))
        if stage in ("dead port", "up", "up with readers"):
            conn.start().unwrap()
        if stage.startswith("up"):
            deadline = time.monotonic() + 10
            while conn.health().kind is not HealthKind.UP:
                assert time.monotonic() < deadline
                time.sleep(0.005)
        if stage == "up with readers":
            readers.append(conn.create_reader(ChannelDescriptor("r2", MqttRouting(filter="#"))))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            del conn
            gc.collect()
        assert any(issubclass(w.category, ResourceWarning) for w in seen), stage
        for result in readers:  # kept by the application: each learns the end
            assert isinstance(result.unwrap().recv(None), Failure)
        deadline = time.monotonic() + 10
        while [t for t in threading.enumerate() if t.ident not in before_threads]:
            assert time.monotonic() < deadline, "the sidecar did not stop"
            time.sleep(0.01)
        del readers
        gc.collect()
        assert open_descriptors() <= before_fds, stage


# -- codecs that break their contract -------------------------------------------------------------


class Misbehaving:
    """A codec that raises, or answers with something that is not bytes."""

    format_name = "broken"

    def __init__(self, how: str) -> None:
        self.how = how

    def encode(self, value: Any) -> Any:
        if self.how == "encode raises":
            raise RuntimeError("encoder bug")
        if self.how == "encode returns str":
            return Success("not bytes")
        if self.how == "encode returns None":
            return None
        return Success(bytes(value))

    def decode(self, data: bytes) -> Any:
        if self.how == "decode raises":
            raise RuntimeError("decoder bug")
        if self.how == "decode returns None":
            return None
        return Success(data)


@pytest.mark.parametrize(
    "how",
    [
        "encode raises",
        "encode returns str",
        "encode returns None",
        "decode raises",
        "decode returns None",
    ],
)
def test_a_codec_that_breaks_its_contract_is_a_codec_error_not_a_crash(how: str) -> None:
    errors: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    try:
        with ReactiveBroker(echo=True) as fake:
            conn: Any = MqttConnector(
                MqttConnectorOptions(host="127.0.0.1", port=fake.port), Misbehaving(how)
            )
            try:
                reader = conn.create_reader(ChannelDescriptor("r", MqttRouting(topic="k/t")))
                writer = conn.create_writer(ChannelDescriptor("w", MqttRouting(topic="k/t")))
                conn.start().unwrap()
                sent = writer.unwrap().send(b"v")
                if how.startswith("encode"):
                    assert isinstance(sent, Failure) and isinstance(sent.failure(), CodecError)
                    assert "broken" in str(sent.failure())
                else:
                    got = reader.unwrap().recv(10)
                    assert isinstance(got, Failure) and isinstance(got.failure(), CodecError)
                    assert got.failure().payload == b"v"
                assert conn.health().kind is not HealthKind.DOWN  # the connector carries on
            finally:
                conn.close(1)
    finally:
        threading.excepthook = previous
    assert errors == []


# -- the health controller under any sequence of events --------------------------------------------

controller_ops = st.lists(
    st.one_of(
        st.tuples(st.just("phase"), st.sampled_from(list(Phase))),
        st.tuples(st.just("trip"), st.none()),
        st.tuples(st.just("drained"), st.none()),
        st.tuples(st.just("dropped"), st.integers(0, 2)),
        st.tuples(st.just("reader drained"), st.integers(0, 2)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(controller_ops, st.integers(1, 3))
def test_health_controller_takes_only_legal_steps_and_shows_every_loss(
    ops: list[tuple[str, Any]], threshold: int
) -> None:
    broadcaster = HealthBroadcaster(Connecting(0))
    sub = broadcaster.subscribe()
    controller = HealthController(broadcaster, threshold)
    phase = Phase.CONNECTING
    for op, arg in ops:
        lost = False
        if op == "phase":
            lost = phase is Phase.CONNECTED and arg is Phase.CONNECTING
            phase = arg
            controller.set_phase(arg, "down" if arg is Phase.DOWN else "")
        elif op == "trip":
            controller.trip_outbound()
        elif op == "drained":
            controller.outbound_drained()
        elif op == "dropped":
            controller.inbound_dropped(arg)
        else:
            controller.inbound_drained(arg)
        state = broadcaster.state
        if phase is Phase.DOWN:
            assert state.kind is HealthKind.DOWN
        if lost:  # a loss is always visible, whatever latch is set (issue 9 point 5)
            assert state.kind is HealthKind.CONNECTING, (ops, state)
    for event in iter(sub.try_next, None):
        assert is_legal(event.from_.kind, event.to.kind)


# -- a reader's queue: its descriptor tells the truth after any sequence --------------------------

queue_ops = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.integers(1, 3)),
        st.tuples(st.just("take"), st.integers(1, 4)),
        st.tuples(st.just("take one"), st.none()),
        st.tuples(st.just("unget"), st.integers(1, 3)),
        st.tuples(st.just("fail"), st.none()),
        st.tuples(st.just("interrupt"), st.none()),
        st.tuples(st.just("fileno"), st.none()),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(queue_ops, st.integers(1, 4))
def test_a_reader_queue_descriptor_is_readable_exactly_while_something_waits(
    ops: list[tuple[str, Any]], capacity: int
) -> None:
    """Readable while an item waits or the reader failed (issue 9 point 6), after any mix
    of single and batched offers and takes, put-backs, failures and interrupts."""
    queue: InboundQueue[int] = InboundQueue(capacity, lambda: None)
    fd: int | None = None
    failed = False
    taken: list[int] = []
    counter = 0
    try:
        for op, arg in ops:
            if op == "offer":
                batch = list(range(counter, counter + arg))
                counter += arg
                if arg == 1:
                    queue.offer(batch[0])
                else:
                    queue.offer_many(batch)
            elif op == "take":
                taken = queue.take_many(arg, 0)
            elif op == "take one":
                item = queue.take(0)
                taken = [] if item is None else [item]
            elif op == "unget" and taken:
                queue.unget(taken[:arg])
                taken = []
            elif op == "fail":
                queue.fail()
                failed = True
            elif op == "interrupt":
                queue.interrupt()
            elif op == "fileno":
                fd = queue.fileno()
            assert len(queue) <= max(capacity, counter)
            if fd is not None:
                readable = bool(select.select([fd], [], [], 0)[0])
                assert readable == (len(queue) > 0 or failed), (ops, len(queue), failed)
            if failed and not len(queue):
                started = time.monotonic()
                assert queue.take_many(1, None) == []  # a failed reader never blocks
                assert time.monotonic() - started < 5
    finally:
        queue.close()


# -- a broker that hangs up on some SUBSCRIBEs --------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(
    st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6, unique=True),
    st.data(),
)
def test_poison_filters_are_isolated_and_the_others_served(names: list[str], data: Any) -> None:
    """Whatever subset of filters makes the broker hang up, those readers fail with
    StackError, every other reader is subscribed, and the reconnects stay few."""
    poison = set(data.draw(st.lists(st.sampled_from(names), unique=True, min_size=1)))

    def hang_up_on_poison(session: Session, packet: Packet) -> bool:
        if packet.kind == SUBSCRIBE and {f for f, _ in packet.filters()} & poison_filters:
            session.close()
            return True
        return False

    poison_filters = {f"p/{name}" for name in poison}
    with ReactiveBroker(hang_up_on_poison) as fake:
        conn: Any = MqttConnector(
            MqttConnectorOptions(
                host="127.0.0.1",
                port=fake.port,
                reconnect_initial_backoff=0.01,
                reconnect_max_backoff=0.02,
                reconnect_attempt_ceiling=None,
            ),
            BytesCodec(),
        )
        try:
            readers = {
                name: conn.create_reader(
                    ChannelDescriptor(name, MqttRouting(topic=f"p/{name}"))
                ).unwrap()
                for name in names
            }
            conn.start().unwrap()
            for name in poison:
                failed = readers[name].recv(30)
                assert isinstance(failed, Failure) and isinstance(failed.failure(), StackError)
            deadline = time.monotonic() + 30
            while True:  # every other filter was answered by a SUBACK on the last connection
                granted = {f for p in fake.seen(SUBSCRIBE) for f, _ in p.filters()} - poison_filters
                if granted >= {f"p/{n}" for n in names} - poison_filters:
                    break
                assert time.monotonic() < deadline, (names, poison, fake.connects)
                time.sleep(0.01)
            assert fake.connects <= 1 + 2 * len(poison) + 1, (fake.connects, names, poison)
        finally:
            conn.close(1)
