"""MQTT 3.1.1 control packets to bytes and back, with no I/O (the h11 shape).

A ``PacketReader`` takes bytes as they arrive (``receive_data``) and hands out
whole packets (``next_event``), or ``NEED_DATA`` while a packet is incomplete;
``encode`` and the two fast encoders turn packets into bytes. The caller owns
the socket and the loop, so all of this is tested byte for byte and fuzzed
without a network; the gateway's data plane and the kit's proxy both use it.

Rules of this module:
- pure: no sockets, threads, clocks, logging or paho;
- buffering is linear: the chunks of a large incomplete packet are collected and
  joined once when its announced length is all here (every join goes through
  ``PacketReader._join``, which a test counts);
- whatever bytes arrive, the reader raises nothing but ``ProtocolViolation``,
  and after one it stays broken (a byte stream has no way back into step);
- structural rules are checked on both sides: the remaining-length encoding
  (at most four bytes), the reserved flag bits of every packet type
  (MQTT-2.2.2-1/2), QoS 3 (MQTT-3.3.1-4), DUP on QoS 0 (MQTT-3.3.1-2), a
  packet identifier on every QoS 1 or 2 PUBLISH and never 0 (MQTT-2.3.1-1),
  exact lengths of fixed-size packets, SUBACK codes;
- a PUBLISH topic is handed out as the raw bytes on the wire: what to do with a
  topic that is not UTF-8 or names a wildcard is the caller's choice (the
  connector drops and counts the message and keeps the connection).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple, NoReturn

#: The largest remaining length MQTT 3.1.1 can express (four length bytes).
MAX_REMAINING: Final = 268_435_455


def publish_payload_limit(topic: str, qos: int) -> int:
    """The largest payload one PUBLISH of ``topic`` at ``qos`` can carry: the remaining
    length (at most ``MAX_REMAINING``) also holds the topic and, above QoS 0, the
    packet identifier (MQTT 3.1.1 sections 2.2.3 and 3.3.2)."""
    return MAX_REMAINING - 2 - len(topic.encode("utf-8")) - (2 if qos else 0)


class ProtocolViolation(Exception):
    """Bytes that are not MQTT 3.1.1, or a packet that breaks its rules."""


class PacketType(enum.IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: ``next_event`` returns this while the buffered bytes hold no whole packet.
NEED_DATA: Final = NeedData()


# -- packets ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(slots=True)
class Connect:
    client_id: str
    clean_session: bool = True
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None


@dataclass(slots=True)
class ConnAck:
    session_present: bool
    return_code: int


class Publish(NamedTuple):
    """A tuple, not a dataclass like the others: made once per message on the hot path."""

    topic: bytes
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


_new_publish: Final = functools.partial(tuple.__new__, Publish)


@dataclass(slots=True)
class PubAck:
    packet_id: int


@dataclass(slots=True)
class PubRec:
    packet_id: int


@dataclass(slots=True)
class PubRel:
    packet_id: int


@dataclass(slots=True)
class PubComp:
    packet_id: int


@dataclass(slots=True)
class Subscribe:
    packet_id: int
    topics: list[tuple[str, int]]


@dataclass(slots=True)
class SubAck:
    packet_id: int
    return_codes: list[int]


@dataclass(slots=True)
class Unsubscribe:
    packet_id: int
    topics: list[str]


@dataclass(slots=True)
class UnsubAck:
    packet_id: int


@dataclass(slots=True)
class PingReq:
    pass


@dataclass(slots=True)
class PingResp:
    pass


@dataclass(slots=True)
class Disconnect:
    pass


class SkippedPublish(NamedTuple):
    """A PUBLISH whose payload was discarded as it arrived, never buffered whole:
    larger than ``PacketReader.payload_limit`` allowed for its topic."""

    topic: bytes
    size: int  # of the payload
    qos: int
    retain: bool
    packet_id: int | None
    dup: bool = False


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | SkippedPublish  # only with PacketReader.payload_limit set
)

#: The fixed-header flags every packet type but PUBLISH must carry (MQTT-2.2.2-1).
_REQUIRED_FLAGS: Final = {t: 0x02 if t in (6, 8, 10) else 0x00 for t in range(1, 15) if t != 3}
_ID_ONLY: Final[dict[int, type[PubAck | PubRec | PubRel | PubComp | UnsubAck]]] = {
    4: PubAck,
    5: PubRec,
    6: PubRel,
    7: PubComp,
    11: UnsubAck,
}
_SUBACK_CODES: Final = frozenset({0x00, 0x01, 0x02, 0x80})


# -- reading ------------------------------------------------------------------------------------


#: Incomplete PUBLISH packets above this size are checked against ``payload_limit``.
SKIP_CHECK_ABOVE: Final = 16_384


class PacketReader:
    """Splits a byte stream into packets: ``receive_data`` in, ``next_event`` out.

    With ``payload_limit`` set (topic bytes -> the largest payload wanted for it), a
    PUBLISH whose payload is larger is discarded as its bytes arrive and handed out
    as ``SkippedPublish``: memory stays bounded by the limit, not by the message."""

    __slots__ = (
        "_broken",
        "_checked",
        "_data",
        "_end",
        "_have",
        "_max",
        "_more",
        "_need",
        "_pos",
        "_skip",
        "_start",
        "payload_limit",
    )

    def __init__(self, max_remaining: int = MAX_REMAINING) -> None:
        self._data = b""
        self._pos = 0
        self._start = 0  # where the packet last handed out began
        self._end = 0
        self._max = max_remaining
        self._broken: ProtocolViolation | None = None
        self.payload_limit: Callable[[bytes], int] | None = None
        self._skip = 0  # bytes of a skipped PUBLISH still to discard
        self._checked = -1  # stream offset of the incomplete packet already checked
        # A large incomplete packet is collected, not re-joined with every chunk (that
        # copies the pending bytes per read: quadratic in the packet's size):
        self._need = 0  # bytes from _pos that make the incomplete packet whole (0: unknown)
        self._more: list[bytes] = []  # chunks received after _data, not joined yet
        self._have = 0  # their total length

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as a packet."""
        return len(self._data) - self._pos + self._have

    def receive_data(self, data: bytes) -> None:
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        if self._need:
            # Collecting a large packet: join once, when all of it is here.
            self._more.append(data)
            self._have += len(data)
            if len(self._data) - self._pos + self._have < self._need:
                return
            data = self._join([memoryview(self._data)[self._pos :], *self._more])
            self._more = []
            self._have = self._need = 0
            self._data = data
        elif self._pos >= len(self._data):
            self._data = data
        else:
            self._data = self._join([memoryview(self._data)[self._pos :], data])
        self._pos = 0

    def _join(self, parts: list[bytes | memoryview]) -> bytes:
        """Every copy of buffered bytes goes through here (a test counts them)."""
        return b"".join(parts)

    def last_raw(self) -> bytes:
        """The bytes of the packet ``next_event`` handed out last (to pass it on whole).

        Valid until the next ``receive_data``."""
        return self._data[self._start : self._end]

    def next_event(self) -> Packet | NeedData:
        """The next whole packet, or ``NEED_DATA``; raises only ``ProtocolViolation``."""
        if self._broken is not None:
            raise self._broken
        data = self._data
        pos = self._pos
        end = len(data)
        if end - pos < 2:
            return NEED_DATA
        first = data[pos]
        # The remaining length: 7 bits a byte, low first, at most four bytes.
        byte = data[pos + 1]
        if byte < 0x80:
            length = byte
            body = pos + 2
        else:
            length = byte & 0x7F
            index = pos + 2
            shift = 7
            while True:
                if index >= end:
                    return NEED_DATA
                byte = data[index]
                index += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift > 21:
                    return self._fail("remaining length longer than four bytes")
            body = index
        if length > self._max:
            return self._fail(f"packet of {length} bytes exceeds the limit of {self._max}")
        stop = body + length
        if stop > end:
            if length > SKIP_CHECK_ABOVE:
                if (
                    first >> 4 == 3
                    and self.payload_limit is not None
                    and self._checked != pos
                    and not self._need
                ):
                    return self._maybe_skip(data, first, body, stop)
                self._need = stop - pos  # wanted whole: collect the rest, then join once
            return NEED_DATA
        self._start = pos
        self._pos = self._end = stop
        self._checked = -1  # the next incomplete packet is a new one
        kind = first >> 4
        if kind == 3:
            return self._publish(data, first, body, stop)
        try:
            return self._control(data, kind, first & 0x0F, body, stop)
        except (IndexError, UnicodeDecodeError, ValueError) as err:
            return self._fail(f"malformed {_name(kind)}: {err}")

    def next_run(self, run: list[Publish]) -> Packet | NeedData:
        """``next_event`` for a stream of PUBLISHes: every whole PUBLISH up to the next
        other event is appended to ``run``, then that event is returned (``NEED_DATA``
        when the bytes ran out). The same packets and the same checks as calling
        ``next_event`` in a loop, one call per run instead of two per message: the
        common PUBLISH (whole, remaining length in one or two bytes, valid header) is
        read inline; anything else goes through ``next_event``, which also raises
        what it finds wrong (the run before it stays appended)."""
        append = run.append
        new = _new_publish
        limit = self._max
        while True:
            if self._broken is not None:
                raise self._broken
            data = self._data
            pos = self._pos
            end = len(data)
            start = pos
            while pos + 2 <= end:
                first = data[pos]
                if first & 0xF0 != 0x30:
                    break  # not a PUBLISH
                byte = data[pos + 1]
                if byte < 0x80:
                    body = pos + 2
                    length = byte
                elif pos + 2 < end and data[pos + 2] < 0x80:
                    body = pos + 3
                    length = (byte & 0x7F) | data[pos + 2] << 7
                else:
                    break  # a longer length, or cut: the general path
                stop = body + length
                if stop > end or length > limit or length < 2:
                    break
                topic_end = body + 2 + (data[body] << 8 | data[body + 1])
                qos = (first >> 1) & 0x03
                if qos == 1:
                    if topic_end + 2 > stop:
                        break
                    packet_id = data[topic_end] << 8 | data[topic_end + 1]
                    if not packet_id:
                        break
                    append(
                        new(
                            (
                                data[body + 2 : topic_end],
                                data[topic_end + 2 : stop],
                                1,
                                first & 1 == 1,
                                first & 8 == 8,
                                packet_id,
                            )
                        )
                    )
                elif qos or topic_end > stop or first & 8:
                    break  # QoS 2 (handled by the caller) and every fault: the general path
                else:
                    append(
                        new(
                            (
                                data[body + 2 : topic_end],
                                data[topic_end:stop],
                                0,
                                first & 1 == 1,
                                False,
                                None,
                            )
                        )
                    )
                start = pos
                pos = stop
            if pos != self._pos:
                self._start = start
                self._pos = self._end = pos
                self._checked = -1
            event = self.next_event()
            if type(event) is not Publish:
                return event
            append(event)

    def _maybe_skip(
        self, data: bytes, first: int, body: int, stop: int
    ) -> SkippedPublish | NeedData:
        """An incomplete, large PUBLISH: skip it if no reader wants a payload that big."""
        pos = self._pos
        end = len(data)
        qos = (first >> 1) & 0x03
        if end - body < 2:
            return NEED_DATA
        topic_end = body + 2 + (data[body] << 8 | data[body + 1])
        header_end = topic_end + (2 if qos else 0)
        if header_end > end or header_end > stop:
            return NEED_DATA  # the topic (at most 64 KiB) is not all here yet
        topic = data[body + 2 : topic_end]
        size = stop - header_end
        assert self.payload_limit is not None
        if size <= self.payload_limit(topic):
            self._checked = pos
            self._need = stop - pos  # wanted: collect the rest, then join once
            return NEED_DATA
        # Skipped or not, the header obeys the same rules (``_publish``).
        packet_id = data[topic_end] << 8 | data[topic_end + 1] if qos else None
        if qos == 3:
            self._fail("PUBLISH with QoS 3 (MQTT-3.3.1-4)")
        if packet_id == 0:
            self._fail("PUBLISH with packet identifier 0 (MQTT-2.3.1-1)")
        if not qos and first & 8:
            self._fail("PUBLISH with QoS 0 and DUP set (MQTT-3.3.1-2)")
        self._skip = stop - end
        self._data = b""
        self._pos = 0
        self._checked = -1
        return SkippedPublish(topic, size, qos, first & 1 == 1, packet_id, first & 8 == 8)

    def _fail(self, reason: str) -> NoReturn:
        self._broken = ProtocolViolation(reason)
        raise self._broken

    def _publish(self, data: bytes, first: int, body: int, stop: int) -> Publish:
        qos = (first >> 1) & 0x03
        if stop - body < 2:
            self._fail("PUBLISH shorter than its topic length")
        topic_end = body + 2 + (data[body] << 8 | data[body + 1])
        topic = data[body + 2 : topic_end]
        if qos:
            if qos == 3:
                self._fail("PUBLISH with QoS 3 (MQTT-3.3.1-4)")
            if topic_end + 2 > stop:
                self._fail("PUBLISH too short for its topic and packet identifier")
            packet_id = data[topic_end] << 8 | data[topic_end + 1]
            if not packet_id:
                self._fail("PUBLISH with packet identifier 0 (MQTT-2.3.1-1)")
            return _new_publish(
                (topic, data[topic_end + 2 : stop], qos, first & 1 == 1, first & 8 == 8, packet_id)
            )
        if topic_end > stop:
            self._fail("PUBLISH too short for its topic")
        if first & 8:
            self._fail("PUBLISH with QoS 0 and DUP set (MQTT-3.3.1-2)")
        return _new_publish((topic, data[topic_end:stop], 0, first & 1 == 1, False, None))

    def _control(self, data: bytes, kind: int, flags: int, body: int, stop: int) -> Packet:
        required = _REQUIRED_FLAGS.get(kind)
        if required is None:
            self._fail(f"reserved packet type {kind}")
        if flags != required:
            self._fail(f"{_name(kind)} with reserved flags {flags:#x} (MQTT-2.2.2-2)")
        size = stop - body
        ack = _ID_ONLY.get(kind)
        if ack is not None:
            if size != 2:
                self._fail(f"{_name(kind)} of length {size}, not 2")
            return ack(data[body] << 8 | data[body + 1])
        if kind in (12, 13, 14):
            if size:
                self._fail(f"{_name(kind)} of length {size}, not 0")
            return (PingReq, PingResp, Disconnect)[kind - 12]()
        if kind == 2:
            if size != 2:
                self._fail(f"CONNACK of length {size}, not 2")
            if data[body] & 0xFE:
                self._fail("CONNACK with reserved acknowledge flags (section 3.2.2.1)")
            return ConnAck(bool(data[body] & 1), data[body + 1])
        view = _View(data, body, stop)
        if kind == 1:
            return _connect(view)
        packet_id = view.u16()
        if not packet_id:
            self._fail(f"{_name(kind)} with packet identifier 0 (MQTT-2.3.1-1)")
        if kind == 9:
            codes = list(data[view.pos : stop])
            if not codes or not _SUBACK_CODES.issuperset(codes):
                self._fail(f"SUBACK with return codes {codes}")
            return SubAck(packet_id, codes)
        if kind == 8:
            topics: list[tuple[str, int]] = []
            while view.pos < stop:
                topic = view.text()
                options = view.byte()
                if options > 2:
                    self._fail(f"SUBSCRIBE with requested QoS byte {options:#x} (MQTT-3.8.3-4)")
                topics.append((topic, options))
            if not topics:
                self._fail("SUBSCRIBE without a topic filter (MQTT-3.8.3-3)")
            return Subscribe(packet_id, topics)
        filters: list[str] = []  # UNSUBSCRIBE
        while view.pos < stop:
            filters.append(view.text())
        if not filters:
            self._fail("UNSUBSCRIBE without a topic filter (MQTT-3.10.3-2)")
        return Unsubscribe(packet_id, filters)


