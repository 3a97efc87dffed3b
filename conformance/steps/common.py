"""Steps that several feature files use: brokers, connectors, lifecycle, health,
channels, sending and receiving, stalling the path."""

from __future__ import annotations

import re
import selectors
import time
from typing import Any

from pytest_bdd import given, parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import Credentials
from taktora_connector.conformance.world import PATIENCE, World, is_probe, timed_send, wait_for
from taktora_connector.domain import (
    ConnectorDown,
    Degraded,
    HealthKind,
)

from .shared import (
    DROPPED_REASON,
    KINDS,
    REASONS,
    events_settled,
    illegal_events,
    options_from,
    routing_for,
    stall,
    value_of,
)


@given("a broker")
def _broker(conformance_world: World) -> None:
    conformance_world.start_broker()


@given(parsers.re(r'a connector "(?P<name>[^"]+)"(?P<rest>.*)$'))
@when(parsers.re(r'a connector "(?P<name>[^"]+)"(?P<rest> with the persistent session of .*)$'))
def _connector(conformance_world: World, name: str, rest: str) -> None:
    rest = rest.strip()
    if rest == "with a persistent session":
        conformance_world.add_connector(name, clean_session=False)
    elif rest.startswith("with the persistent session of "):
        # The same client id as the named connector: the broker resumes its session.
        other = conformance_world.party(rest.split('"')[1])
        conformance_world.add_connector(name, clean_session=False, client_id=other.client_id)
    elif rest.startswith("with the right username"):
        user, password = conformance_world.scratch["credentials"]
        if rest.endswith("a wrong password"):
            password = "not-" + password
            conformance_world.scratch["wrong password"] = password
        conformance_world.add_connector(name, credentials=Credentials(user, password))
    elif rest == "using the bytes codec":
        conformance_world.add_connector(name, codec=BytesCodec())
    else:
        conformance_world.add_connector(name, **options_from(rest))


@given(parsers.re(r'a started connector "(?P<name>[^"]+)"(?P<rest>.*)$'))
@when(parsers.re(r'a started connector "(?P<name>[^"]+)" joins$'))
def _started_connector(conformance_world: World, name: str, rest: str = "") -> None:
    rest = rest.strip()
    if rest == "using the bytes codec":
        conformance_world.add_connector(name, codec=BytesCodec())
    else:
        conformance_world.add_connector(name, **options_from(rest))
    conformance_world.start(name)


@when(parsers.parse('"{name}" starts'))
def _starts(conformance_world: World, name: str) -> None:
    conformance_world.start(name, wait_up=False)


@when(parsers.parse('"{name}" closes'))
def _closes(conformance_world: World, name: str) -> None:
    result = conformance_world.party(name).connector.close(timeout=5.0)
    assert is_successful(result), f"close() of {name!r} failed: {result}"
    conformance_world.settle_closed(name)


@then(parsers.re(r'"(?P<name>[^"]+)" reaches (?P<kind>\w+)$'))
def _reaches(conformance_world: World, name: str, kind: str) -> None:
    conformance_world.wait_health(name, KINDS[kind.lower()])


@then(parsers.parse('"{name}" reaches Down with a reason about {topic}'))
def _reaches_down_because(conformance_world: World, name: str, topic: str) -> None:
    conformance_world.wait_health(name, HealthKind.DOWN, timeout=PATIENCE * 2)
    health = conformance_world.party(name).connector.health()
    reason = str(getattr(health, "reason", ""))
    pattern = REASONS[topic]
    assert re.search(pattern, reason, re.IGNORECASE), (
        f"Down reason {reason!r} does not match /{pattern}/i ({topic})"
    )


@given(parsers.parse('a health subscription "{sub}" on "{name}"'))
def _health_subscription(conformance_world: World, sub: str, name: str) -> None:
    conformance_world.subscriptions[sub] = conformance_world.party(
        name
    ).connector.subscribe_health()


@then(parsers.re(r'"(?P<sub>[^"]+)" saw exactly one event, to (?P<kind>\w+)$'))
def _exactly_one_event(conformance_world: World, sub: str, kind: str) -> None:
    found = events_settled(conformance_world, sub)
    assert [e.to.kind for e in found] == [KINDS[kind.lower()]], f"events seen: {found}"
    assert not illegal_events(found), illegal_events(found)


@then(parsers.re(r'"(?P<sub>[^"]+)" saw exactly one event, from (?P<start>\w+) to (?P<kind>\w+)$'))
def _exactly_one_edge(conformance_world: World, sub: str, start: str, kind: str) -> None:
    found = events_settled(conformance_world, sub)
    edges = [(e.from_.kind.value, e.to.kind.value) for e in found]
    assert edges == [(KINDS[start.lower()].value, KINDS[kind.lower()].value)], (
        f"events seen: {edges}, expected exactly the edge {start} -> {kind}"
    )


