"""The kit's wire rules without a network: a good client's traffic keeps every
statement, and each statement has traffic that breaks it, and only it (or the
statements that the same bytes break by definition)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taktora_connector.adapters.mqtt.protocol.packets import (
    Connect,
    Disconnect,
    PingReq,
    PubAck,
    Publish,
    Subscribe,
    Unsubscribe,
    encode,
    remaining_length,
)
from taktora_connector.conformance.proxy import Close, PacketType, WirePacket, _length_of
from taktora_connector.conformance.statements import STATEMENTS
from taktora_connector.conformance.wire_rules import RULES, Traffic, audit

PAYLOAD = b'"value"'


def wire(direction: str, raw: bytes, connection: int = 1, at: float = 0.0) -> WirePacket:
    """One packet as the proxy records it, from its bytes."""
    length, index = _length_of(raw)
    assert length is not None
    return WirePacket(
        direction, PacketType(raw[0] >> 4), raw[0] & 0x0F, raw[index:], at, connection
    )


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes((kind << 4 | flags,)) + remaining_length(len(body)) + body


def text(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def connect_raw(flags: int, *fields: bytes, keep_alive: int = 60) -> bytes:
    body = text(b"MQTT") + b"\x04" + bytes((flags,)) + keep_alive.to_bytes(2, "big")
    return packet(1, 0, body + b"".join(fields))


CONNECT = encode(Connect("client-1", True, 60))
CONNACK = b"\x20\x02\x00\x00"


def good() -> list[tuple[str, bytes]]:
    """A correct client's life: connect, subscribe, publish both ways, unsubscribe,
    ping, disconnect."""
    return [
        ("out", CONNECT),
        ("in", CONNACK),
        ("out", encode(Subscribe(1, [("a/+/x", 1), ("b/#", 0)]))),
        ("in", b"\x90\x04\x00\x01\x01\x00"),
        ("out", encode(Publish(b"a/b/x", PAYLOAD, 1, False, False, 2))),
        ("out", encode(Publish(b"a/b/x", PAYLOAD, 0))),
        ("in", encode(PubAck(2))),
        ("in", encode(Publish(b"a/b/x", b"1", 1, False, False, 7))),
        ("in", encode(Publish(b"a/b/x", b"2", 1, False, False, 8))),
        ("out", encode(PubAck(7))),
        ("out", encode(PubAck(8))),
        ("out", encode(Unsubscribe(3, ["b/#"]))),
        ("in", b"\xb0\x02\x00\x03"),
        ("out", encode(PingReq())),
        ("in", b"\xd0\x00"),
        ("out", encode(Disconnect())),
    ]


def traffic(
    packets: list[tuple[str, bytes]],
    closes: list[Close] | None = None,
    times: list[float] | None = None,
    connection: Callable[[int], int] = lambda i: 1,
) -> Traffic:
    recorded = [
        wire(d, raw, connection(i), times[i] if times else 0.1 * i)
        for i, (d, raw) in enumerate(packets)
    ]
    if closes is None:
        closes = [Close(1, "client", 0.1 * len(packets))]
    return Traffic(recorded, closes, frozenset({PAYLOAD}), until=0.1 * len(packets))


def failed(found: Traffic) -> set[str]:
    return {s for s, f in audit(found).items() if f.problems}


def test_every_rule_is_a_statement_of_the_registry_that_the_wire_can_show() -> None:
    assert set(RULES) <= set(STATEMENTS)
    assert not [s for s in RULES if STATEMENTS[s].unchecked]


def test_a_good_clients_traffic_keeps_every_statement_and_touches_most() -> None:
    found = audit(traffic(good()))
    assert not [f for f in found.values() if f.problems], found
    unseen = {s for s, f in found.items() if f.outcome == "unseen"}
    # What this traffic has no occasion for: a will, an empty client id, a keep-alive
    # as long as the connection, a resumed session.
    assert unseen == {
        "MQTT-3.1.3-7",
        "MQTT-3.1.3-10",
        "MQTT-3.1.2-23",
        "MQTT-2.3.1-3",
        "MQTT-3.3.1-1",
        "MQTT-4.4.0-1",
        "MQTT-4.3.2-1",
        "MQTT-4.6.0-1",
    }


def replace(packets: list[tuple[str, bytes]], index: int, raw: bytes) -> list[tuple[str, bytes]]:
    changed = list(packets)
    changed[index] = (changed[index][0], raw)
    return changed


def insert(
    packets: list[tuple[str, bytes]], index: int, *items: tuple[str, bytes]
) -> list[tuple[str, bytes]]:
    return packets[:index] + list(items) + packets[index:]


CONNECT_INDEX, SUBSCRIBE_INDEX, PUBLISH_INDEX, QOS0_INDEX = 0, 2, 4, 5
PUBACK7_INDEX, UNSUBSCRIBE_INDEX, PINGREQ_INDEX = 9, 11, 13
CLIENT = text(b"client-1")

#: statement -> (what breaks it, every statement those bytes break)
BREAKS: dict[str, tuple[Callable[[], list[tuple[str, bytes]]], set[str]]] = {
    "MQTT-2.2.2-1": (lambda: replace(good(), PINGREQ_INDEX, b"\xc1\x00"), set()),
    "MQTT-3.8.1-1": (
        lambda: replace(
            good(), SUBSCRIBE_INDEX, packet(8, 0, b"\x00\x01" + text(b"a/+/x") + b"\x01")
        ),
        {"MQTT-2.2.2-1"},
    ),
    "MQTT-3.10.1-1": (
        lambda: replace(good(), UNSUBSCRIBE_INDEX, packet(10, 0, b"\x00\x03" + text(b"b/#"))),
        {"MQTT-2.2.2-1"},
    ),
    "MQTT-3.1.0-1": (lambda: [("out", b"\xc0\x00"), *good()], set()),
    "MQTT-3.1.0-2": (lambda: insert(good(), 2, ("out", CONNECT)), set()),
    "MQTT-3.1.2-3": (lambda: replace(good(), 0, connect_raw(0x03, CLIENT)), set()),
    "MQTT-3.1.2-11": (
        lambda: replace(good(), 0, connect_raw(0x02, CLIENT, text(b"w/t"), text(b"bye"))),
        {"MQTT-3.1.2-18", "MQTT-3.1.3-1"},
    ),
    "MQTT-3.1.2-13": (lambda: replace(good(), 0, connect_raw(0x0A, CLIENT)), set()),
    "MQTT-3.1.2-14": (
        lambda: replace(good(), 0, connect_raw(0x1E, CLIENT, text(b"w/t"), text(b"bye"))),
        set(),
    ),
    "MQTT-3.1.2-15": (lambda: replace(good(), 0, connect_raw(0x22, CLIENT)), set()),
    "MQTT-3.1.2-18": (
        lambda: replace(good(), 0, connect_raw(0x02, CLIENT, text(b"user"))),
        {"MQTT-3.1.2-11", "MQTT-3.1.3-1"},
    ),
    "MQTT-3.1.2-19": (
        lambda: replace(good(), 0, connect_raw(0x82, CLIENT)),
        {"MQTT-3.1.3-1"},
    ),
    "MQTT-3.1.2-20": (
        lambda: replace(good(), 0, connect_raw(0x82, CLIENT, text(b"user"), text(b"pw"))),
        {"MQTT-3.1.3-1"},
    ),
    "MQTT-3.1.2-21": (
        lambda: replace(good(), 0, connect_raw(0xC2, CLIENT, text(b"user"))),
        {"MQTT-3.1.3-1"},
    ),
    "MQTT-3.1.2-22": (
        lambda: replace(good(), 0, connect_raw(0x42, CLIENT, text(b"pw"))),
        set(),
    ),
    "MQTT-3.1.3-1": (
        lambda: replace(good(), 0, connect_raw(0x02, text(b"client-1")[:-1])),
        set(),
    ),
    "MQTT-3.1.3-4": (
        lambda: replace(good(), 0, connect_raw(0x02, text(b"\xff\xfe"))),
        {"MQTT-1.5.3-1"},
    ),
    "MQTT-3.1.3-7": (lambda: replace(good(), 0, connect_raw(0x00, text(b""))), set()),
    "MQTT-3.1.3-10": (
        lambda: replace(good(), 0, connect_raw(0x06, CLIENT, text(b"w/\xff"), text(b"bye"))),
        {"MQTT-1.5.3-1"},
    ),
    "MQTT-3.1.3-11": (
        lambda: replace(good(), 0, connect_raw(0x82, CLIENT, text(b"\xc0\xaf"))),
        {"MQTT-1.5.3-1"},
    ),
    "MQTT-1.5.3-1": (
        lambda: replace(good(), QOS0_INDEX, packet(3, 0, text(b"a/\xff") + PAYLOAD)),
        {"MQTT-3.3.2-1"},
    ),
    "MQTT-1.5.3-2": (
        lambda: replace(good(), QOS0_INDEX, packet(3, 0, text(b"a/\x00") + PAYLOAD)),
        {"MQTT-4.7.3-2"},
    ),
    "MQTT-3.3.2-2": (
        lambda: replace(good(), QOS0_INDEX, packet(3, 0, text(b"a/+") + PAYLOAD)),
        {"MQTT-4.7.1-1"},
    ),
    "MQTT-4.7.1-2": (
        lambda: replace(good(), SUBSCRIBE_INDEX, encode(Subscribe(1, [("a/#/b", 1)]))),
        set(),
    ),
    "MQTT-4.7.1-3": (
        lambda: replace(good(), SUBSCRIBE_INDEX, encode(Subscribe(1, [("a+/b", 1)]))),
        set(),
    ),
    "MQTT-4.7.3-1": (
        lambda: replace(good(), QOS0_INDEX, packet(3, 0, text(b"") + PAYLOAD)),
        set(),
    ),
    "MQTT-3.8.3-1": (
        lambda: replace(
            good(), SUBSCRIBE_INDEX, packet(8, 2, b"\x00\x01" + text(b"\xff") + b"\x01")
        ),
        {"MQTT-1.5.3-1"},
    ),
    "MQTT-3.10.3-1": (
        lambda: replace(good(), UNSUBSCRIBE_INDEX, packet(10, 2, b"\x00\x03" + text(b"\xff"))),
        {"MQTT-1.5.3-1"},
    ),
    "MQTT-3.8.3-3": (lambda: replace(good(), SUBSCRIBE_INDEX, packet(8, 2, b"\x00\x01")), set()),
    "MQTT-3.10.3-2": (
        lambda: replace(good(), UNSUBSCRIBE_INDEX, packet(10, 2, b"\x00\x03")),
        set(),
    ),
    "MQTT-3.8.3-4": (
        lambda: replace(good(), SUBSCRIBE_INDEX, packet(8, 2, b"\x00\x01" + text(b"a") + b"\x03")),
        set(),
    ),
    "MQTT-3.3.1-2": (
        lambda: replace(good(), QOS0_INDEX, packet(3, 8, text(b"a/b/x") + PAYLOAD)),
        set(),
    ),
    "MQTT-3.3.1-4": (
        lambda: replace(good(), QOS0_INDEX, packet(3, 6, text(b"a/b/x") + b"\x00\x09" + PAYLOAD)),
        set(),
    ),
    "MQTT-2.3.1-1": (
        lambda: replace(good(), SUBSCRIBE_INDEX, packet(8, 2, b"\x00\x00" + text(b"a") + b"\x01")),
        set(),
    ),
    "MQTT-2.3.1-2": (
        lambda: insert(
            good(), PUBLISH_INDEX + 1, ("out", encode(Publish(b"c", PAYLOAD, 1, False, False, 2)))
        ),
        set(),
    ),
    "MQTT-2.3.1-5": (
        lambda: replace(good(), QOS0_INDEX, packet(3, 0, text(b"a/b/x") + b"\x00\x05" + PAYLOAD)),
        set(),
    ),
    "MQTT-2.3.1-6": (
        lambda: insert(good(), PUBACK7_INDEX, ("out", encode(PubAck(99)))),
        {"MQTT-4.3.2-2"},
    ),
    "MQTT-3.3.4-1": (
        lambda: [p for i, p in enumerate(good()) if i != PUBACK7_INDEX],
        {"MQTT-4.5.0-2"},
    ),
    "MQTT-4.6.0-2": (
        lambda: replace(
            replace(good(), PUBACK7_INDEX, encode(PubAck(8))), PUBACK7_INDEX + 1, encode(PubAck(7))
        ),
        set(),
    ),
    "MQTT-3.14.4-1": (lambda: [*good(), ("out", b"\xc0\x00")], set()),
    "MQTT-3.3.1-3": (
        lambda: replace(
            good(), PUBLISH_INDEX, encode(Publish(b"a/b/x", PAYLOAD, 1, False, True, 2))
        ),
        set(),
    ),
}


@pytest.mark.parametrize("statement", sorted(BREAKS))
def test_each_statement_has_traffic_that_breaks_it_and_only_it(statement: str) -> None:
    make, also = BREAKS[statement]
    assert failed(traffic(make())) == {statement} | also


def test_a_disconnect_without_the_clients_own_close_breaks_it() -> None:
    assert failed(traffic(good(), closes=[Close(1, "broker", 9.0)])) == {"MQTT-3.14.4-1"}
    assert failed(traffic(good(), closes=[])) == {"MQTT-3.14.4-1"}  # still open


def test_keep_alive_gaps_are_judged_from_the_connect() -> None:
    packets = [("out", connect_raw(0x02, CLIENT, keep_alive=1)), ("in", CONNACK)]
    ping = [("out", b"\xc0\x00"), ("in", b"\xd0\x00")]
    kept = traffic(packets + ping * 3, closes=[], times=[0, 0.01, 0.9, 0.91, 1.8, 1.81, 2.7, 2.71])
    kept.until = 3.0
    assert audit(kept)["MQTT-3.1.2-23"].outcome == "passed"
    lapsed = traffic(packets + ping, closes=[], times=[0, 0.01, 0.9, 0.91])
    lapsed.until = 3.0  # 2.1 s since the last PINGREQ
    assert audit(lapsed)["MQTT-3.1.2-23"].problems


def _resumed(second: list[tuple[str, bytes]]) -> Traffic:
    """Two PUBLISHes in flight when the kit cut connection 1; ``second`` is what the
    client sent on connection 2, a resumed session."""
    first = [
        ("out", connect_raw(0x00, CLIENT)),
        ("in", CONNACK),
        ("out", encode(Publish(b"t", b"5", 1, False, False, 5))),
        ("out", encode(Publish(b"t", b"6", 1, False, False, 6))),
    ]
    then = [("out", connect_raw(0x00, CLIENT)), ("in", b"\x20\x02\x01\x00"), *second]
    packets = first + then
    return traffic(
        packets,
        closes=[Close(1, "kit", 0.35)],
        connection=lambda i: 1 if i < len(first) else 2,
    )


RESENT_5 = ("out", encode(Publish(b"t", b"5", 1, False, True, 5)))
RESENT_6 = ("out", encode(Publish(b"t", b"6", 1, False, True, 6)))


def test_a_resumed_session_resending_right_keeps_the_resend_statements() -> None:
    found = audit(_resumed([RESENT_5, RESENT_6]))
    for statement in ("MQTT-3.3.1-1", "MQTT-2.3.1-3", "MQTT-4.4.0-1", "MQTT-4.6.0-1"):
        assert found[statement].outcome == "passed", found[statement]
    assert not [f for f in found.values() if f.problems]


@pytest.mark.parametrize(
    ("second", "breaks"),
    [
        (
            [("out", encode(Publish(b"t", b"5", 1, False, False, 5))), RESENT_6],
            {"MQTT-3.3.1-1", "MQTT-2.3.1-2"},  # without DUP it reads as a new one
        ),
        (
            [("out", encode(Publish(b"t", b"5", 1, False, True, 9))), RESENT_6],
            {"MQTT-2.3.1-3", "MQTT-3.3.1-3"},
        ),
        ([RESENT_6], {"MQTT-4.4.0-1", "MQTT-4.3.2-1"}),
        ([RESENT_6, RESENT_5], {"MQTT-4.6.0-1"}),
    ],
    ids=["no DUP", "another identifier", "one left out", "out of order"],
)
def test_a_resumed_session_resending_wrong_breaks_exactly_that(
    second: list[tuple[str, bytes]], breaks: set[str]
) -> None:
    assert failed(_resumed(second)) == breaks