class _View:
    """Reads the fields of one packet body; running off its end is an IndexError."""

    __slots__ = ("data", "pos", "stop")

    def __init__(self, data: bytes, pos: int, stop: int) -> None:
        self.data = data
        self.pos = pos
        self.stop = stop

    def take(self, size: int) -> bytes:
        start = self.pos
        if start + size > self.stop:
            raise IndexError("field runs past the end of the packet")
        self.pos = start + size
        return self.data[start : self.pos]

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def blob(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        return self.blob().decode("utf-8")


def _connect(view: _View) -> Connect:
    name = view.text()
    level = view.byte()
    if name != "MQTT" or level != 4:
        raise ValueError(f"protocol {name!r} level {level}, not MQTT 3.1.1")
    flags = view.byte()
    if flags & 1:
        raise ValueError("reserved connect flag set (MQTT-3.1.2-3)")
    keep_alive = view.u16()
    client_id = view.text()
    will = None
    if flags & 0x04:
        topic = view.text()
        will = Will(topic, view.blob(), (flags >> 3) & 3, bool(flags & 0x20))
        if will.qos == 3:
            raise ValueError("will QoS 3 (MQTT-3.1.2-14)")
    elif flags & 0x38:
        raise ValueError("will QoS or retain without a will flag (MQTT-3.1.2-11)")
    username = view.text() if flags & 0x80 else None
    password = view.blob() if flags & 0x40 else None
    if password is not None and username is None:
        raise ValueError("password without a user name (MQTT-3.1.2-22)")
    if view.pos != view.stop:
        raise ValueError("bytes after the last CONNECT field")
    return Connect(client_id, bool(flags & 2), keep_alive, username, password, will)


def _name(kind: int) -> str:
    try:
        return PacketType(kind).name
    except ValueError:
        return f"packet type {kind}"


# -- writing ------------------------------------------------------------------------------------


def remaining_length(size: int) -> bytes:
    """The variable-length encoding of a remaining length (MQTT 2.2.3)."""
    if size < 128:
        if size < 0:
            raise ProtocolViolation(f"negative remaining length {size}")
        return bytes((size,))
    if size > MAX_REMAINING:
        raise ProtocolViolation(f"remaining length {size} exceeds {MAX_REMAINING}")
    out = bytearray()
    while size:
        byte = size & 0x7F
        size >>= 7
        out.append(byte | 0x80 if size else byte)
    return bytes(out)


def _check_id(packet_id: int | None, what: str) -> int:
    if packet_id is None or not 0 < packet_id <= 0xFFFF:
        raise ProtocolViolation(f"{what} needs a packet identifier 1..65535, got {packet_id!r}")
    return packet_id


def encode_publish(  # noqa: PLR0917 - the PUBLISH fields, in wire order
    topic: bytes,
    payload: bytes,
    qos: int = 0,
    retain: bool = False,
    packet_id: int | None = None,
    dup: bool = False,
) -> bytes:
    """One PUBLISH packet (the data plane's hot path: one call, few allocations)."""
    if len(topic) > 0xFFFF:
        raise ProtocolViolation(f"topic of {len(topic)} bytes exceeds 65535")
    if qos:
        if qos not in (1, 2):
            raise ProtocolViolation(f"QoS {qos!r} is not 0, 1 or 2")
        head = (
            len(topic).to_bytes(2, "big")
            + topic
            + _check_id(packet_id, "PUBLISH").to_bytes(2, "big")
        )
    else:
        if dup:
            raise ProtocolViolation("DUP must be 0 on a QoS 0 PUBLISH (MQTT-3.3.1-2)")
        head = len(topic).to_bytes(2, "big") + topic
    size = len(head) + len(payload)
    flags = 0x30 | qos << 1 | (1 if retain else 0) | (8 if dup else 0)
    if size < 128:
        return bytes((flags, size)) + head + payload
    return bytes((flags,)) + remaining_length(size) + head + payload


def encode_puback(packet_id: int) -> bytes:
    return b"\x40\x02" + _check_id(packet_id, "PUBACK").to_bytes(2, "big")


def _text(value: str) -> bytes:
    return _blob(value.encode("utf-8"))


def _blob(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ProtocolViolation(f"field of {len(value)} bytes exceeds 65535")
    return len(value).to_bytes(2, "big") + value


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes((kind << 4 | flags,)) + remaining_length(len(body)) + body


def _check_qos(qos: int) -> int:
    if qos not in (0, 1, 2):
        raise ProtocolViolation(f"QoS {qos!r} is not 0, 1 or 2")
    return qos


def encode(packet: Packet) -> bytes:
    """Any packet as bytes; raises ``ProtocolViolation`` if it breaks a 3.1.1 rule."""
    if isinstance(packet, Publish):
        return encode_publish(
            packet.topic, packet.payload, packet.qos, packet.retain, packet.packet_id, packet.dup
        )
    if isinstance(packet, PubAck | PubRec | PubRel | PubComp | UnsubAck):
        kind = {PubAck: 4, PubRec: 5, PubRel: 6, PubComp: 7, UnsubAck: 11}[type(packet)]
        packet_id = _check_id(packet.packet_id, _name(kind))
        return _packet(kind, _REQUIRED_FLAGS[kind], packet_id.to_bytes(2, "big"))
    if isinstance(packet, PingReq):
        return b"\xc0\x00"
    if isinstance(packet, PingResp):
        return b"\xd0\x00"
    if isinstance(packet, Disconnect):
        return b"\xe0\x00"
    if isinstance(packet, ConnAck):
        if not 0 <= packet.return_code <= 0xFF:
            raise ProtocolViolation(f"CONNACK return code {packet.return_code!r}")
        return bytes((0x20, 2, 1 if packet.session_present else 0, packet.return_code))
    if isinstance(packet, SubAck):
        if not packet.return_codes or not _SUBACK_CODES.issuperset(packet.return_codes):
            raise ProtocolViolation(f"SUBACK return codes {packet.return_codes!r}")
        body = _check_id(packet.packet_id, "SUBACK").to_bytes(2, "big")
        return _packet(9, 0, body + bytes(packet.return_codes))
    if isinstance(packet, Subscribe):
        if not packet.topics:
            raise ProtocolViolation("SUBSCRIBE without a topic filter (MQTT-3.8.3-3)")
        body = _check_id(packet.packet_id, "SUBSCRIBE").to_bytes(2, "big") + b"".join(
            _text(topic) + bytes((_check_qos(qos),)) for topic, qos in packet.topics
        )
        return _packet(8, 2, body)
    if isinstance(packet, Unsubscribe):
        if not packet.topics:
            raise ProtocolViolation("UNSUBSCRIBE without a topic filter (MQTT-3.10.3-2)")
        body = _check_id(packet.packet_id, "UNSUBSCRIBE").to_bytes(2, "big") + b"".join(
            _text(topic) for topic in packet.topics
        )
        return _packet(10, 2, body)
    if isinstance(packet, SkippedPublish):
        raise ProtocolViolation("a skipped PUBLISH has no payload left to encode")
    return _encode_connect(packet)


def _encode_connect(packet: Connect) -> bytes:
    if not 0 <= packet.keep_alive <= 0xFFFF:
        raise ProtocolViolation(f"keep-alive {packet.keep_alive!r} is not 0..65535")
    flags = 0x02 if packet.clean_session else 0
    tail = b""
    will = packet.will
    if will is not None:
        flags |= 0x04 | _check_qos(will.qos) << 3 | (0x20 if will.retain else 0)
        tail += _text(will.topic) + _blob(will.payload)
    if packet.username is not None:
        flags |= 0x80
        tail += _text(packet.username)
    if packet.password is not None:
        if packet.username is None:
            raise ProtocolViolation("password without a user name (MQTT-3.1.2-22)")
        flags |= 0x40
        tail += _blob(packet.password)
    body = (
        _text("MQTT")
        + bytes((4, flags))
        + packet.keep_alive.to_bytes(2, "big")
        + _text(packet.client_id)
        + tail
    )
    return _packet(1, 0, body)
