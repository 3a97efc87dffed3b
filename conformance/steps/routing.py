"""Steps of features/routing.feature."""

from __future__ import annotations

import time

import pytest
from pytest_bdd import parsers, then
from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt import MqttRouting
from taktora_connector.conformance.proxy import PacketType
from taktora_connector.conformance.world import World
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
)

from .shared import probe_writer, routing_for, value_of


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


@then(
    parsers.re(
        r'a reader on "(?P<name>[^"]+)" with the routing (?P<kind>topic|filter) "(?P<value>.*)" at QoS (?P<level>\d) receives what is published to a topic it matches$'
    )
)
def _valid_neighbour(
    conformance_world: World, name: str, kind: str, value: str, level: str
) -> None:
    world = conformance_world
    world.add_reader(name, "valid", routing_for(world, kind, value, int(level)))
    # Publishes through "name" to a topic the reader matches, until one arrives.
    world.probe("valid", probe_writer(world, name, "valid"))


@then(
    parsers.parse(
        'the last send through "{writer}" and the last message "{reader}" received carry wall-clock timestamps'
    )
)
def _wall_clock(conformance_world: World, writer: str, reader: str) -> None:
    """SendOutcome.timestamp_ns and RecvEnvelope.timestamp_ns are time.time_ns() values
    (Unix epoch), taken when the send was accepted and when the message arrived."""
    sent = conformance_world.outcomes[writer][-1].timestamp_ns
    got = conformance_world.received[reader][-1].timestamp_ns
    low, high = conformance_world.began_ns - 10**9, time.time_ns() + 10**9
    assert low <= sent <= high, f"send timestamp_ns {sent} is not wall-clock ns of this run"
    assert low <= got <= high, f"received timestamp_ns {got} is not wall-clock ns of this run"


@then(
    parsers.re(
        r'the broker delivers the value (?P<value>.+) to "(?P<reader>[^"]+)" at QoS (?P<level>\d), and its envelope says so$'
    )
)
def _delivered_qos(conformance_world: World, value: str, reader: str, level: str) -> None:
    """The envelope's QoS is the one on the wire (the lower of the publisher's and the
    subscription's, MQTT-3.8.4-6), never the reader's routing copied."""
    world = conformance_world
    envelope = world.receive(reader)
    assert envelope.value == value_of(value), f"received {envelope.value!r}"
    owner = world.reader_owner[reader]
    payload = world.party(owner).codec.encode(value_of(value)).unwrap()
    topic = str(envelope.routing.topic)
    on_wire = [
        p.qos
        for p in world.party(owner).wire(PacketType.PUBLISH, "in")
        if p.topic() == topic and p.payload() == payload
    ]
    assert on_wire, f"no PUBLISH of {value} on {topic} reached {owner!r} through the proxy"
    assert on_wire[-1] == int(level), f"the broker delivered it at QoS {on_wire[-1]}"
    assert int(envelope.routing.qos) == on_wire[-1], (
        f"{reader!r}'s envelope says QoS {int(envelope.routing.qos)}, but the message was "
        f"delivered at QoS {on_wire[-1]}: a received routing carries the QoS as delivered"
    )
