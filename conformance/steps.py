"""Step definitions of the conformance kit.

Rules of this module:
- steps drive connectors only through the ports and the public MQTT values
  (``MqttRouting``, ``MqttConnectorOptions``, ``Credentials``, ``TlsOptions``)
  via the scenario's ``World``; they never reach into a connector;
- what happens on the network is read from each connector's ``FaultProxy``,
  so the same checks hold for any connector and any broker;
- steps are fixtures of the kit's pytest plugin, so a third party's run finds
  them and may override one by defining a step with the same text.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import Credentials, MqttRouting, TlsOptions
from taktora_connector.domain import (
    BackPressure,
    ChannelDescriptor,
    ConfigurationError,
    ConnectorDown,
    Degraded,
    HealthKind,
)

from .brokers import TlsMaterial
from .factory import ConnectorFactory
from .proxy import PacketType
from .world import PATIENCE, World, harness_thread, qos, wait_for

PAYLOADS: dict[str, bytes] = {
    "empty": b"",
    "binary-with-zero-bytes": bytes(range(256)) + b"\x00\x00\x00",
    "64KiB": bytes(i % 251 for i in range(65_536)),
}
KINDS = {kind.value: kind for kind in HealthKind}


@pytest.fixture
def conformance_world(
    connector_factory: ConnectorFactory, request: pytest.FixtureRequest
) -> Iterator[World]:
    """A fresh world per scenario, torn down whatever happened."""
    url = request.config.getoption("--broker-url")
    world = World(connector_factory, str(url) if url else None)
    handler = _LineCollector(world.log_lines)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # every line a connector logs is checked for secrets
    try:
        yield world
    finally:
        world.close()
        root.removeHandler(handler)
        root.setLevel(level)


class _LineCollector(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.lines.append(repr(record.msg))


# -- brokers -------------------------------------------------------------------------


@given("a broker")
def _broker(conformance_world: World) -> None:
    conformance_world.start_broker()


@given("a broker that requires a username and password")
def _auth_broker(conformance_world: World) -> None:
    # Made at run time, so no report or log of the kit can carry them by accident.
    user, password = f"user-{conformance_world.ns}", secrets.token_urlsafe(16)
    conformance_world.scratch["credentials"] = (user, password)
    conformance_world.start_broker(users={user: password})


@given("a broker with a TLS listener and a CA made at run time")
def _tls_broker(conformance_world: World) -> None:
    conformance_world.start_broker(tls=True)


# -- connectors ----------------------------------------------------------------------

_OPTION_WORDS = {
    "outbound capacity": "outbound_capacity",
    "inbound capacity": "inbound_capacity",
    "drop threshold": "inbound_drop_threshold",
}


def _options(text: str) -> dict[str, Any]:
    """'with outbound capacity 2 and at most 4 messages in flight' -> options."""
    found: dict[str, Any] = {}
    text = text.replace("with ", "")
    for part in (p.strip() for p in text.split(" and ")):
        if not part:
            continue
        if part.startswith("at most ") and "in flight" in part:
            found["max_inflight"] = int(part.split()[2])
            continue
        for words, option in _OPTION_WORDS.items():
            if part.startswith(words):
                found[option] = int(part[len(words) :].strip())
                break
        else:
            raise AssertionError(f"unknown connector option in step: {part!r}")
    return found


@given(parsers.re(r'a connector "(?P<name>[^"]+)"(?P<rest>.*)$'))
def _connector(conformance_world: World, name: str, rest: str) -> None:
    rest = rest.strip()
    if rest.startswith("with the right username"):
        user, password = conformance_world.scratch["credentials"]
        if rest.endswith("a wrong password"):
            password = "not-" + password
            conformance_world.scratch["wrong password"] = password
        conformance_world.add_connector(name, credentials=Credentials(user, password))
    elif rest == "using the bytes codec":
        conformance_world.add_connector(name, codec=BytesCodec())
    else:
        conformance_world.add_connector(name, **_options(rest))


@given(parsers.re(r'a started connector "(?P<name>[^"]+)"(?P<rest>.*)$'))
@when(parsers.re(r'a started connector "(?P<name>[^"]+)" joins$'))
def _started_connector(conformance_world: World, name: str, rest: str = "") -> None:
    rest = rest.strip()
    if rest == "using the bytes codec":
        conformance_world.add_connector(name, codec=BytesCodec())
    else:
        conformance_world.add_connector(name, **_options(rest))
    conformance_world.start(name)


@given(parsers.parse('a started TLS connector "{name}" trusting the broker\'s CA'))
def _tls_connector(conformance_world: World, name: str) -> None:
    material = conformance_world.tls_material
    assert material is not None, "the scenario has no TLS broker"
    conformance_world.add_connector(name, tls=TlsOptions(ca_pem=material.ca_pem))
    conformance_world.start(name)


@given(parsers.parse('a TLS connector "{name}" trusting another CA, giving up after 1 retry'))
def _untrusted_tls_connector(conformance_world: World, name: str) -> None:
    conformance_world.add_connector(
        name,
        tls=TlsOptions(ca_pem=TlsMaterial.other_ca_pem()),
        reconnect_attempt_ceiling=1,
        reconnect_initial_backoff=0.01,
    )


@when(parsers.parse('"{name}" starts'))
def _starts(conformance_world: World, name: str) -> None:
    conformance_world.start(name, wait_up=False)


@when(parsers.parse('"{name}" closes'))
def _closes(conformance_world: World, name: str) -> None:
    result = conformance_world.party(name).connector.close(timeout=5.0)
    assert is_successful(result), f"close() of {name!r} failed: {result}"


@then(parsers.re(r'"(?P<name>[^"]+)" reaches (?P<kind>\w+)$'))
def _reaches(conformance_world: World, name: str, kind: str) -> None:
    conformance_world.wait_health(name, KINDS[kind.lower()])


@then(parsers.parse('"{name}" reaches Down with a reason mentioning "{words}"'))
def _reaches_down_because(conformance_world: World, name: str, words: str) -> None:
    conformance_world.wait_health(name, HealthKind.DOWN, timeout=PATIENCE * 2)
    health = conformance_world.party(name).connector.health()
    reason = str(getattr(health, "reason", ""))
    assert words.lower() in reason.lower(), f"Down reason {reason!r} does not mention {words!r}"


@then(parsers.parse('"{name}" was never Up'))
def _never_up(conformance_world: World, name: str) -> None:
    kinds = [event.to.kind for event in conformance_world.health_events(name)]
    assert HealthKind.UP not in kinds, f"{name!r} went through {kinds}"


@then(parsers.re(r'"(?P<name>[^"]+)" is (?P<kind>\w+)$'))
def _is(conformance_world: World, name: str, kind: str) -> None:
    health = conformance_world.party(name).connector.health()
    assert health.kind is KINDS[kind.lower()], f"{name!r} is {health}, not {kind}"


@then(parsers.parse('"{name}" has a non-empty name'))
def _has_name(conformance_world: World, name: str) -> None:
    connector_name = conformance_world.party(name).connector.name
    assert isinstance(connector_name, str)
    assert connector_name.strip()


@then(parsers.parse('the password appears in no health reason, error or log line of "{name}"'))
def _password_hidden(conformance_world: World, name: str) -> None:
    password = conformance_world.scratch["wrong password"]
    party = conformance_world.party(name)
    seen = [repr(party.connector), str(party.connector.health())]
    seen += [repr(event) for event in conformance_world.health_events(name)]
    seen += conformance_world.log_lines
    leaked = [text.replace(password, "<PASSWORD>") for text in seen if password in text]
    assert not leaked, f"the password leaked into: {leaked[:3]}"


# -- health subscriptions ------------------------------------------------------------


@given(parsers.parse('a health subscription "{sub}" on "{name}"'))
def _health_subscription(conformance_world: World, sub: str, name: str) -> None:
    conformance_world.subscriptions[sub] = conformance_world.party(
        name
    ).connector.subscribe_health()


@when(parsers.parse('"{sub}" is emptied'))
def _emptied(conformance_world: World, sub: str) -> None:
    time.sleep(0.2)
    while conformance_world.subscriptions[sub].try_next() is not None:
        pass


def _events_settled(world: World, sub: str) -> list[Any]:
    time.sleep(0.3)  # a second event, if one were coming, would be here by now
    subscription = world.subscriptions[sub]
    found = []
    while (event := subscription.try_next()) is not None:
        found.append(event)
    return found


@then(
    parsers.re(
        r'"(?P<sub>[^"]+)" saw exactly one event, to (?P<kind>\w+)(?: mentioning "(?P<words>[^"]+)")?$'
    )
)
def _exactly_one_event(conformance_world: World, sub: str, kind: str, words: str | None) -> None:
    found = _events_settled(conformance_world, sub)
    assert [e.to.kind for e in found] == [KINDS[kind.lower()]], f"events seen: {found}"
    if words is not None:
        target = found[0].to
        assert isinstance(target, Degraded)
        assert target.reason == words, f"reason {target.reason!r}, expected {words!r}"


# -- channels ------------------------------------------------------------------------


def _routing(world: World, kind: str, name: str, level: int, retained: bool = False) -> MqttRouting:
    if kind == "filter":
        return MqttRouting(filter=world.topic(name), qos=qos(level))
    return MqttRouting(topic=world.topic(name), qos=qos(level), retained=retained)


@given(
    parsers.re(
        r'a (?P<retained>retained )?writer "(?P<writer>[^"]+)" on "(?P<name>[^"]+)" to topic "(?P<topic>[^"]+)" at QoS (?P<level>\d)$'
    )
)
def _writer(
    conformance_world: World, retained: str | None, writer: str, name: str, topic: str, level: str
) -> None:
    routing = _routing(conformance_world, "topic", topic, int(level), retained=bool(retained))
    conformance_world.add_writer(name, writer, routing)


@given(
    parsers.re(
        r'(?P<count>\d+) writers on "(?P<name>[^"]+)" to topic "(?P<topic>[^"]+)" at QoS (?P<level>\d)$'
    )
)
def _writers(conformance_world: World, count: str, name: str, topic: str, level: str) -> None:
    names = [f"w{i}" for i in range(int(count))]
    for writer in names:
        conformance_world.add_writer(
            name, writer, _routing(conformance_world, "topic", topic, int(level))
        )
    conformance_world.scratch["writers"] = names


@given(
    parsers.re(
        r'a reader "(?P<reader>[^"]+)" on "(?P<name>[^"]+)" for (?P<kind>topic|filter) "(?P<topic>[^"]+)" at QoS (?P<level>\d)$'
    )
)
@when(
    parsers.re(
        r'a reader "(?P<reader>[^"]+)" on "(?P<name>[^"]+)" for (?P<kind>topic|filter) "(?P<topic>[^"]+)" at QoS (?P<level>\d)$'
    )
)
def _reader(
    conformance_world: World, reader: str, name: str, kind: str, topic: str, level: str
) -> None:
    conformance_world.add_reader(name, reader, _routing(conformance_world, kind, topic, int(level)))


@given(
    parsers.re(
        r'a reader "(?P<reader>[^"]+)" on "(?P<name>[^"]+)" for the unprefixed filter "(?P<topic>[^"]+)" at QoS (?P<level>\d)$'
    )
)
def _unprefixed_reader(
    conformance_world: World, reader: str, name: str, topic: str, level: str
) -> None:
    conformance_world.add_reader(name, reader, MqttRouting(filter=topic, qos=qos(int(level))))


@then(parsers.parse('creating a writer and a reader on "{name}" returns Success'))
def _create_both(conformance_world: World, name: str) -> None:
    connector = conformance_world.party(name).connector
    routing = MqttRouting(topic=conformance_world.topic("port/t"))
    writer = connector.create_writer(ChannelDescriptor("port-writer", routing))
    reader = connector.create_reader(ChannelDescriptor("port-reader", routing))
    assert is_successful(writer), f"create_writer returned {writer}"
    assert is_successful(reader), f"create_reader returned {reader}"
    conformance_world.scratch["channels"] = (writer.unwrap(), reader.unwrap())


@then(
    parsers.parse(
        'creating a writer with a routing that has only a filter on "{name}" returns a ConfigurationError'
    )
)
def _writer_needs_topic(conformance_world: World, name: str) -> None:
    connector = conformance_world.party(name).connector
    routing = MqttRouting(filter=conformance_world.topic("only/+"))
    result = connector.create_writer(ChannelDescriptor("filter-writer", routing))
    assert isinstance(result.failure(), ConfigurationError), f"got {result}"


@then(parsers.parse('the channels of "{name}" refuse with ConnectorDown'))
def _channels_refuse(conformance_world: World, name: str) -> None:
    writer, reader = conformance_world.scratch["channels"]
    assert isinstance(writer.send("late").failure(), ConnectorDown)
    assert isinstance(reader.try_recv().failure(), ConnectorDown)
    assert isinstance(reader.recv(0.1).failure(), ConnectorDown)


@then(
    parsers.re(
        r'creating a writer to topic "(?P<topic>[^"]+)" on "(?P<name>[^"]+)" returns a ConfigurationError mentioning "(?P<words>[^"]+)"$'
    )
)
def _writer_refused(conformance_world: World, topic: str, name: str, words: str) -> None:
    connector = conformance_world.party(name).connector
    result = connector.create_writer(ChannelDescriptor("refused", MqttRouting(topic=topic)))
    error = result.failure() if not is_successful(result) else None
    assert isinstance(error, ConfigurationError), f"got {result}"
    assert words in str(error)


@then(
    parsers.re(
        r'creating a reader for topic "(?P<topic>[^"]+)" on "(?P<name>[^"]+)" returns Success$'
    )
)
def _reader_allowed(conformance_world: World, topic: str, name: str) -> None:
    connector = conformance_world.party(name).connector
    result = connector.create_reader(ChannelDescriptor("dollar-reader", MqttRouting(topic=topic)))
    assert is_successful(result), f"got {result}"


@then(
    parsers.re(
        r'the routing (?P<kind>topic|filter) "(?P<value>.*)" at QoS (?P<level>\d) is refused with a message containing "(?P<words>[^"]+)"$'
    )
)
def _routing_refused(kind: str, value: str, level: str, words: str) -> None:
    value = value.encode().decode("unicode_escape")
    with pytest.raises(ConfigurationError) as caught:
        MqttRouting(**{kind: value, "qos": int(level)})  # type: ignore[arg-type]
    assert words in str(caught.value), f"{caught.value} does not contain {words!r}"


# -- sending -------------------------------------------------------------------------


def _value(text: str) -> Any:
    return json.loads(text)


@when(parsers.re(r'"(?P<reader>[^"]+)" is subscribed, probed through "(?P<writer>[^"]+)"$'))
def _probed(conformance_world: World, reader: str, writer: str) -> None:
    conformance_world.probe(reader, writer)


@when(
    parsers.re(
        r'"(?P<writer>[^"]+)" sends the value (?P<value>.+?)(?P<delivered> and it is delivered)?$'
    )
)
@then(
    parsers.re(
        r'"(?P<writer>[^"]+)" sends the value (?P<value>.+?)(?P<delivered> and it is delivered)$'
    )
)
def _send_value(conformance_world: World, writer: str, value: str, delivered: str | None) -> None:
    outcome = conformance_world.send(writer, _value(value))
    if delivered:
        result = outcome.delivery.wait(PATIENCE)
        assert is_successful(result), f"delivery failed: {result}"


@when(parsers.parse('"{writer}" sends the {payload} payload'))
def _send_payload(conformance_world: World, writer: str, payload: str) -> None:
    conformance_world.send(writer, PAYLOADS[payload])


@when(parsers.re(r'"(?P<writer>[^"]+)" sends (?P<count>\d+) values and they are delivered$'))
def _send_many(conformance_world: World, writer: str, count: str) -> None:
    outcomes = [conformance_world.send(writer, i) for i in range(int(count))]
    for outcome in outcomes:
        result = outcome.delivery.wait(PATIENCE)
        assert is_successful(result), f"delivery failed: {result}"


@when(parsers.parse('"{writer}" sends values until one is refused'))
def _send_until_refused(conformance_world: World, writer: str) -> None:
    """Fill the stalled path: send until refused, let the connector move what it can,
    then send until refused again, so the bridge is full for good."""
    handle = conformance_world.writer(writer)
    payload: Any = "x" * 4096
    accepted = 0
    for _ in range(2):
        for _ in range(10_000):
            result = handle.send(payload)
            if not is_successful(result):
                conformance_world.refusal = result.failure()
                break
            accepted += 1
            time.sleep(0.0005)  # give a connector's sidecar the chance to move messages on
        else:
            raise AssertionError("10,000 sends were all accepted: the outbound path is not bounded")
        time.sleep(0.3)
    conformance_world.accepted_before_refusal = accepted


@then(parsers.parse("the refusal was BackPressure within {limit:d} sends"))
def _refusal_was_backpressure(conformance_world: World, limit: int) -> None:
    assert isinstance(conformance_world.refusal, BackPressure), (
        f"refused with {conformance_world.refusal!r}"
    )
    assert conformance_world.accepted_before_refusal <= limit


@then(
    parsers.parse("at least {low:d} and at most {high:d} values were accepted before BackPressure")
)
def _accepted_between(conformance_world: World, low: int, high: int) -> None:
    assert isinstance(conformance_world.refusal, BackPressure), (
        f"refused with {conformance_world.refusal!r}"
    )
    assert low <= conformance_world.accepted_before_refusal <= high, (
        f"{conformance_world.accepted_before_refusal} accepted"
    )


@then(parsers.parse('"{writer}" sending again is refused with BackPressure'))
def _refused_again(conformance_world: World, writer: str) -> None:
    result = conformance_world.writer(writer).send("again")
    assert isinstance(result.failure() if not is_successful(result) else None, BackPressure), str(
        result
    )


@then(parsers.parse('the last delivery of "{writer}" is still pending after {seconds:g} seconds'))
def _still_pending(conformance_world: World, writer: str, seconds: float) -> None:
    time.sleep(seconds)
    assert not conformance_world.outcomes[writer][-1].delivery.done


@then(parsers.parse('the last delivery of "{writer}" completes successfully'))
def _completes(conformance_world: World, writer: str) -> None:
    result = conformance_world.outcomes[writer][-1].delivery.wait(PATIENCE)
    assert is_successful(result), f"delivery: {result}"


# -- receiving -----------------------------------------------------------------------


@then(
    parsers.re(
        r'"(?P<reader>[^"]+)" receives the value (?P<value>.+?)(?P<rest> with topic .*| at QoS \d| flagged as retained)?$'
    )
)
def _receives_value(conformance_world: World, reader: str, value: str, rest: str | None) -> None:
    envelope = conformance_world.receive(reader)
    assert envelope.value == _value(value), f"received {envelope.value!r}"
    rest = (rest or "").strip()
    if rest.startswith("with topic"):
        topic = rest.split('"')[1]
        level = int(rest.split("QoS ")[1].split()[0])
        retained = rest.endswith("true")
        assert envelope.routing.topic == conformance_world.topic(topic), envelope.routing
        assert int(envelope.routing.qos) == level, envelope.routing
        assert envelope.routing.retained is retained, envelope.routing
    elif rest.startswith("at QoS"):
        assert int(envelope.routing.qos) == int(rest.split()[-1]), envelope.routing
    elif rest == "flagged as retained":
        assert envelope.routing.retained is True, envelope.routing


@then(parsers.parse('"{reader}" receives exactly the {payload} payload at QoS {level:d}'))
def _receives_payload(conformance_world: World, reader: str, payload: str, level: int) -> None:
    envelope = conformance_world.receive(reader)
    assert envelope.payload == PAYLOADS[payload]
    assert envelope.value == PAYLOADS[payload]
    assert int(envelope.routing.qos) == level
    assert conformance_world.drain(reader) == [], "more than one copy arrived"


def _topics_in(text: str) -> list[str]:
    return [part for index, part in enumerate(text.split('"')) if index % 2 == 1]


@when(parsers.re(r'"(?P<name>[^"]+)" publishes to (?P<topics>".*")$'))
def _publishes(conformance_world: World, name: str, topics: str) -> None:
    world = conformance_world
    for index, topic in enumerate(_topics_in(topics)):
        writer = f"pub-{index}"
        world.add_writer(name, writer, _routing(world, "topic", topic, 1))
    _probe_all(world, name)
    for index, topic in enumerate(_topics_in(topics)):
        outcome = world.send(f"pub-{index}", topic)
        assert is_successful(outcome.delivery.wait(PATIENCE))


def _probe_all(world: World, party: str) -> None:
    """Every reader of the scenario is subscribed before the real messages go out."""
    for reader in world.readers:
        world.probe(reader, _probe_writer(world, party, reader))
    world.drain_all(quiet=0.2)  # probes for one reader may have matched others


def _probe_writer(world: World, party: str, reader: str) -> str:
    """A writer to a topic that ``reader`` matches (its own topic or filter, filled in)."""
    filt = world.reader(reader).descriptor.routing.subscription_filter()
    levels = ["p" if level == "+" else level for level in filt.split("/")]
    if levels[-1] == "#":
        levels[-1] = "p"
    name = f"probe-{reader}"
    if name not in world.writers:
        world.add_writer(party, name, MqttRouting(topic="/".join(levels), qos=qos(1)))
    return name


@then(parsers.re(r'"(?P<reader>[^"]+)" receives exactly the messages of (?P<topics>".*")$'))
def _receives_exactly(conformance_world: World, reader: str, topics: str) -> None:
    expected = sorted(_topics_in(topics))
    pending = conformance_world.scratch.setdefault("arrived", {})
    if reader not in pending:  # one collection for all readers of the scenario
        pending.update(conformance_world.drain_all(quiet=0.3))
    got = pending.pop(reader)
    assert sorted(conformance_world.local(str(e.routing.topic)) for e in got) == expected
    assert sorted(e.value for e in got) == expected


@given(parsers.parse('readers on "{name}" for these filters'))
def _readers_table(conformance_world: World, name: str, datatable: list[list[str]]) -> None:
    for index, (filt,) in enumerate(datatable[1:]):
        reader = f"table-{index}"
        conformance_world.add_reader(name, reader, _routing(conformance_world, "filter", filt, 1))
        conformance_world.scratch.setdefault("table", {})[filt] = reader


@when(parsers.parse('"{name}" publishes once to each of these topics'))
def _publish_table(conformance_world: World, name: str, datatable: list[list[str]]) -> None:
    world = conformance_world
    _probe_all(world, name)
    for index, (topic,) in enumerate(datatable[1:]):
        writer = f"table-pub-{index}"
        world.add_writer(name, writer, _routing(world, "topic", topic, 1))
        outcome = world.send(writer, topic)
        assert is_successful(outcome.delivery.wait(PATIENCE))


@then("the readers received exactly")
def _table_received(conformance_world: World, datatable: list[list[str]]) -> None:
    world = conformance_world
    readers = world.scratch["table"]
    arrived = world.drain_all(quiet=0.3)
    problems = []
    for filt, topics in datatable[1:]:
        expected = sorted(t.strip() for t in topics.split(",") if t.strip())
        got = sorted(world.local(str(e.routing.topic)) for e in arrived[readers[filt]])
        if got != expected:
            problems.append(f"{filt}: expected {expected}, got {got}")
    assert not problems, "\n".join(problems)


@when("the broker publishes a message on a $SYS topic")
def _broker_publishes_sys(conformance_world: World) -> None:
    if conformance_world.broker is not None:
        time.sleep(0.3)  # let the subscriptions reach the broker
        conformance_world.broker.publish("$SYS/broker/kit-probe", b"kit")


@then(parsers.parse('"{reader}" receives a message whose topic starts with "{prefix}"'))
def _receives_prefixed(conformance_world: World, reader: str, prefix: str) -> None:
    timeout = PATIENCE if conformance_world.broker is not None else 15.0
    result = conformance_world.reader(reader).recv(timeout)
    assert is_successful(result), f"recv on {reader!r} failed: {result}"
    envelope = result.unwrap()
    if envelope is None and conformance_world.broker is None:
        pytest.skip(f"the external broker published no {prefix} message within {timeout:g} s")
    assert envelope is not None, f"{reader!r} received nothing within {timeout:g} s"
    assert str(envelope.routing.topic).startswith(prefix), envelope.routing


@then(parsers.parse('"{reader}" received no message whose topic starts with "{prefix}"'))
def _received_none_prefixed(conformance_world: World, reader: str, prefix: str) -> None:
    got = conformance_world.drain(reader, quiet=0.3)
    leaked = [e.routing.topic for e in got if str(e.routing.topic).startswith(prefix)]
    assert not leaked, f"{reader!r} received {leaked}"


@when(parsers.parse('"{reader}" is drained'))
def _drained(conformance_world: World, reader: str) -> None:
    conformance_world.received[reader] = conformance_world.drain(reader)


@then(parsers.re(r'within (?P<seconds>\d+) seconds "(?P<reader>[^"]+)" dropped (?P<count>\d+)$'))
def _dropped_within(conformance_world: World, seconds: str, reader: str, count: str) -> None:
    handle = conformance_world.reader(reader)
    wait_for(
        lambda: handle.dropped >= int(count),
        float(seconds),
        f"{count} drops (have {handle.dropped})",
    )
    time.sleep(0.2)
    assert handle.dropped == int(count), f"{handle.dropped} dropped"


@then(parsers.parse('after {seconds:g} seconds "{reader}" yields exactly {held:d} messages'))
def _holds(conformance_world: World, seconds: float, reader: str, held: int) -> None:
    time.sleep(seconds)  # the broker has them all: let them reach the reader's bridge
    got = conformance_world.drain(reader, quiet=0.2)
    assert len(got) == held, f"{len(got)} messages waited in a bridge of capacity {held}"


@then(
    parsers.re(
        r'"(?P<reader>[^"]+)" received (?P<got>\d+) values and dropped (?P<dropped>\d+), accounting for all (?P<total>\d+)$'
    )
)
def _accounted(conformance_world: World, reader: str, got: str, dropped: str, total: str) -> None:
    received = conformance_world.received[reader]
    handle = conformance_world.reader(reader)
    assert len(received) == int(got), f"received {len(received)}"
    assert handle.dropped == int(dropped)
    assert len(received) + handle.dropped == int(total)
    assert [e.value for e in received] == list(range(int(got))), "the oldest must be kept"


# -- the wire ------------------------------------------------------------------------


def _stall(world: World, name: str, direction: str | None) -> None:
    proxy = world.party(name).proxy
    assert proxy is not None, f"{name!r} does not go through the fault proxy"
    proxy.pause(direction)


@when(parsers.parse('the path from the broker to "{name}" stalls'))
def _stall_in(conformance_world: World, name: str) -> None:
    _stall(conformance_world, name, "in")


@when(parsers.parse('the path between "{name}" and the broker stalls'))
def _stall_both(conformance_world: World, name: str) -> None:
    _stall(conformance_world, name, None)


@when(
    parsers.re(
        r'the path (?:from the broker to|between) "(?P<name>[^"]+)"(?: and the broker)? is released$'
    )
)
def _release(conformance_world: World, name: str) -> None:
    proxy = conformance_world.party(name).proxy
    assert proxy is not None
    proxy.resume()


@then(parsers.parse('the wire carries a QoS 1 PUBLISH from "{name}"'))
def _wire_qos1(conformance_world: World, name: str) -> None:
    party = conformance_world.party(name)
    wait_for(
        lambda: any(p.qos == 1 for p in party.wire(PacketType.PUBLISH)), PATIENCE, "a QoS 1 PUBLISH"
    )


@then(parsers.parse('the wire carried PUBLISH packets at QoS {level:d} from "{name}"'))
def _wire_qos(conformance_world: World, level: int, name: str) -> None:
    packets = conformance_world.party(name).wire(PacketType.PUBLISH)
    assert packets, "no PUBLISH seen"
    assert {p.qos for p in packets} == {level}


@then(parsers.parse('the wire carried a retained PUBLISH from "{name}"'))
def _wire_retained(conformance_world: World, name: str) -> None:
    assert any(p.retain for p in conformance_world.party(name).wire(PacketType.PUBLISH))


@then(parsers.parse('the wire carried a CONNECT with a username and password from "{name}"'))
def _wire_credentials(conformance_world: World, name: str) -> None:
    packets = conformance_world.party(name).wire(PacketType.CONNECT)
    assert packets, "no CONNECT seen"
    assert all(p.has_credentials() for p in packets)


@then(
    parsers.parse(
        'after {seconds:g} seconds the wire carried exactly {count:d} CONNECT from "{name}"'
    )
)
def _wire_connect_count(conformance_world: World, seconds: float, count: int, name: str) -> None:
    time.sleep(seconds)
    assert len(conformance_world.party(name).wire(PacketType.CONNECT)) == count


@then(
    parsers.parse(
        'the wire carried a CONNECT from "{name}" with protocol name "{protocol}" and level {level:d}'
    )
)
def _wire_protocol(conformance_world: World, name: str, protocol: str, level: int) -> None:
    packets = conformance_world.party(name).wire(PacketType.CONNECT)
    assert packets, "no CONNECT seen"
    assert {p.protocol() for p in packets} == {(protocol, level)}


# -- threads and the port surface ----------------------------------------------------

_SOCKET_MODULES = ("socket", "_socket", "ssl", "_ssl", "select", "selectors")


def _is_socket_call(function: Any) -> bool:
    owner = getattr(function, "__self__", None)
    if owner is not None and not inspect.ismodule(owner):
        return type(owner).__module__ in _SOCKET_MODULES
    return getattr(function, "__module__", None) in _SOCKET_MODULES


@then(
    parsers.parse(
        'sending {count:d} values through "{writer}" and receiving them on "{reader}" makes no socket call on this thread'
    )
)
def _no_io_on_caller(conformance_world: World, count: int, writer: str, reader: str) -> None:
    handle_w, handle_r = conformance_world.writer(writer), conformance_world.reader(reader)
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and _is_socket_call(arg):
            calls.append(getattr(arg, "__qualname__", repr(arg)))

    outcomes = []
    received = 0
    sys.setprofile(profile)
    try:
        for i in range(count):
            result = handle_w.send(i)
            if is_successful(result):
                outcomes.append(result.unwrap())
        deadline = time.monotonic() + PATIENCE
        while received < len(outcomes) and time.monotonic() < deadline:
            got = handle_r.try_recv()
            if is_successful(got) and got.unwrap() is not None:
                received += 1
            else:
                time.sleep(0.001)
    finally:
        sys.setprofile(None)
    assert outcomes, "no send was accepted"
    assert received == len(outcomes), f"received {received} of {len(outcomes)}"
    assert not calls, f"socket calls on the application thread: {sorted(set(calls))}"


_FORBIDDEN = ("paho", "asyncio", "amqtt")


def _leaks(value: Any, where: str, seen: set[int]) -> list[str]:
    if id(value) in seen or value is None or isinstance(value, str | bytes | int | float | bool):
        return []
    seen.add(id(value))
    problems = []
    for klass in type(value).__mro__:
        if klass.__module__.split(".")[0] in _FORBIDDEN:
            problems.append(f"{where} is a {klass.__module__}.{klass.__qualname__}")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            problems += _leaks(getattr(value, item.name), f"{where}.{item.name}", seen)
    for name in dir(type(value)):
        if name.startswith("_"):
            continue
        member = getattr(type(value), name, None)
        if callable(member):
            try:
                signature = str(inspect.signature(member))
            except (TypeError, ValueError):
                continue
            if any(bad in signature for bad in _FORBIDDEN):
                problems.append(f"{where}.{name}{signature} names a forbidden type")
    return problems


@then(parsers.parse('nothing the ports returned for "{name}" is a paho or asyncio type'))
def _no_leaks(conformance_world: World, name: str) -> None:
    world = conformance_world
    connector = world.party(name).connector
    subscription = connector.subscribe_health()
    sample = world.send(next(iter(world.writers)), "leak-check")
    sample.delivery.wait(PATIENCE)
    envelope = world.receive(next(iter(world.readers)))
    values = {
        "connector": connector,
        "health": connector.health(),
        "subscription": subscription,
        "writer": next(iter(world.writers.values())),
        "reader": next(iter(world.readers.values())),
        "send outcome": sample,
        "delivery": sample.delivery,
        "envelope": envelope,
    }
    problems: list[str] = []
    seen: set[int] = set()
    for where, value in values.items():
        problems += _leaks(value, where, seen)
    subscription.close()
    assert not problems, "\n".join(problems)


@given("the threads running now are noted")
def _note_threads(conformance_world: World) -> None:
    conformance_world.threads_before = {t.ident or 0 for t in threading.enumerate()}


@then(parsers.parse("within {seconds:g} seconds no thread started since is alive"))
def _no_new_threads(conformance_world: World, seconds: float) -> None:
    def leftovers() -> list[str]:
        return [
            t.name
            for t in threading.enumerate()
            if (t.ident or 0) not in conformance_world.threads_before
            and t.is_alive()
            and not harness_thread(t)
        ]

    deadline = time.monotonic() + seconds
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not leftovers(), f"threads still alive after close: {leftovers()}"


# -- concurrency ---------------------------------------------------------------------


@when(
    parsers.parse(
        "{threads:d} threads each send {count:d} numbered values through those writers, retrying on BackPressure"
    )
)
def _concurrent_send(conformance_world: World, threads: int, count: int) -> None:
    world = conformance_world
    writers = [world.writer(name) for name in world.scratch["writers"]]
    accepted: list[tuple[int, int, str]] = []  # (writer index, sequence number, value)
    lock = threading.Lock()
    errors: list[str] = []

    def run(thread: int) -> None:
        for n in range(count):
            index = (thread + n) % len(writers)
            value = f"t{thread}-{n}"
            deadline = time.monotonic() + PATIENCE
            while True:
                result = writers[index].send(value)
                if is_successful(result):
                    with lock:
                        accepted.append((index, result.unwrap().sequence_number, value))
                    break
                if not isinstance(result.failure(), BackPressure) or time.monotonic() > deadline:
                    errors.append(f"{value}: {result}")
                    return
                time.sleep(0.0005)

    workers = [
        threading.Thread(target=run, args=(i,), name=f"kit-sender-{i}") for i in range(threads)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    world.scratch["workers"] = (workers, started)
    world.scratch["accepted"] = accepted
    world.scratch["errors"] = errors


@then(parsers.parse("all threads finish within {seconds:g} seconds"))
def _threads_finish(conformance_world: World, seconds: float) -> None:
    workers, started = conformance_world.scratch["workers"]
    for worker in workers:
        worker.join(max(0.0, started + seconds - time.monotonic()))
    assert not any(w.is_alive() for w in workers), "senders still running: deadlock or livelock"
    assert not conformance_world.scratch["errors"], conformance_world.scratch["errors"][:5]


@then("every accepted value was published on the wire exactly once")
def _exactly_once_on_wire(conformance_world: World) -> None:
    world = conformance_world
    accepted = world.scratch["accepted"]
    for name in world.scratch["writers"]:
        assert is_successful(world.writer(name).flush(PATIENCE * 3))
    party = world.party(world.writer_owner[world.scratch["writers"][0]])
    expected = sorted(json.dumps(value) for _, _, value in accepted)
    wire = sorted(p.payload().decode() for p in party.wire(PacketType.PUBLISH))
    assert len(wire) == len(expected), f"{len(wire)} PUBLISH packets for {len(expected)} accepted"
    assert wire == expected


@then("the sequence numbers of each writer strictly increase")
def _sequences(conformance_world: World) -> None:
    per_writer: dict[int, list[int]] = {}
    for index, sequence, _ in conformance_world.scratch["accepted"]:
        per_writer.setdefault(index, []).append(sequence)
    for sequences in per_writer.values():
        ordered = sorted(sequences)
        assert ordered == list(range(len(ordered))), "sequence numbers skip or repeat"
