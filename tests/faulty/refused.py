"""REQ_0257 on the wire: careless connectors whose breach no broker lets through.

Each breaks one MQTT 3.1.1 client statement (or the two or three the kit judges by
one check) in a way that the broker refuses, misreads or waits on: a CONNECT with
its reserved flag set, a flag without its field, a topic name that is not UTF-8.
No scenario of the kit can carry on past that, so these are not ``breaks`` faults
(one scenario failed, every other passed). They are ``refused`` faults: the kit is
run on each selecting by its statements (``-m "MQTT-3.1.2-3"``), and the protocol
profile must FAIL exactly those statements, from what the kit's proxy saw, whether
the scenario got as far as its audit step or not (``plugin.statement_findings``).

Each is the reference connector behind ``wire.Relay``, as in ``wire_rules.py``.
"""

from __future__ import annotations

from typing import Any

from taktora_connector.adapters.mqtt import MqttConnectorOptions
from taktora_connector.ports import PayloadCodec

from .registry import refused
from .wire import Rule, _kind, _topic_bounds, relayed
from .wire_rules import (
    WILL_TOPIC,
    _adds_after,
    _blob,
    _body,
    _Connect,
    _drop_own_answers,
    _falling_back,
    _packet,
    _with_topic,
)

#: Why a broker takes no CONNECT of these: it refuses it (a CONNACK with a code, or a
#: close) or reads its fields off the stream and so misreads what follows.
REFUSED_CONNECT = "amqtt and mosquitto refuse such a CONNECT, so the connector never connects"
#: Why a CONNECT with a flag but not its field goes nowhere.
WAITED_ON = (
    "the broker reads the missing field off the stream and waits for it: no CONNACK comes, "
    "so the connector never connects"
)


def _connects(change: Any) -> Rule:
    """An outbound rule that changes each CONNECT (``change(fields)``)."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 1:
            return raw
        connect = _Connect(raw)
        change(connect)
        return bytes(connect.bytes())

    return outbound


def _with_credentials(change: Any) -> Any:
    """``change`` for the CONNECTs that carry a user name and a password only."""

    def guarded(connect: _Connect) -> None:
        if connect.flags & 0xC0 == 0xC0 and len(connect.credentials) == 2:
            change(connect)

    return guarded


# -- CONNECT -----------------------------------------------------------------------------


@refused("MQTT-3.1.2-3", because=REFUSED_CONNECT)
def sets_the_reserved_connect_flag(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sets bit 0 of the connect flags (reserved, must be 0)."""

    def change(connect: _Connect) -> None:
        connect.flags |= 0x01

    return relayed(options, codec, outbound=_connects(change))


