"""Steps of features/shared_subscriptions.feature.

The kit's embedded broker, amqtt, has no shared subscriptions (it accepts
``$share/...`` and delivers nothing to it), so without ``--broker-url`` this
scenario runs on a mosquitto the kit starts for it, and is NOT RUN, with that
reason, where mosquitto is not installed. A broker that refuses the SUBSCRIBE
(a SUBACK failure code on the wire, and the reader reports ``StackError``)
makes it NOT RUN too; a connector that fails the reader by itself fails it.
Only the members' and the watcher's messages are judged, never how the broker
spreads them over the group (MQTT does not say).
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt import MqttRouting
from taktora_connector.conformance.brokers import MosquittoBroker, mosquitto_binary
from taktora_connector.conformance.proxy import PacketType
from taktora_connector.conformance.world import PATIENCE, World, qos
from taktora_connector.domain import StackError

from .shared import probe_all, routing_for

AMQTT_HAS_NO_SHARED_SUBSCRIPTIONS = (
    "the kit's embedded broker (amqtt) does not support shared subscriptions (it accepts "
    "a SUBSCRIBE to $share/<group>/<filter> and delivers nothing to it) and mosquitto, "
    "which the kit would start instead, is not installed; install mosquitto or run the kit "
    "with --broker-url against a broker that has them (mosquitto, EMQX, HiveMQ, VerneMQ)"
)


@given("a broker that supports shared subscriptions")
def _sharing_broker(conformance_world: World, request: pytest.FixtureRequest) -> None:
    world = conformance_world
    if world.broker_url is not None or world.managed == "mosquitto":
        world.start_broker()
        return
    if mosquitto_binary() is None:
        pytest.skip(AMQTT_HAS_NO_SHARED_SUBSCRIPTIONS)
    broker = MosquittoBroker().start()
    request.addfinalizer(broker.close)
    world.host, world.port = "127.0.0.1", broker.port
    world.log_lines.append(
        f"shared subscriptions: this scenario runs on mosquitto at {broker.url}, "
        "started by the kit (its embedded amqtt has none)"
    )


@given(
    parsers.re(
        r'a reader "(?P<reader>[^"]+)" on "(?P<name>[^"]+)" for filter "(?P<filt>[^"]+)" in share group "(?P<group>[^"]+)" at QoS (?P<level>\d)$'
    )
)
def _shared_reader(
    conformance_world: World, reader: str, name: str, filt: str, group: str, level: str
) -> None:
    routing = MqttRouting(
        filter=conformance_world.topic(filt), share_group=group, qos=qos(int(level))
    )
    conformance_world.add_reader(name, reader, routing)


@when(
    parsers.re(
        r'"(?P<name>[^"]+)" publishes (?P<count>\d+) numbered messages to "(?P<topic>[^"]+)"$'
    )
)
def _publishes_numbered(conformance_world: World, name: str, count: str, topic: str) -> None:
    world = conformance_world
    try:
        probe_all(world, name)
    except AssertionError:
        # NOT RUN only when the broker itself said no (a SUBACK failure code on the
        # wire): a connector that fails the reader on its own fails the scenario.
        if _broker_refused_a_subscription(world):
            for reader_name, reader in world.readers.items():
                result = reader.try_recv()
                if not is_successful(result) and isinstance(result.failure(), StackError):
                    pytest.skip(
                        f"the broker refused the shared subscription of {reader_name!r} "
                        f"(SUBACK 0x80 on the wire): {result.failure()}"
                    )
        raise
    world.add_writer(name, "numbered", routing_for(world, "topic", topic, 1))
    outcomes = [world.send("numbered", n) for n in range(int(count))]
    for outcome in outcomes:
        assert is_successful(outcome.delivery.wait(PATIENCE))
    world.scratch["numbered"] = int(count)
    world.scratch["numbered arrivals"] = world.drain_all(quiet=0.5)


def _broker_refused_a_subscription(world: World) -> bool:
    return any(
        0x80 in packet.body[2:]
        for party in world.parties.values()
        for packet in party.wire(PacketType.SUBACK, "in")
    )


def _numbers(world: World, *readers: str) -> list[Any]:
    arrived = world.scratch["numbered arrivals"]
    return sorted(e.value for name in readers for e in arrived[name] if e.value != "probe")


@then(
    parsers.re(
        r'"(?P<first>[^"]+)" and "(?P<second>[^"]+)" together received each numbered message exactly once$'
    )
)
def _together_once(conformance_world: World, first: str, second: str) -> None:
    expected = list(range(conformance_world.scratch["numbered"]))
    got = _numbers(conformance_world, first, second)
    assert got == expected, f"the group received {got}, expected each of {expected} once"


@then(parsers.re(r'"(?P<reader>[^"]+)" received each numbered message exactly once$'))
def _alone_once(conformance_world: World, reader: str) -> None:
    expected = list(range(conformance_world.scratch["numbered"]))
    got = _numbers(conformance_world, reader)
    assert got == expected, f"{reader!r} received {got}, expected each of {expected} once"


@then(parsers.re(r'every numbered message arrived with its topic "(?P<topic>[^"]+)"$'))
def _real_topic(conformance_world: World, topic: str) -> None:
    world = conformance_world
    for name, envelopes in world.scratch["numbered arrivals"].items():
        for envelope in envelopes:
            if envelope.value != "probe":
                shown = world.local(str(envelope.routing.topic))
                assert shown == topic, f"{name!r} got topic {shown!r}, expected {topic!r}"
