"""Steps of features/wildcards.feature."""

from __future__ import annotations

import time

import pytest
from pytest_bdd import given, parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt import MqttRouting
from taktora_connector.conformance.world import PATIENCE, World, qos
from taktora_connector.domain import StackError

from .shared import (
    probe_all,
    routing_for,
    topics_in,
)


@given(
    parsers.re(
        r'a reader "(?P<reader>[^"]+)" on "(?P<name>[^"]+)" for the unprefixed filter "(?P<topic>[^"]+)" at QoS (?P<level>\d)$'
    )
)
def _unprefixed_reader(
    conformance_world: World, reader: str, name: str, topic: str, level: str
) -> None:
    conformance_world.add_reader(name, reader, MqttRouting(filter=topic, qos=qos(int(level))))


@when(parsers.re(r'"(?P<name>[^"]+)" publishes to (?P<topics>".*")$'))
def _publishes(conformance_world: World, name: str, topics: str) -> None:
    world = conformance_world
    for index, topic in enumerate(topics_in(topics)):
        writer = f"pub-{index}"
        world.add_writer(name, writer, routing_for(world, "topic", topic, 1))
    probe_all(world, name)
    for index, topic in enumerate(topics_in(topics)):
        outcome = world.send(f"pub-{index}", topic)
        assert is_successful(outcome.delivery.wait(PATIENCE))


@then(parsers.re(r'"(?P<reader>[^"]+)" receives exactly the messages of (?P<topics>".*")$'))
def _receives_exactly(conformance_world: World, reader: str, topics: str) -> None:
    expected = sorted(topics_in(topics))
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
        conformance_world.add_reader(
            name, reader, routing_for(conformance_world, "filter", filt, 1)
        )
        conformance_world.scratch.setdefault("table", {})[filt] = reader


@when(parsers.parse('"{name}" publishes once to each of these topics'))
def _publish_table(conformance_world: World, name: str, datatable: list[list[str]]) -> None:
    world = conformance_world
    probe_all(world, name)
    for index, (topic,) in enumerate(datatable[1:]):
        writer = f"table-pub-{index}"
        world.add_writer(name, writer, routing_for(world, "topic", topic, 1))
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
    probed = conformance_world.probes.get("$SYS")
    if conformance_world.broker is None and probed is not None and not probed.ok:
        pytest.skip(f"the broker publishes no $SYS topics (the kit's probe: {probed.evidence})")
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


@then(parsers.parse('receiving on "{reader}" fails with a StackError'))
def _recv_fails(conformance_world: World, reader: str) -> None:
    result = conformance_world.reader(reader).recv(PATIENCE)
    error = None if is_successful(result) else result.failure()
    assert isinstance(error, StackError), f"recv on {reader!r} returned {result}"