@then(
    parsers.parse(
        '"{sub}" saw exactly one event, to Degraded saying it dropped at least {threshold:d} inbound frames'
    )
)
def _exactly_one_drop_event(conformance_world: World, sub: str, threshold: int) -> None:
    found = events_settled(conformance_world, sub)
    assert [e.to.kind for e in found] == [HealthKind.DEGRADED], f"events seen: {found}"
    target = found[0].to
    assert isinstance(target, Degraded)
    match = re.search(DROPPED_REASON, target.reason)
    assert match, f"reason {target.reason!r} does not match /{DROPPED_REASON}/"
    assert int(match.group(1)) >= threshold, f"reason {target.reason!r}: N below {threshold}"


@given(
    parsers.re(
        r'a (?P<retained>retained )?writer "(?P<writer>[^"]+)" on "(?P<name>[^"]+)" to topic "(?P<topic>[^"]+)" at QoS (?P<level>\d)$'
    )
)
def _writer(
    conformance_world: World, retained: str | None, writer: str, name: str, topic: str, level: str
) -> None:
    routing = routing_for(conformance_world, "topic", topic, int(level), retained=bool(retained))
    conformance_world.add_writer(name, writer, routing)


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
    conformance_world.add_reader(
        name, reader, routing_for(conformance_world, kind, topic, int(level))
    )


@given(parsers.re(r'"(?P<reader>[^"]+)" is subscribed, probed through "(?P<writer>[^"]+)"$'))
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
    outcome = conformance_world.send(writer, value_of(value))
    if delivered:
        result = outcome.delivery.wait(PATIENCE)
        assert is_successful(result), f"delivery failed: {result}"


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
            result = timed_send(handle, payload, writer)
            if not is_successful(result):
                conformance_world.refusal = result.failure()
                break
            accepted += 1
            time.sleep(0.0005)  # give a connector's sidecar the chance to move messages on
        else:
            raise AssertionError("10,000 sends were all accepted: the outbound path is not bounded")
        time.sleep(0.3)
    conformance_world.accepted_before_refusal = accepted


@then(
    parsers.re(
        r'"(?P<reader>[^"]+)" receives the value (?P<value>.+?)(?P<rest> with topic .*| at QoS \d| flagged as retained)?$'
    )
)
def _receives_value(conformance_world: World, reader: str, value: str, rest: str | None) -> None:
    envelope = conformance_world.receive(reader)
    assert envelope.value == value_of(value), f"received {envelope.value!r}"
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


@when(parsers.parse('the path between "{name}" and the broker stalls'))
def _stall_both(conformance_world: World, name: str) -> None:
    stall(conformance_world, name, None)


@when(
    parsers.re(
        r'the path (?:from the broker to|between) "(?P<name>[^"]+)"(?: and the broker)? is released$'
    )
)
def _release(conformance_world: World, name: str) -> None:
    proxy = conformance_world.party(name).proxy
    assert proxy is not None
    proxy.resume()


# -- the broker going away and coming back (a connection loss, then an outage) ------------


@when(parsers.parse('the broker goes away for "{name}"'))
def _broker_goes_away(conformance_world: World, name: str) -> None:
    proxy = conformance_world.party(name).proxy
    assert proxy is not None, f"{name!r} does not go through the fault proxy"
    # Health events from here on are the ones the loss caused.
    conformance_world.scratch[f"events before loss {name}"] = len(
        conformance_world.health_events(name)
    )
    proxy.outage()


@then(parsers.parse('"{name}" tries to reconnect'))
def _tries_to_reconnect(conformance_world: World, name: str) -> None:
    proxy = conformance_world.party(name).proxy
    assert proxy is not None
    wait_for(lambda: proxy.refused >= 1, PATIENCE, f"{name!r} to try to reconnect")


@then(
    parsers.re(
        r'"(?P<name>[^"]+)" made exactly (?P<count>\d+) connection attempts while the broker was away, and no more$'
    )
)
def _attempts_while_away(conformance_world: World, name: str, count: str) -> None:
    """API.md: Down after more than ``reconnect_attempt_ceiling`` consecutive failed
    attempts (ceiling 2: the third failure). Each attempt is one TCP connection the
    kit's proxy accepts and closes at once during the outage."""
    proxy = conformance_world.party(name).proxy
    assert proxy is not None
    time.sleep(1.0)  # an attempt after Down would be here by now (backoff is at most 0.5 s)
    made = proxy.refused
    assert made == int(count), (
        f"{name!r} made {made} connection attempts while the broker was away before it "
        f"stayed Down; with reconnect_attempt_ceiling={int(count) - 1} it must make exactly "
        f"{count} (Down after more than the ceiling's failed attempts)"
    )


