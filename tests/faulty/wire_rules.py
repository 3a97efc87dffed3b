"""REQ_0257 on the wire, one careless connector per statement the kit checks.

Each is the reference connector behind ``wire.Relay`` (the same loopback relay as
``wire.py``'s faults), changing whole packets one way or the other. The broker
(amqtt) reads what the relay sends on, so each fault is one the broker lives with,
or is paired with a fix-up of what the broker answers, so that the connector
otherwise carries on (a SUBACK of a SUBSCRIBE the connector never sent is taken
out, for example). Where a statement cannot be broken without another that the
kit judges by the same check (or by a strictly wider one), the fault names both.

The statements whose breach the broker refuses, misreads or waits on (a CONNECT
with its reserved flag set, a flag without its field, a topic name that is not
UTF-8, a SUBSCRIBE that mosquitto closes the connection on) cannot fail one scenario
only: their careless connectors are in ``refused.py``, each with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import selectors
import socket
import time
from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.adapters.mqtt.protocol.packets import remaining_length
from taktora_connector.ports import PayloadCodec

from .registry import breaks
from .wire import Relay, Rule, _kind, _Relayed, _topic_bounds, _unchanged, relayed

# -- packets, taken apart and put together ---------------------------------------------


def _body(raw: bytes) -> bytes:
    index = 1
    while raw[index] & 0x80:
        index += 1
    return raw[index + 1 :]


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + remaining_length(len(body)) + body


def _blob(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def _identifier(raw: bytes) -> int:
    """The packet identifier of a PUBACK, SUBACK, UNSUBACK, SUBSCRIBE or UNSUBSCRIBE."""
    body = _body(raw)
    return body[0] << 8 | body[1]


def _publish_id(raw: bytes) -> int | None:
    """A PUBLISH's identifier (None at QoS 0, or when the packet is too short for one)."""
    if not raw[0] & 0x06 or len(raw) < 4:
        return None
    _, end = _topic_bounds(raw)
    if len(raw) < end + 2:
        return None
    return raw[end] << 8 | raw[end + 1]


def _with_topic(raw: bytes, topic: bytes) -> bytes:
    """A PUBLISH with its topic name replaced (lengths made right)."""
    _, end = _topic_bounds(raw)
    body = _body(raw)
    offset = len(raw) - len(body)
    rest = body[end - offset :]
    return _packet(raw[0], _blob(topic) + rest)


class _Connect:
    """A CONNECT's fields, to change one and put the packet together again."""

    def __init__(self, raw: bytes) -> None:
        body = _body(raw)
        self.head = body[:7]  # protocol name, level
        self.flags = body[7]
        self.keep_alive = body[8:10]
        pos = 10
        fields: list[bytes] = []
        while pos + 2 <= len(body):
            length = body[pos] << 8 | body[pos + 1]
            fields.append(body[pos + 2 : pos + 2 + length])
            pos += 2 + length
        self.client_id = fields.pop(0)
        self.will: tuple[bytes, bytes] | None = None
        if self.flags & 0x04:
            self.will = (fields.pop(0), fields.pop(0))
        self.credentials = fields  # user name, password: as they came
        self.tail = b""  # bytes after the fields

    def bytes(self) -> bytes:
        payload = _blob(self.client_id)
        if self.will is not None:
            payload += _blob(self.will[0]) + _blob(self.will[1])
        payload += b"".join(_blob(f) for f in self.credentials)
        body = self.head + bytes((self.flags,)) + self.keep_alive + payload + self.tail
        return _packet(0x10, body)


#: Identifiers of the packets a fault adds of its own (the connector counts up from 1).
_OWN_IDS = 0xFF00


def _own_id(state: dict[str, Any]) -> int:
    """A fresh identifier for a packet the relay adds; its answer is taken out."""
    number: int = state.get("own ids", 0)
    state["own ids"] = number + 1
    packet_id = _OWN_IDS + number % 0xFF
    state.setdefault("own", set()).add(packet_id)
    return packet_id


def _drop_own_answers(raw: bytes, state: dict[str, Any]) -> bytes:
    """Takes out the SUBACK or UNSUBACK of a packet the relay added."""
    if _kind(raw) in (9, 11) and len(raw) >= 4:
        own: set[int] = state.setdefault("own", set())
        if _identifier(raw) in own:
            own.discard(_identifier(raw))
            return b""
    return raw


