"""Steps of features/connector_port.feature."""

from __future__ import annotations

import time
from typing import Any

from pytest_bdd import parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt import MqttRouting
from taktora_connector.conformance.world import PATIENCE, World, wait_for
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
    ConnectorDown,
    HealthKind,
)

from .shared import (
    KINDS,
    illegal_events,
)


@then(parsers.re(r'"(?P<name>[^"]+)" is (?P<kind>\w+)$'))
def _is(conformance_world: World, name: str, kind: str) -> None:
    health = conformance_world.party(name).connector.health()
    assert health.kind is KINDS[kind.lower()], f"{name!r} is {health}, not {kind}"


@then(parsers.parse('"{name}" has a non-empty name'))
def _has_name(conformance_world: World, name: str) -> None:
    connector_name = conformance_world.party(name).connector.name
    assert isinstance(connector_name, str)
    assert connector_name.strip()


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
    _refuse_with_connector_down(writer, reader)


@then(parsers.parse('the writer "{writer}" and the reader "{reader}" refuse with ConnectorDown'))
def _named_channels_refuse(conformance_world: World, writer: str, reader: str) -> None:
    _refuse_with_connector_down(conformance_world.writer(writer), conformance_world.reader(reader))


def _refuse_with_connector_down(writer: Any, reader: Any) -> None:
    assert isinstance(writer.send("late").failure(), ConnectorDown)
    assert isinstance(reader.try_recv().failure(), ConnectorDown)
    assert isinstance(reader.recv(0.1).failure(), ConnectorDown)


@then(
    parsers.parse(
        'since the broker went away "{name}" went to Degraded, then Connecting, and last to Up'
    )
)
def _loss_sequence(conformance_world: World, name: str) -> None:
    start = conformance_world.scratch[f"events before loss {name}"]
    wait_for(  # health() may say Up a moment before the event reaches subscribers
        lambda: [e.to.kind for e in conformance_world.health_events(name)][-1:] == [HealthKind.UP],
        PATIENCE,
        f"the event to Up of {name!r}",
    )
    events = conformance_world.health_events(name)[start:]
    kinds = [event.to.kind for event in events]
    seen = f"health since the loss went to {[k.value for k in kinds]}"
    assert kinds[:2] == [HealthKind.DEGRADED, HealthKind.CONNECTING], seen
    assert kinds[-1:] == [HealthKind.UP], seen
    everything = conformance_world.health_events(name)
    assert not illegal_events(everything), illegal_events(everything)
    # HealthEvent.at is monotonic-clock nanoseconds, in order.
    stamps = [event.at for event in everything]
    low, high = conformance_world.began_monotonic_ns - 10**9, time.monotonic_ns() + 10**9
    assert all(low <= at <= high for at in stamps), f"HealthEvent.at not monotonic ns: {stamps}"
    assert stamps == sorted(stamps), f"HealthEvent.at goes back in time: {stamps}"


@when(parsers.parse('"{name}" is entered as a context manager'))
def _entered(conformance_world: World, name: str) -> None:
    connector = conformance_world.party(name).connector
    entered = connector.__enter__()
    assert entered is connector, f"__enter__ of {name!r} returned {entered!r}, not the connector"


@when(parsers.parse('the with block of "{name}" ends'))
def _with_ends(conformance_world: World, name: str) -> None:
    conformance_world.party(name).connector.__exit__(None, None, None)


@when(parsers.parse('the writer "{writer}" is closed'))
def _writer_closed(conformance_world: World, writer: str) -> None:
    conformance_world.writer(writer).close()


@then(parsers.parse('sending through "{writer}" is refused'))
def _sending_refused(conformance_world: World, writer: str) -> None:
    result = conformance_world.writer(writer).send("after close")
    assert not is_successful(result), f"a closed writer accepted a value: {result}"
