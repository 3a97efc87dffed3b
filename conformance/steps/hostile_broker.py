"""Steps of features/hostile_broker.feature and features/connack_refusals.feature:
the kit's proxy sends a connector what no broker may send, and the kit checks that
the connector closes the connection (MQTT-4.8.0-1), delivers and acknowledges
nothing of it, and shows the loss in its health; or, for a refused CONNACK, that it
ends the connection itself and reaches what the contract says."""

from __future__ import annotations

import time
from typing import Any

from pytest_bdd import given, parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt.protocol.packets import remaining_length
from taktora_connector.conformance.proxy import Close, FaultProxy, PacketType, WirePacket
from taktora_connector.conformance.world import PATIENCE, World, wait_for
from taktora_connector.domain import HealthKind

from .client_statements import topic_bytes

#: The packet identifier of every QoS 1 PUBLISH the hostile broker makes up.
HOSTILE_ID = 4242
#: Its payload, the JSON codec's bytes of the value "hostile": a careless connector
#: that delivers it hands the reader exactly that value.
HOSTILE_PAYLOAD = b'"hostile"'


def _proxy(world: World, name: str) -> FaultProxy:
    proxy = world.party(name).proxy
    assert proxy is not None, f"{name!r} does not go through the kit's proxy"
    return proxy


def _publish(topic: bytes, first: int, packet_id: int | None) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if packet_id is not None:
        body += packet_id.to_bytes(2, "big")
    body += HOSTILE_PAYLOAD
    return bytes((first,)) + remaining_length(len(body)) + body


def _arm(world: World, name: str) -> None:
    """Remember what came before the fault; once it went out, a failure is the
    statement's (``World.judging``, set by the caller)."""
    world.scratch["events before fault"] = len(world.health_events(name))
    world.scratch["closes before fault"] = len(_proxy(world, name).closes)


def _inject_now(world: World, name: str, raw: bytes) -> None:
    """Into the connection that carries the connector's subscriptions (a connector may
    open others: the newest is not always its session's)."""
    proxy = _proxy(world, name)
    subscribed = proxy.seen(PacketType.SUBSCRIBE, "out")
    assert subscribed, f"{name!r} never subscribed: no connection to play the hostile broker on"
    _arm(world, name)
    before = len(proxy.injections)
    proxy.send_now(raw, connection=subscribed[-1].connection)
    wait_for(lambda: len(proxy.injections) > before, PATIENCE, "the kit's proxy to inject")
    world.judging = True


def _namespaced(world: World, topic: str) -> bytes:
    return topic_bytes(world.topic(topic)) if topic else b""


@given(
    parsers.re(
        r'the broker sends "(?P<name>[^"]+)" a QoS 1 PUBLISH on "(?P<topic>[^"]*)" before '
        r"its CONNACK$"
    )
)
def _publish_before_connack(conformance_world: World, name: str, topic: str) -> None:
    """Armed before the connector starts: its first connection gets it. Judging starts
    once it went out (``_closes_itself``): a connector that never connects is not
    judged on it."""
    world = conformance_world
    proxy = _proxy(world, name)
    world.scratch["events before fault"] = 0
    proxy.send_before(PacketType.CONNACK, _publish(_namespaced(world, topic), 0x32, HOSTILE_ID))


@when(
    parsers.re(
        r'the broker sends "(?P<name>[^"]+)" a (?P<what>QoS 1 PUBLISH|PUBLISH with QoS 3|QoS 0 '
        r"PUBLISH with DUP set|QoS 1 PUBLISH with packet identifier 0) on "
        r'(?:"(?P<topic>[^"]*)"|the empty topic name)$'
    )
)
def _bad_publish(conformance_world: World, name: str, what: str, topic: str | None) -> None:
    world = conformance_world
    raw_topic = _namespaced(world, topic) if topic else b""
    first, packet_id = {
        "QoS 1 PUBLISH": (0x32, HOSTILE_ID),
        "PUBLISH with QoS 3": (0x36, HOSTILE_ID),
        "QoS 0 PUBLISH with DUP set": (0x38, None),
        "QoS 1 PUBLISH with packet identifier 0": (0x32, 0),
    }[what]
    _inject_now(world, name, _publish(raw_topic, first, packet_id))


@when(parsers.re(r'the broker sends "(?P<name>[^"]+)" the bytes "(?P<hex>[0-9a-f ]+)", .+$'))
def _bad_bytes(conformance_world: World, name: str, hex: str) -> None:
    _inject_now(conformance_world, name, bytes.fromhex(hex))


@when(
    parsers.parse(
        'the broker answers the next SUBSCRIBE of "{name}" with a SUBACK without return codes'
    )
)
def _short_suback(conformance_world: World, name: str) -> None:
    world = conformance_world
    proxy = _proxy(world, name)
    _arm(world, name)

    def once(packet: WirePacket) -> bytes | None:
        proxy.rewrite(PacketType.SUBACK, None)  # the next one only
        return b"\x90\x02" + packet.body[:2]

    proxy.rewrite(PacketType.SUBACK, once)


def _fault_connection(world: World, name: str) -> int:
    """The connection the hostile broker's bytes went to."""
    proxy = _proxy(world, name)
    if proxy.injections:
        return proxy.injections[-1][0]
    return max((p.connection for p in proxy.all_packets()), default=0)


