"""The client session's state table (``adapters/mqtt/protocol/session.py``), without a network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taktora_connector.adapters.mqtt.protocol.packets import PacketType, ProtocolViolation
from taktora_connector.adapters.mqtt.protocol.session import (
    ALLOWED,
    ClientSession,
    State,
    connack_refusal,
)

FROM_BROKER = {
    PacketType.CONNACK,
    PacketType.PUBLISH,
    PacketType.PUBACK,
    PacketType.SUBACK,
    PacketType.UNSUBACK,
    PacketType.PINGRESP,
}


def opened() -> ClientSession:
    session = ClientSession()
    session.connection_opened()
    return session


def test_a_new_connection_awaits_connack_and_connack_connects_it() -> None:
    session = opened()
    assert session.state is State.AWAITING_CONNACK
    session.received(PacketType.CONNACK)
    assert session.connected


@pytest.mark.parametrize("kind", sorted(set(PacketType) - {PacketType.CONNACK}))
def test_any_packet_but_connack_first_is_a_violation_of_3_2_0_1(kind: PacketType) -> None:
    session = opened()
    with pytest.raises(ProtocolViolation, match=r"MQTT-3\.2\.0-1"):
        session.received(kind)
    assert session.state is State.CLOSED


@pytest.mark.parametrize("kind", sorted(PacketType))
def test_connected_allows_exactly_what_a_broker_sends_a_qos1_client(kind: PacketType) -> None:
    session = opened()
    session.received(PacketType.CONNACK)
    if kind in FROM_BROKER - {PacketType.CONNACK}:
        session.received(kind)
        assert session.connected
    else:
        with pytest.raises(ProtocolViolation, match=kind.name):
            session.received(kind)
        assert session.state is State.CLOSED


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (PacketType.CONNACK, "second CONNACK"),
        (PacketType.SUBSCRIBE, "only a client sends it"),
        (PacketType.PUBREL, "MQTT-3.8.4-6"),
    ],
)
def test_each_violation_says_what_was_wrong(kind: PacketType, words: str) -> None:
    session = opened()
    session.received(PacketType.CONNACK)
    with pytest.raises(ProtocolViolation, match=words):
        session.received(kind)


def test_a_closed_session_accepts_nothing() -> None:
    session = ClientSession()
    for kind in PacketType:
        with pytest.raises(ProtocolViolation, match="after the connection ended"):
            session.received(kind)
    assert ALLOWED[State.CLOSED] == frozenset()
    reopened = opened()
    reopened.received(PacketType.CONNACK)
    reopened.connection_closed()
    assert reopened.state is State.CLOSED


# -- any sequence of broker packets ---------------------------------------------------------------


@given(st.lists(st.sampled_from(sorted(PacketType)), max_size=40))
def test_any_packet_sequence_follows_the_table_and_ends_at_the_first_violation(
    kinds: list[PacketType],
) -> None:
    """Hypothesis over broker packet sequences on one connection: each packet is accepted
    exactly when the oracle (CONNACK once, first; then only what a QoS 1 client may
    receive) says so; the first refusal names a statement or section and closes the
    session, and a closed session accepts nothing more."""
    session = ClientSession()
    session.connection_opened()
    may_receive = {PacketType.PUBLISH, PacketType.PUBACK, PacketType.SUBACK}
    may_receive |= {PacketType.UNSUBACK, PacketType.PINGRESP}
    had_connack = False
    for kind in kinds:
        expected = (kind == PacketType.CONNACK) if not had_connack else kind in may_receive
        if expected:
            session.received(kind)
            had_connack = True
            assert session.connected
            continue
        with pytest.raises(ProtocolViolation, match=r"MQTT-|section|CONNACK"):
            session.received(kind)
        assert session.state is State.CLOSED and not session.connected
        with pytest.raises(ProtocolViolation, match="after the connection ended"):
            session.received(PacketType.PINGRESP)
        break


@pytest.mark.parametrize(
    ("packet", "code"),
    [
        (b"\x20\x02\x00\x00", None),  # accepted
        (b"\x20\x02\x01\x00", None),  # accepted, session present
        (b"\x20\x02\x00\x01", 1),
        (b"\x20\x02\x00\x05", 5),
        (b"\x20\x02\x00\x06", 6),  # unknown, still a refusal
        (b"\x90\x03\x00\x01\x00", None),  # a SUBACK, not a CONNACK
        (b"\x20\x02\x00", None),  # not whole
    ],
)
def test_a_refusing_connack_is_read_here_not_by_the_gateway(
    packet: bytes, code: int | None
) -> None:
    assert connack_refusal(packet) == code