@refused("MQTT-3.1.2-22", because=REFUSED_CONNECT + " (no user name where one is required)")
def password_without_user_name(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Leaves the user name (and its flag) out of a CONNECT with credentials, keeping
    the password: a password flag without the user-name flag."""

    def change(connect: _Connect) -> None:
        connect.flags &= ~0x80
        connect.credentials = connect.credentials[1:]

    return relayed(options, codec, outbound=_connects(_with_credentials(change)))


@refused("MQTT-3.1.3-7", because="the broker refuses it with return code 2 (identifier rejected)")
def empty_client_id_in_a_persistent_session(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Any:
    """Sends an empty client identifier and clean session 0: asks the broker to keep a
    session under no name."""

    def change(connect: _Connect) -> None:
        connect.client_id = b""
        connect.flags &= ~0x02

    return relayed(options, codec, outbound=_connects(change))


@refused(
    "MQTT-3.1.3-11",
    because="the broker checks the user name and refuses a changed one (return code 4 or 5)",
)
def latin1_user_name(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Ends its user name with a Latin-1 'é' (one byte, 0xE9: not UTF-8)."""

    def change(connect: _Connect) -> None:
        connect.credentials[0] += b"\xe9"

    return relayed(options, codec, outbound=_connects(_with_credentials(change)))


@refused("MQTT-3.1.2-19", "MQTT-3.1.3-1", because=WAITED_ON)
def user_name_flag_without_user_name(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Any:
    """Keeps both credential flags and sends neither field: the payload ends where the
    user name should be (MQTT-3.1.3-1 too: the fields are not those the flags announce)."""

    def change(connect: _Connect) -> None:
        connect.credentials = []

    return relayed(options, codec, outbound=_connects(_with_credentials(change)))


@refused("MQTT-3.1.2-21", "MQTT-3.1.3-1", because=WAITED_ON)
def password_flag_without_password(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Keeps the password flag and leaves the password out."""

    def change(connect: _Connect) -> None:
        connect.credentials = connect.credentials[:1]

    return relayed(options, codec, outbound=_connects(_with_credentials(change)))


#: Why stray CONNECT bytes go nowhere on amqtt.
STRAY_BYTES = (
    "amqtt reads CONNECT's fields off the stream, not by its remaining length, so the "
    "stray bytes become the next packet, which it refuses; the kit judges any extra "
    "CONNECT bytes by MQTT-3.1.3-1 as well"
)


@refused("MQTT-3.1.2-11", "MQTT-3.1.2-18", "MQTT-3.1.3-1", because=STRAY_BYTES)
def will_fields_without_will(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends a will topic and message after the client identifier with the will flag
    clear (without a user-name flag, the stray field breaks MQTT-3.1.2-18 as well:
    nothing tells a stray will from a stray user name)."""

    def change(connect: _Connect) -> None:
        if connect.will is None and not connect.flags & 0xC0:
            connect.tail = _blob(WILL_TOPIC) + _blob(b"gone")

    return relayed(options, codec, outbound=_connects(change))


@refused("MQTT-3.1.2-18", "MQTT-3.1.3-1", because=STRAY_BYTES)
def user_name_without_its_flag(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Declares a will and sends a user name after it, without the user-name flag."""

    def change(connect: _Connect) -> None:
        if connect.will is None and not connect.flags & 0xC0:
            connect.flags |= 0x04
            connect.will = (WILL_TOPIC, b"gone")
            connect.tail = _blob(b"taktora-faulty")

    return relayed(options, codec, outbound=_connects(change))


@refused("MQTT-3.1.2-20", "MQTT-3.1.3-1", because=STRAY_BYTES)
def password_without_its_flag(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Clears the password flag of a CONNECT with credentials, and sends the password."""

    def change(connect: _Connect) -> None:
        connect.flags &= ~0x40

    return relayed(options, codec, outbound=_connects(_with_credentials(change)))


# -- PUBLISH -----------------------------------------------------------------------------

#: Why a bad topic name goes nowhere.
MISREAD_TOPIC = (
    "amqtt misreads the PUBLISH (it reads the payload's length off the topic it decoded) "
    "and closes the connection on the next one"
)


def _publishes(change: Any) -> Rule:
    """An outbound rule that gives each PUBLISH the topic ``change(topic)``."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 3:
            return raw
        start, end = _topic_bounds(raw)
        return _with_topic(raw, change(raw[start:end]))

    return outbound


@refused(
    "MQTT-3.3.2-1",
    "MQTT-1.5.3-1",
    because=MISREAD_TOPIC + "; two statements, as the kit judges every string's UTF-8 as well",
)
def latin1_topic_names(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Writes each topic name it publishes to in Latin-1, with a trailing 'é' (0xE9)."""
    return relayed(options, codec, outbound=_publishes(lambda topic: topic + b"\xe9"))


@refused(
    "MQTT-4.7.1-1",
    "MQTT-3.3.2-2",
    because="the broker closes the connection on a PUBLISH to a name with a wildcard; "
    "two statements, judged by one check",
)
def publishes_to_wildcards(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Publishes to its topic with a last level '+' added (as if it were a filter)."""
    return relayed(options, codec, outbound=_publishes(lambda topic: topic + b"/+"))


@refused(
    "MQTT-2.3.1-5",
    because="the broker forwards the two bytes as payload, so every scenario that reads "
    "a QoS 0 value fails with it",
)
def identifier_on_qos0(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Puts a packet identifier (0x0101) after the topic of every QoS 0 PUBLISH."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 3 or raw[0] & 0x06:
            return raw
        _, end = _topic_bounds(raw)
        offset = len(raw) - len(_body(raw))
        body = _body(raw)
        return _packet(raw[0], body[: end - offset] + b"\x01\x01" + body[end - offset :])

    return relayed(options, codec, outbound=outbound)


@refused(
    "MQTT-4.3.2-1",
    "MQTT-4.4.0-1",
    because="the messages are lost, so every scenario of at-least-once delivery across a "
    "cut fails with them; two statements, judged by one check",
)
def forgets_unacknowledged_publishes(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Any:
    """Does not send again, on a resumed session, the QoS 1 PUBLISHes still waiting for
    their PUBACK (what it resends is dropped before the broker)."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        return b"" if _kind(raw) == 3 and raw[0] & 0x08 else raw

    return relayed(options, codec, outbound=outbound)


# -- SUBSCRIBE ---------------------------------------------------------------------------

#: Why a bad SUBSCRIBE is here: amqtt lets it through, mosquitto does not.
CLOSED_BY_MOSQUITTO = (
    "amqtt answers it, but mosquitto closes the connection on it, so the scenarios run on "
    "mosquitto (shared subscriptions) fail with it"
)


def _subscribe_after(body: Any) -> Rule:
    """After each SUBSCRIBE of the connector, one SUBSCRIBE of the relay's own with the
    payload ``body`` (its identifier first); its SUBACK is taken out."""

    def make(raw: bytes, packet_id: int | None) -> bytes | None:
        if _kind(raw) != 8:
            return None
        return _packet(0x82, (packet_id or 1).to_bytes(2, "big") + body)

    return _adds_after(make)


def _subscribing(options: MqttConnectorOptions, codec: PayloadCodec[Any], body: bytes) -> Any:
    return _falling_back(options, codec, outbound=_subscribe_after(body), inbound=_drop_own_answers)


@refused(
    "MQTT-3.8.1-1",
    "MQTT-2.2.2-1",
    because=CLOSED_BY_MOSQUITTO + "; two statements: MQTT-2.2.2-1 judges every packet's "
    "reserved flags, MQTT-3.8.1-1 SUBSCRIBE's",
)
def subscribes_with_flags_0000(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends a SUBSCRIBE of its own with fixed-header flags 0000, not 0010."""

    def make(raw: bytes, packet_id: int | None) -> bytes | None:
        if _kind(raw) != 8:
            return None
        body = (packet_id or 1).to_bytes(2, "big") + _blob(b"taktora-faulty/flags") + b"\x00"
        return _packet(0x80, body)

    return _falling_back(options, codec, outbound=_adds_after(make), inbound=_drop_own_answers)


@refused(
    "MQTT-3.8.3-1",
    "MQTT-1.5.3-1",
    because=CLOSED_BY_MOSQUITTO + "; two statements, as the kit judges every string's UTF-8",
)
def latin1_subscribe_filter(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Subscribes, after each SUBSCRIBE, to a control topic written in Latin-1."""
    return _subscribing(options, codec, _blob(b"taktora-faulty/contr\xf4le") + b"\x00")


@refused("MQTT-3.8.3-3", because=CLOSED_BY_MOSQUITTO)
def flushes_empty_subscribe_batches(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends its batch of subscriptions after each SUBSCRIBE, even when it is empty: a
    SUBSCRIBE with no topic filter."""
    return _subscribing(options, codec, b"")


@refused("MQTT-3.8.3-4", because=CLOSED_BY_MOSQUITTO)
def asks_for_qos3(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Subscribes, after each SUBSCRIBE, to a control topic asking for QoS 3."""
    return _subscribing(options, codec, _blob(b"taktora-faulty/qos") + b"\x03")


@refused("MQTT-4.7.1-2", because=CLOSED_BY_MOSQUITTO)
def hash_not_last(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Subscribes, after each SUBSCRIBE, to 'taktora-faulty/#/more' ('#' not last)."""
    return _subscribing(options, codec, _blob(b"taktora-faulty/#/more") + b"\x00")


@refused("MQTT-4.7.1-3", because=CLOSED_BY_MOSQUITTO)
def plus_inside_a_level(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Subscribes, after each SUBSCRIBE, to 'taktora-faulty/a+' ('+' inside a level)."""
    return _subscribing(options, codec, _blob(b"taktora-faulty/a+") + b"\x00")