@then(parsers.parse('"{name}" closes that connection itself'))
def _closes_itself(conformance_world: World, name: str) -> None:
    world = conformance_world
    proxy = _proxy(world, name)
    wait_for(lambda: proxy.injections, PATIENCE, "the hostile broker's bytes to go out")
    world.judging = True  # they went out: from here on a failure is the statement's
    number = _fault_connection(world, name)

    def closed() -> Close | None:
        return next((c for c in proxy.closes if c.connection == number), None)

    wait_for(closed, PATIENCE, f"{name!r} to close connection {number} after the violation")
    close = closed()
    assert close is not None
    assert close.by == "client", (
        f"connection {number} was closed by the {close.by}, not by {name!r}: a client "
        "that meets a protocol violation closes the connection (MQTT-4.8.0-1)"
    )


@then(parsers.parse('"{reader}" receives nothing of it, and "{name}" sent no PUBACK for it'))
def _nothing_of_it(conformance_world: World, reader: str, name: str) -> None:
    world = conformance_world
    handle = world.reader(reader)
    got: list[Any] = []
    deadline = time.monotonic() + 0.3  # "nothing more": nothing within 0.2 to 0.5 s
    while time.monotonic() < deadline:
        result = handle.recv(0.05)
        if not is_successful(result):
            continue  # a reader may report the loss; what matters is what it delivers
        envelope = result.unwrap()
        if envelope is not None:
            got.append(envelope.value)
    assert "hostile" not in got, (
        f"{reader!r} received the value the hostile broker made up ({got}): what breaks the "
        "protocol is refused, never delivered"
    )
    number = _fault_connection(world, name)
    acks = [
        p.packet_id()
        for p in world.party(name).wire(PacketType.PUBACK, "out")
        if p.connection == number
    ]
    made_up = [i for i in acks if i in (HOSTILE_ID, 0)]
    assert not made_up, (
        f"{name!r} sent a PUBACK for the packet the hostile broker made up (identifier "
        f"{made_up[0]}): what was refused is not acknowledged"
    )


@then(parsers.parse('the health of "{name}" shows the loss'))
def _health_shows_the_loss(conformance_world: World, name: str) -> None:
    """After the fault, health leaves ``Up`` (the connection it was Up on is gone)."""
    world = conformance_world
    since = world.scratch.get("events before fault", 0)

    def left_up() -> bool:
        return any(e.to.kind is not HealthKind.UP for e in world.health_events(name)[since:])

    wait_for(left_up, PATIENCE, f"{name!r}'s health to show the closed connection")


@then(parsers.parse('"{name}" was never Up on that connection'))
def _never_up_on_it(conformance_world: World, name: str) -> None:
    """No ``Up`` before the connector closed the connection that got the PUBLISH
    before its CONNACK (it may be Up on a later one)."""
    world = conformance_world
    proxy = _proxy(world, name)
    number = _fault_connection(world, name)
    closed = next(c for c in proxy.closes if c.connection == number)
    ups = [
        e
        for e in world.health_events(name)
        if e.to.kind is HealthKind.UP and e.at / 1e9 < closed.at
    ]
    assert not ups, (
        f"{name!r} went Up before it closed connection {number}, whose first packet from the "
        "broker was no CONNACK (MQTT-3.2.0-1)"
    )


# -- CONNACK refusals and a trickling broker -----------------------------------------------


@given(
    parsers.parse('the broker refuses every CONNECT of "{name}" with CONNACK return code {code:d}')
)
def _refuse_connects(conformance_world: World, name: str, code: int) -> None:
    world = conformance_world
    proxy = _proxy(world, name)
    world.judging = True
    proxy.rewrite(PacketType.CONNACK, lambda packet: b"\x20\x02\x00" + bytes((code,)))


@then(parsers.parse('"{name}" closes each refused connection itself, and is never Up'))
def _closes_refused(conformance_world: World, name: str) -> None:
    world = conformance_world
    proxy = _proxy(world, name)
    wait_for(lambda: proxy.injections, PATIENCE, f"a refused CONNACK to reach {name!r}")

    def refused_and_open() -> list[int]:
        ended = {c.connection for c in proxy.closes}
        return [n for n, _, _ in proxy.injections if n not in ended]

    wait_for(
        lambda: not refused_and_open(),
        PATIENCE,
        f"{name!r} to close every connection refused by CONNACK",
    )
    by_broker = [
        c
        for c in proxy.closes
        if c.by != "client" and c.connection in {n for n, _, _ in proxy.injections}
    ]
    assert not by_broker, (
        f"refused connection {by_broker[0].connection} was closed by the {by_broker[0].by}, "
        f"not by {name!r}: a refused connection is over, the client ends it"
    )
    ups = [e for e in world.health_events(name) if e.to.kind is HealthKind.UP]
    assert not ups, f"{name!r} reached Up though every CONNECT was refused: {ups[0]}"


@then(
    parsers.parse('"{name}" reaches Down, after {seconds:g} seconds with exactly {count:d} CONNECT')
)
def _down_without_retry(conformance_world: World, name: str, seconds: float, count: int) -> None:
    world = conformance_world
    world.wait_health(name, HealthKind.DOWN)
    time.sleep(seconds)
    connects = world.party(name).wire(PacketType.CONNECT)
    assert len(connects) == count, (
        f"{name!r} sent {len(connects)} CONNECT packets; refused credentials are Down at once, "
        f"with no second attempt"
    )


@given(parsers.parse('the broker\'s bytes reach "{name}" one at a time'))
def _trickle(conformance_world: World, name: str) -> None:
    _proxy(conformance_world, name).trickle()