# -- what it lets through from a hostile broker ------------------------------------------


@breaks("REQ_0257", caught_by="TEST_2623", statements=("MQTT-1.5.3-1",), quick=False)
def reads_ill_formed_topics_leniently(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Any:
    """Decodes a received topic name that is not UTF-8 with '?' for each bad byte."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 3:
            return raw
        start, end = _topic_bounds(raw)
        topic = raw[start:end]
        try:
            topic.decode("utf-8")
        except UnicodeDecodeError:
            lenient = bytes(b if b < 0x80 else ord("?") for b in topic)
            return raw[:start] + lenient + raw[end:]
        return raw

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2624", statements=("MQTT-1.5.3-2", "MQTT-4.7.3-2"), quick=False)
def drops_nul_from_topics(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Takes U+0000 out of a received topic name, C-string style, and goes on.

    Two statements: the kit judges a topic name with U+0000 under both (MQTT-4.7.3-2
    for names and filters, MQTT-1.5.3-2 for every string), on the wire and here."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 3:
            return raw
        start, end = _topic_bounds(raw)
        if b"\x00" not in raw[start:end]:
            return raw
        return _with_topic(raw, raw[start:end].replace(b"\x00", b""))

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2628", statements=("MQTT-2.2.2-2",), quick=False)
def masks_reserved_flags(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Reads a received packet's fixed header with its reserved flags masked off."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        kind = _kind(raw)
        if kind in (0, 3, 15):
            return raw
        required = 0x02 if kind in (6, 8, 10) else 0x00
        return bytes((kind << 4 | required,)) + raw[1:]

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2627", statements=("MQTT-2.3.1-1",), quick=False)
def takes_identifier_zero(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Takes a received QoS 1 PUBLISH with identifier 0 (read as 65535) and goes on."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 3 and _publish_id(raw) == 0:
            _, end = _topic_bounds(raw)
            return raw[:end] + b"\xff\xff" + raw[end + 2 :]
        return raw

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2626", statements=("MQTT-3.3.1-2",), quick=False)
def ignores_dup_on_qos0(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Ignores the DUP flag of a received QoS 0 PUBLISH instead of refusing it."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 3 and not raw[0] & 0x06 and raw[0] & 0x08:
            return bytes((raw[0] & ~0x08,)) + raw[1:]
        return raw

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2622", statements=("MQTT-4.7.3-1",), quick=False)
def reads_the_empty_topic_as_root(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Takes a received PUBLISH to the empty topic name for one to '/'."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 3:
            start, end = _topic_bounds(raw)
            if start == end:
                return _with_topic(raw, b"/")
        return raw

    return relayed(options, codec, inbound=inbound)


# -- CONNECT -----------------------------------------------------------------------------


class _FallingBackRelay(Relay):
    """A relay whose connector, when the broker closes the connection on its (faulty)
    CONNECT without a CONNACK, tries once more with a CONNECT as it should be, on a new
    connection: a strict broker (mosquitto, in the shared-subscription scenarios)
    refuses what amqtt lets through, and the connector falls back, as careless
    connectors do. What the broker refused stays on the wire."""

    up_once = False  # a CONNACK went through: the broker takes the faulty CONNECT
    strict = False  # fell back once: no more faults

    def _drop(self, sock: socket.socket) -> None:
        pair = self._pairs.get(sock)
        if pair is not None and pair[1] == "in":
            client, _, _, state = pair
            fallback: bytes | None = state.pop("fallback", None)
            if fallback is not None and not self._stop and not self.up_once:
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    upstream.sendall(fallback)
                except OSError:
                    pass
                else:
                    self._pairs.pop(sock, None)
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(sock)
                    sock.close()
                    self._pairs[client] = (upstream, "out", self._pairs[client][2], state)
                    self._pairs[upstream] = (client, "in", bytearray(), state)
                    self._selector.register(upstream, selectors.EVENT_READ, "pair")
                    state["strict"] = True  # no more faults on this path
                    self.strict = True  # nor on the next connections
                    state["fell back"] = True
                    return
        super()._drop(sock)


def _falling_back(
    options: MqttConnectorOptions,
    codec: PayloadCodec[Any],
    outbound: Rule = _unchanged,
    inbound: Rule = _unchanged,
) -> Any:
    """``wire.relayed``, with a ``_FallingBackRelay``."""
    if options.tls is not None:
        return MqttConnector(options, codec)

    def seen(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 2:
            if state.get("fallback") == state.get("connect"):
                state.pop("fallback", None)  # the CONNECT was taken
            if state.pop("fell back", False) and state.get("connacked"):
                return b""  # the connector was Up already: this CONNACK is the relay's
            state["connacked"] = True
            if raw[3:4] == b"\x00":
                relay.up_once = True
        elif _kind(raw) in (9, 11) and len(raw) >= 4:
            state.get("pending", {}).pop(_identifier(raw), None)
            if _identifier(raw) == state.get("fallback id"):
                state.pop("fallback", None)  # the faulty packet was answered
        return inbound(raw, state)

    def guarded(raw: bytes, state: dict[str, Any]) -> bytes:
        if relay.strict:
            state["strict"] = True
        return outbound(raw, state)

    relay = _FallingBackRelay((options.host, options.port), guarded, seen)
    moved = dataclasses.replace(options, host="127.0.0.1", port=relay.port)
    return _Relayed(MqttConnector(moved, codec), relay)


def _connect_rewriter(change: Any) -> Rule:
    """Changes each CONNECT (``change(fields)``), keeping the original to fall back on."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 1:
            return raw
        state["connect"] = raw
        if state.get("strict"):
            return raw
        connect = _Connect(raw)
        change(connect)
        state["fallback"] = raw
        return bytes(connect.bytes())

    return outbound


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-1.5.3-2",), quick=False)
def nul_terminated_client_id(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Counts the C string's terminating NUL into its client identifier."""

    def change(connect: _Connect) -> None:
        connect.client_id += b"\x00"

    return _falling_back(options, codec, outbound=_connect_rewriter(change))


@breaks(
    "REQ_0257",
    caught_by="TEST_2611",
    statements=("MQTT-1.5.3-1", "MQTT-3.1.3-4"),
    quick=False,
)
def latin1_client_id(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Ends its client identifier with a Latin-1 'é' (one byte, 0xE9: not UTF-8).

    Two statements: the client identifier is a string, and the kit judges every
    string's UTF-8 (MQTT-1.5.3-1) as well as the identifier's (MQTT-3.1.3-4)."""

    def change(connect: _Connect) -> None:
        connect.client_id += b"\xe9"

    return _falling_back(options, codec, outbound=_connect_rewriter(change))


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-3.1.2-13",), quick=False)
def will_qos_without_will(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Puts its default QoS (1) in the will QoS bits, with no will."""

    def change(connect: _Connect) -> None:
        if connect.will is None:
            connect.flags |= 0x08

    return _falling_back(options, codec, outbound=_connect_rewriter(change))


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-3.1.2-15",), quick=False)
def will_retain_without_will(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sets the will retain flag, with no will."""

    def change(connect: _Connect) -> None:
        if connect.will is None:
            connect.flags |= 0x20

    return _falling_back(options, codec, outbound=_connect_rewriter(change))


#: The will topic the will faults add: no scenario's reader is on it.
WILL_TOPIC = b"taktora-faulty/will"


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-3.1.2-14",), quick=False)
def will_at_qos3(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Leaves a will with both will QoS bits set (QoS 3)."""

    def change(connect: _Connect) -> None:
        connect.flags |= 0x04 | 0x18
        connect.will = (WILL_TOPIC, b"gone")

    return _falling_back(options, codec, outbound=_connect_rewriter(change))


@breaks(
    "REQ_0257",
    caught_by="TEST_2611",
    statements=("MQTT-1.5.3-1", "MQTT-3.1.3-10"),
    quick=False,
)
def latin1_will_topic(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Leaves a will on a topic written in Latin-1 (0xE9 for 'é': not UTF-8).

    Two statements: the kit judges every string's UTF-8 (MQTT-1.5.3-1) as well as
    the will topic's (MQTT-3.1.3-10)."""

    def change(connect: _Connect) -> None:
        connect.flags |= 0x04
        connect.will = (WILL_TOPIC + b"/\xe9t\xe9", b"gone")

    return _falling_back(options, codec, outbound=_connect_rewriter(change))


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-3.1.0-2",), quick=False)
def connects_again_on_close(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends its CONNECT again just before its DISCONNECT (a reconnect path run on close)."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 1:
            state["connect"] = raw
        elif _kind(raw) == 14 and "connect" in state:
            return bytes(state["connect"]) + raw
        return raw

    return relayed(options, codec, outbound=outbound)


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-3.1.0-1",), quick=False)
def pings_before_connecting(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Checks the broker is there with a PINGREQ on a connection of its own, before its
    first CONNECT (a liveness probe that skips the CONNECT)."""
    probed: list[bool] = []
    target = (options.host, options.port)

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 1 and not probed:
            probed.append(True)
            with contextlib.suppress(OSError), socket.create_connection(target, timeout=2) as s:
                s.sendall(b"\xc0\x00")
                time.sleep(0.05)
        return raw

    return relayed(options, codec, outbound=outbound)


# -- SUBSCRIBE and UNSUBSCRIBE -----------------------------------------------------------


@breaks(
    "REQ_0257",
    caught_by="TEST_2611",
    statements=("MQTT-2.2.2-1", "MQTT-3.10.1-1"),
    quick=False,
)
def unsubscribes_with_flags_0000(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends UNSUBSCRIBE with fixed-header flags 0000, not 0010 (two statements, as
    for SUBSCRIBE)."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        return b"\xa0" + raw[1:] if raw[0] == 0xA2 else raw

    return relayed(options, codec, outbound=outbound)


def _subscribe_fault(fault: Any) -> Rule:
    """An outbound rule for a fault of SUBSCRIBE (or UNSUBSCRIBE): ``fault(raw, state)``
    gives the bytes sent instead and the identifier whose answer clears it, or None.
    Until that answer, a broker that closes the connection (mosquitto refuses what
    amqtt lets through) gets the CONNECT and the unanswered SUBSCRIBEs again, as they
    should be, on a new connection (``_FallingBackRelay``)."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 1:
            state["connect"] = raw
            state["pending"] = {}
            return raw
        if _kind(raw) == 8:
            state.setdefault("pending", {})[_identifier(raw)] = raw
        if _kind(raw) not in (8, 10) or state.get("strict"):
            return raw
        faulty = fault(raw, state)
        if faulty is None:
            return raw
        sent, answered_by = faulty
        pending: dict[int, bytes] = state.get("pending", {})
        state["fallback"] = bytes(state.get("connect", b"")) + b"".join(pending.values())
        state["fallback id"] = answered_by
        return bytes(sent)

    return outbound


def _adds_after(make: Any) -> Rule:
    """An outbound rule that sends, after each SUBSCRIBE (or UNSUBSCRIBE) of the
    connector, one packet of its own: ``make(raw, packet_id)`` or None (after it, so
    that the connector's packet gets the broker's first answer)."""

    def fault(raw: bytes, state: dict[str, Any]) -> tuple[bytes, int] | None:
        if make(raw, None) is None:
            return None
        packet_id = _own_id(state)
        return raw + bytes(make(raw, packet_id)), packet_id

    return _subscribe_fault(fault)


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-3.10.3-2",), quick=False)
def flushes_empty_unsubscribe_batches(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Any:
    """Sends its batch of unsubscriptions before each UNSUBSCRIBE, even when it is
    empty: an UNSUBSCRIBE with no topic filter."""

    def make(raw: bytes, packet_id: int | None) -> bytes | None:
        if _kind(raw) != 10:
            return None
        return _packet(0xA2, (packet_id or 1).to_bytes(2, "big"))

    return _falling_back(options, codec, outbound=_adds_after(make), inbound=_drop_own_answers)


@breaks(
    "REQ_0257",
    caught_by="TEST_2611",
    statements=("MQTT-1.5.3-1", "MQTT-3.10.3-1"),
    quick=False,
)
def latin1_unsubscribe_filter(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Unsubscribes, before each UNSUBSCRIBE, from its control topic written in Latin-1
    (two statements, as for SUBSCRIBE)."""

    def make(raw: bytes, packet_id: int | None) -> bytes | None:
        if _kind(raw) != 10:
            return None
        body = (packet_id or 1).to_bytes(2, "big") + _blob(b"taktora-faulty/contr\xf4le")
        return _packet(0xA2, body)

    return _falling_back(options, codec, outbound=_adds_after(make), inbound=_drop_own_answers)


# -- PUBLISH and PUBACK ------------------------------------------------------------------


@breaks(
    "REQ_0257",
    caught_by=("TEST_2615", "TEST_2633"),
    statements=("MQTT-2.3.1-6", "MQTT-4.3.2-2"),
    quick=False,
)
def acks_twice_once_byte_swapped(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Follows each PUBACK with a second one whose identifier has its bytes swapped (a
    little-endian write of the identifier, left in after the fix).

    Two statements: the kit judges MQTT-2.3.1-6 and MQTT-4.3.2-2 by the one check
    (a PUBACK's identifier is one of a PUBLISH received), in the same scenarios."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 4:
            return raw
        swapped = raw[:2] + bytes((raw[3], raw[2]))
        return raw + swapped if swapped != raw else raw

    return relayed(options, codec, outbound=outbound)


@breaks(
    "REQ_0257",
    caught_by="TEST_2615",
    statements=("MQTT-3.3.4-1", "MQTT-4.5.0-2"),
    quick=False,
)
def skips_every_fifth_puback(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends no PUBACK for every fifth QoS 1 PUBLISH it receives on a connection.

    Two statements: the kit judges MQTT-3.3.4-1 and MQTT-4.5.0-2 by the one check
    (each QoS 1 PUBLISH received gets its PUBACK), in the same scenario."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 4:
            return raw
        state["pubacks"] = state.get("pubacks", 0) + 1
        return b"" if state["pubacks"] % 5 == 0 else raw

    return relayed(options, codec, outbound=outbound)


# -- a resumed session's resends ---------------------------------------------------------


def _resumed(raw: bytes, state: dict[str, Any], history: dict[str, int]) -> None:
    """Marks a connection whose CONNECT resumes a session (clean session 0) after the
    relay's first connection."""
    if _kind(raw) == 1:
        history["connects"] = history.get("connects", 0) + 1
        state["resumed"] = history["connects"] > 1 and not _Connect(raw).flags & 0x02


@breaks("REQ_0257", caught_by="TEST_2614", statements=("MQTT-4.6.0-1",), quick=False)
def resends_in_reverse(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends a resumed session's unacknowledged PUBLISHes again newest first."""
    history: dict[str, int] = {}

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        _resumed(raw, state, history)
        held: list[bytes] = state.setdefault("held", [])
        if state.get("resumed") and _kind(raw) == 3 and raw[0] & 0x08:
            held.append(raw)
            state["held at"] = time.monotonic()
            return b""
        if held:
            out = b"".join(reversed(held)) + raw
            held.clear()
            return out
        return raw

    def tick(state: dict[str, Any]) -> bytes:
        held: list[bytes] = state.get("held", [])
        if held and time.monotonic() - state.get("held at", 0.0) > 0.2:
            out = b"".join(reversed(held))
            held.clear()
            return out
        return b""

    return relayed(options, codec, outbound=outbound, tick=tick)


@breaks(
    "REQ_0257",
    caught_by="TEST_2614",
    statements=("MQTT-2.3.1-3", "MQTT-3.3.1-3"),
    quick=False,
)
def resends_with_new_identifiers(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Gives each PUBLISH it sends again on a resumed session a new identifier (and its
    PUBACK back the old one, so the connector sees nothing amiss).

    Two statements, by the kit's reading: its MQTT-3.3.1-3 rule knows a message sent
    before by (topic, payload, identifier), so a resend under a new identifier, DUP
    set as it should be, reads as a first attempt with DUP 1."""
    history: dict[str, int] = {}

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        _resumed(raw, state, history)
        if state.get("resumed") and _kind(raw) == 3 and raw[0] & 0x08:
            old = _publish_id(raw) or 0
            new = old ^ 0x4000
            state.setdefault("renamed", {})[new] = old
            _, end = _topic_bounds(raw)
            return raw[:end] + new.to_bytes(2, "big") + raw[end + 2 :]
        return raw

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 4:
            old = state.get("renamed", {}).pop(_identifier(raw), None)
            if old is not None:
                return raw[:2] + int(old).to_bytes(2, "big")
        return raw

    return relayed(options, codec, outbound=outbound, inbound=inbound)