@when(parsers.parse('the broker comes back for "{name}"'))
def _broker_comes_back(conformance_world: World, name: str) -> None:
    proxy = conformance_world.party(name).proxy
    assert proxy is not None
    proxy.restore()


# -- batches of sends and their deliveries ------------------------------------------------


@when(parsers.parse('"{writer}" sends {count:d} values without waiting'))
def _send_batch(conformance_world: World, writer: str, count: int) -> None:
    batch = [conformance_world.send(writer, i) for i in range(count)]
    conformance_world.scratch[f"batch {writer}"] = batch


@then(parsers.parse('every delivery of "{writer}" completes successfully'))
def _batch_delivered(conformance_world: World, writer: str) -> None:
    for index, outcome in enumerate(conformance_world.scratch[f"batch {writer}"]):
        result = outcome.delivery.wait(PATIENCE)
        assert is_successful(result), f"delivery of value {index}: {result}"


@then(parsers.parse('every delivery of "{writer}" fails with ConnectorDown'))
def _batch_failed(conformance_world: World, writer: str) -> None:
    for index, outcome in enumerate(conformance_world.scratch[f"batch {writer}"]):
        result = outcome.delivery.wait(PATIENCE)
        error = None if is_successful(result) else result.failure()
        assert isinstance(error, ConnectorDown), (
            f"delivery of value {index}: {result}, expected Failure(ConnectorDown)"
        )


@then(parsers.parse('"{reader}" receives the values {first:d} to {last:d}, each at least once'))
def _receives_range(conformance_world: World, reader: str, first: int, last: int) -> None:
    expected = set(range(first, last + 1))
    seen: list[Any] = []
    deadline = time.monotonic() + PATIENCE
    while not expected <= set(seen) and time.monotonic() < deadline:
        result = conformance_world.reader(reader).recv(max(0.0, deadline - time.monotonic()))
        assert is_successful(result), f"recv on {reader!r} failed: {result}"
        envelope = result.unwrap()
        if envelope is not None:
            seen.append(envelope.value)
    missing = sorted(expected - set(seen))
    assert not missing, f"{reader!r} never received {missing} (received {seen})"
    stray = sorted({repr(v) for v in seen if v not in expected and not is_probe(v)})
    assert not stray, f"{reader!r} received values nobody sent in this step: {stray}"


# -- readers in selectors ------------------------------------------------------------------


@when(parsers.parse('"{reader}" is registered with a selector'))
def _register_selector(conformance_world: World, reader: str) -> None:
    selector = selectors.DefaultSelector()
    conformance_world.cleanups.append(selector.close)
    handle = conformance_world.reader(reader)
    try:
        selector.register(handle, selectors.EVENT_READ)  # uses handle.fileno()
    except (OSError, ValueError, TypeError) as err:
        raise AssertionError(f"{reader!r} cannot be registered with a selector: {err!r}") from None
    conformance_world.scratch[f"selector {reader}"] = selector


def _selected(world: World, reader: str, timeout: float) -> bool:
    selector: selectors.BaseSelector = world.scratch[f"selector {reader}"]
    handle = world.reader(reader)
    return any(key.fileobj is handle for key, _ in selector.select(timeout))


@then(parsers.parse('the selector finds "{reader}" readable'))
def _selector_readable(conformance_world: World, reader: str) -> None:
    assert _selected(conformance_world, reader, PATIENCE), (
        f"{reader!r} was not readable within {PATIENCE:g} s though something waits for it"
    )


@then(parsers.parse('the selector finds "{reader}" not readable'))
def _selector_not_readable(conformance_world: World, reader: str) -> None:
    assert not _selected(conformance_world, reader, 0.2), (
        f"{reader!r} is readable though nothing waits for it"
    )


@given(parsers.parse('the broker refuses subscriptions to "{filt}" from "{name}"'))
def _refuses_subscriptions(conformance_world: World, filt: str, name: str) -> None:
    proxy = conformance_world.party(name).proxy
    assert proxy is not None, f"{name!r} does not go through the fault proxy"
    proxy.refuse_subscriptions({conformance_world.topic(filt)})


@then(parsers.parse('"{reader}" receives one message'))
def _receives_one(conformance_world: World, reader: str) -> None:
    conformance_world.receive(reader)
