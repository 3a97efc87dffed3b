"""Steps of features/shared_subscriptions.feature: an optional capability.

A connector claims it by listing ``"shared-subscriptions"`` in its ``capabilities``
(``claimed_capabilities``). The scenario of the branch that does not apply to the
connector is reported as not applicable (``NOT_APPLICABLE``), never NOT RUN: it makes
no PARTIAL. Claimed, the group must split the messages; not claimed, a share group
must be refused with ``Failure(ConfigurationError)`` and nothing subscribed.

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

import time
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.conformance.brokers import MosquittoBroker, mosquitto_binary
from taktora_connector.conformance.factory import claimed_capabilities as claimed_capabilities_of
from taktora_connector.conformance.proxy import PacketType, WirePacket
from taktora_connector.conformance.reports import NOT_APPLICABLE
from taktora_connector.conformance.world import PATIENCE, World, qos
from taktora_connector.domain import ChannelDescriptor, ConfigurationError, StackError

from .shared import probe_all, routing_for

AMQTT_HAS_NO_SHARED_SUBSCRIPTIONS = (
    "the kit's embedded broker (amqtt) does not support shared subscriptions (it accepts "
    "a SUBSCRIBE to $share/<group>/<filter> and delivers nothing to it) and mosquitto, "
    "which the kit would start instead, is not installed; install mosquitto or run the kit "
    "with --broker-url against a broker that has them (mosquitto, EMQX, HiveMQ, VerneMQ)"
)


def claimed_capabilities(world: World) -> frozenset[str]:
    """What the connector under test claims: read once by the kit's session before any
    scenario, or here (``factory.claimed_capabilities``) when the session did not run."""
    if world.claims is not None:
        return world.claims
    claims = claimed_capabilities_of(world.factory)
    assert not isinstance(claims, str), claims
    world.claims = claims
    return claims


@given(parsers.re(r'the connector under test claims "(?P<name>[^"]+)"$'))
def _claims(conformance_world: World, name: str) -> None:
    if name not in claimed_capabilities(conformance_world):
        pytest.skip(
            f"{NOT_APPLICABLE}the connector does not claim {name!r} (its capabilities: "
            f"{sorted(claimed_capabilities(conformance_world)) or 'none'}); its refusal is "
            "checked instead"
        )


@given(parsers.re(r'the connector under test does not claim "(?P<name>[^"]+)"$'))
def _does_not_claim(conformance_world: World, name: str) -> None:
    if name in claimed_capabilities(conformance_world):
        pytest.skip(
            f"{NOT_APPLICABLE}the connector claims {name!r}: that it works is checked instead"
        )


@when(
    parsers.re(
        r'"(?P<name>[^"]+)" is asked for a reader of filter "(?P<filt>[^"]+)" in share group "(?P<group>[^"]+)"$'
    )
)
def _asked_for_shared_reader(conformance_world: World, name: str, filt: str, group: str) -> None:
    world = conformance_world
    routing = MqttRouting(filter=world.topic(filt), share_group=group, qos=MqttQos.AT_LEAST_ONCE)
    world.scratch["shared filter"] = world.topic(filt)
    result = world.party(name).connector.create_reader(ChannelDescriptor("shared", routing))
    world.scratch["shared reader"] = result
    if is_successful(result):
        world.cleanups.append(result.unwrap().close)


@then("the reader is refused with ConfigurationError")
def _refused(conformance_world: World) -> None:
    result = conformance_world.scratch["shared reader"]
    assert not is_successful(result), (
        "a connector that does not claim shared subscriptions accepted a reader with a share "
        "group: it must refuse it with Failure(ConfigurationError), or claim "
        '"shared-subscriptions" in its capabilities (docs/connector-contract.md)'
    )
    error = result.failure()
    assert isinstance(error, ConfigurationError), (
        f"a share group was refused with {type(error).__name__}: {error}; the contract "
        "asks for ConfigurationError"
    )
    assert str(error).strip(), "the ConfigurationError says nothing of what was wrong"


def _filters(packet: WirePacket) -> list[str]:
    """The topic filters of a SUBSCRIBE (after its packet identifier)."""
    body, offset, found = packet.body, 2, []
    while offset + 2 <= len(body):
        length = int.from_bytes(body[offset : offset + 2], "big")
        found.append(body[offset + 2 : offset + 2 + length].decode("utf-8", "replace"))
        offset += 2 + length + 1
    return found


@then(parsers.re(r'"(?P<name>[^"]+)" subscribed to nothing at the broker$'))
def _nothing_subscribed(conformance_world: World, name: str) -> None:
    world = conformance_world
    time.sleep(0.5)  # a SUBSCRIBE the connector makes later than the refusal shows by now
    wanted = world.scratch["shared filter"]
    sent = [f for p in world.party(name).wire(PacketType.SUBSCRIBE) for f in _filters(p)]
    plain = [f for f in sent if f == wanted or f.endswith("/" + wanted)]
    assert not plain, (
        f"the connector refused the share group yet subscribed {plain} at the broker: "
        "every member would get every message"
    )


@given("a broker that supports shared subscriptions")
def _sharing_broker(conformance_world: World, request: pytest.FixtureRequest) -> None:
    world = conformance_world
    if world.broker_url is not None or world.managed == "mosquitto":
        probed = world.probes.get("shared subscriptions")
        if probed is not None and not probed.ok:
            pytest.skip(
                f"the broker has no shared subscriptions (the kit's probe: {probed.evidence})"
            )
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
