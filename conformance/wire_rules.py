"""What a client sends, judged statement by statement ([MQTT-x.y.z-n] of MQTT 3.1.1).

Rules of this module:
- it is pure: one client's traffic as the kit's proxy saw it (``WirePacket`` records
  of every connection, and how each connection ended) goes in, one ``Finding`` per
  statement comes out; no socket, no clock, no connector;
- one rule per statement (``RULES``): each names every packet that breaks it, and
  counts the packets it judged, so a statement no packet of the scenario touched is
  told apart (``unseen``) from one that held (``passed``);
- it reads the bytes field by field itself rather than through the codec, so a fault
  is named by its own statement, not by the first check a decoder happens to make;
- it judges what the standard requires of every client, never a choice the standard
  leaves open (a client may send SUBSCRIBE right after CONNECT, section 3.1.4, so
  nothing here waits for CONNACK).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .proxy import Close, PacketType, WirePacket

#: Flags every packet type but PUBLISH must carry in its fixed header (section 2.2.2).
REQUIRED_FLAGS = {t: 0x02 if t in (6, 8, 10) else 0x00 for t in range(1, 15) if t != 3}


@dataclass(frozen=True)
class Finding:
    """One statement judged over one scenario's traffic."""

    statement: str
    judged: int  # packets (or resends, connections) the rule looked at
    problems: tuple[str, ...] = ()

    @property
    def outcome(self) -> str:
        """``failed``, ``passed``, or ``unseen`` (nothing of the scenario touched it)."""
        if self.problems:
            return "failed"
        return "passed" if self.judged else "unseen"


@dataclass
class Traffic:
    """One client's traffic: its packets (both directions, every connection, in the
    order the proxy saw them), how its connections ended, and what its writers sent."""

    packets: Sequence[WirePacket]
    closes: Sequence[Close] = ()
    #: Payloads the application handed the connector (the codec's bytes), if known.
    payloads: frozenset[bytes] = frozenset()
    #: The time the traffic was taken (for a keep-alive gap still open at the end).
    until: float = 0.0
    #: Slack on keep-alive gaps: scheduling and the proxy's own loop (seconds).
    keep_alive_slack: float = 0.35
    _connections: dict[int, list[WirePacket]] = field(default_factory=dict, repr=False)
    #: What several rules read, walked once per audit (``_in_flight_history``).
    _history: _History | None = field(default=None, repr=False)

    def connections(self) -> dict[int, list[WirePacket]]:
        if not self._connections:
            for packet in self.packets:
                self._connections.setdefault(packet.connection, []).append(packet)
        return self._connections

    def sent(self, *kinds: PacketType) -> list[WirePacket]:
        return [p for p in self.packets if p.direction == "out" and (not kinds or p.type in kinds)]


# -- reading fields -------------------------------------------------------------------------


class _Cursor:
    """Reads MQTT fields from a packet body; ``None`` once the bytes run out."""

    def __init__(self, body: bytes, pos: int = 0) -> None:
        self.body = body
        self.pos = pos

    @property
    def left(self) -> int:
        return len(self.body) - self.pos

    def byte(self) -> int | None:
        if self.left < 1:
            return None
        self.pos += 1
        return self.body[self.pos - 1]

    def u16(self) -> int | None:
        if self.left < 2:
            return None
        (value,) = struct.unpack_from("!H", self.body, self.pos)
        self.pos += 2
        return int(value)

    def blob(self) -> bytes | None:
        length = self.u16()
        if length is None or self.left < length:
            return None
        self.pos += length
        return self.body[self.pos - length : self.pos]


def _utf8_flaw(raw: bytes) -> str | None:
    """Why ``raw`` is no well-formed UTF-8 string of MQTT (section 1.5.3), or ``None``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"ill-formed UTF-8 ({err.reason} at byte {err.start})"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return "a UTF-16 surrogate encoded as UTF-8"
    return None


@dataclass(frozen=True)
class _ConnectFields:
    """A CONNECT read field by field; what could not be read is ``None``."""

    packet: WirePacket
    flags: int | None
    keep_alive: int | None
    client_id: bytes | None
    will_topic: bytes | None
    will_message: bytes | None
    username: bytes | None
    password: bytes | None
    rest: int  # bytes left after the fields the flags announce (-1: ran out first)
    ran_out_at: str  # the field that was cut short, if any


def _connect_fields(packet: WirePacket) -> _ConnectFields:
    cursor = _Cursor(packet.body)
    cursor.blob()  # protocol name
    cursor.byte()  # level
    flags = cursor.byte()
    keep_alive = cursor.u16()
    values: dict[str, bytes | None] = dict.fromkeys(
        ("client_id", "will_topic", "will_message", "username", "password")
    )
    wanted = ["client_id"]
    if flags is not None:
        if flags & 0x04:
            wanted += ["will_topic", "will_message"]
        if flags & 0x80:
            wanted.append("username")
        if flags & 0x40:
            wanted.append("password")
    ran_out = ""
    for name in wanted:
        value = cursor.blob() if flags is not None else None
        if value is None:
            ran_out = name
            break
        values[name] = value
    return _ConnectFields(
        packet,
        flags,
        keep_alive,
        values["client_id"],
        values["will_topic"],
        values["will_message"],
        values["username"],
        values["password"],
        -1 if ran_out else cursor.left,
        ran_out,
    )


def _topic_of(packet: WirePacket) -> bytes | None:
    cursor = _Cursor(packet.body)
    return cursor.blob()


def _publish_id(packet: WirePacket) -> int | None:
    cursor = _Cursor(packet.body)
    if cursor.blob() is None or not packet.qos:
        return None
    return cursor.u16()


def _publish_payload(packet: WirePacket) -> bytes | None:
    cursor = _Cursor(packet.body)
    if cursor.blob() is None:
        return None
    if packet.qos and cursor.u16() is None:
        return None
    return packet.body[cursor.pos :]


def _filters(packet: WirePacket) -> tuple[list[tuple[bytes, int | None]], bool]:
    """A SUBSCRIBE's (filter, requested QoS byte) or an UNSUBSCRIBE's (filter, None),
    and whether the payload read to its end exactly."""
    cursor = _Cursor(packet.body, 2)
    found: list[tuple[bytes, int | None]] = []
    while cursor.left > 0:
        name = cursor.blob()
        if name is None:
            return found, False
        if packet.type is PacketType.SUBSCRIBE:
            options = cursor.byte()
            if options is None:
                return found, False
            found.append((name, options))
        else:
            found.append((name, None))
    return found, True


def _short(packet: WirePacket) -> str:
    return f"{packet.type.name} on connection {packet.connection}"


# -- the rules -------------------------------------------------------------------------------

Rule = Callable[[Traffic], tuple[int, list[str]]]
RULES: dict[str, Rule] = {}


def rule(*statements: str) -> Callable[[Rule], Rule]:
    def register(check: Rule) -> Rule:
        for statement in statements:
            if statement in RULES:
                raise ValueError(f"{statement} has two rules")
            RULES[statement] = check
        return check

    return register


def _connects(traffic: Traffic) -> list[_ConnectFields]:
    return [_connect_fields(p) for p in traffic.sent(PacketType.CONNECT)]


@rule("MQTT-2.2.2-1")
def _reserved_flags(traffic: Traffic) -> tuple[int, list[str]]:
    judged, problems = 0, []
    for packet in traffic.sent():
        if packet.type is PacketType.PUBLISH:
            continue
        judged += 1
        if packet.flags != REQUIRED_FLAGS[packet.type]:
            problems.append(
                f"{_short(packet)} has fixed-header flags {packet.flags:04b}, not "
                f"{REQUIRED_FLAGS[packet.type]:04b}"
            )
    return judged, problems


def _specific_flags(kind: PacketType) -> Rule:
    def check(traffic: Traffic) -> tuple[int, list[str]]:
        sent = traffic.sent(kind)
        wrong = [
            f"{_short(p)} has fixed-header flags {p.flags:04b}, not 0010"
            for p in sent
            if p.flags != 0x02
        ]
        return len(sent), wrong

    return check


rule("MQTT-3.8.1-1")(_specific_flags(PacketType.SUBSCRIBE))
rule("MQTT-3.10.1-1")(_specific_flags(PacketType.UNSUBSCRIBE))


@rule("MQTT-3.1.0-1")
def _connect_first(traffic: Traffic) -> tuple[int, list[str]]:
    problems = []
    judged = 0
    for number, packets in traffic.connections().items():
        sent = [p for p in packets if p.direction == "out"]
        if not sent:
            continue
        judged += 1
        if sent[0].type is not PacketType.CONNECT:
            problems.append(f"connection {number} began with {sent[0].type.name}, not CONNECT")
    return judged, problems


@rule("MQTT-3.1.0-2")
def _connect_once(traffic: Traffic) -> tuple[int, list[str]]:
    problems = []
    judged = 0
    for number, packets in traffic.connections().items():
        connects = [p for p in packets if p.direction == "out" and p.type is PacketType.CONNECT]
        judged += bool(connects)
        if len(connects) > 1:
            problems.append(f"connection {number} carried {len(connects)} CONNECT packets")
    return judged, problems


def _connect_rule(test: Callable[[_ConnectFields], str | None]) -> Rule:
    def check(traffic: Traffic) -> tuple[int, list[str]]:
        found = _connects(traffic)
        problems = []
        for fields in found:
            problem = test(fields)
            if problem:
                problems.append(f"CONNECT on connection {fields.packet.connection}: {problem}")
        return len(found), problems

    return check


def _will_clear(fields: _ConnectFields) -> bool:
    return fields.flags is not None and not fields.flags & 0x04


rule("MQTT-3.1.2-3")(
    _connect_rule(
        lambda f: (
            "the reserved flag (bit 0) is set" if f.flags is not None and f.flags & 1 else None
        )
    )
)
rule("MQTT-3.1.2-11")(
    _connect_rule(
        lambda f: (
            "no will flag, yet will fields follow the client identifier"
            if _will_clear(f) and f.rest > 0 and not (f.flags or 0) & 0xC0
            else None
        )
    )
)
rule("MQTT-3.1.2-13")(
    _connect_rule(
        lambda f: (
            f"no will flag, yet will QoS {((f.flags or 0) >> 3) & 3}"
            if _will_clear(f) and (f.flags or 0) & 0x18
            else None
        )
    )
)
rule("MQTT-3.1.2-14")(
    _connect_rule(
        lambda f: (
            "will QoS 3"
            if f.flags is not None and f.flags & 0x04 and (f.flags >> 3) & 3 == 3
            else None
        )
    )
)
rule("MQTT-3.1.2-15")(
    _connect_rule(
        lambda f: (
            "no will flag, yet the will retain flag"
            if _will_clear(f) and (f.flags or 0) & 0x20
            else None
        )
    )
)
rule("MQTT-3.1.2-18")(
    _connect_rule(
        lambda f: (
            "no user-name flag, yet a field follows where the user name would be"
            if f.flags is not None and not f.flags & 0xC0 and f.rest > 0
            else None
        )
    )
)
rule("MQTT-3.1.2-19")(
    _connect_rule(
        lambda f: (
            "the user-name flag is set and no user name follows"
            if f.ran_out_at == "username"
            else None
        )
    )
)
rule("MQTT-3.1.2-20")(
    _connect_rule(
        lambda f: (
            "no password flag, yet a field follows the user name"
            if f.flags is not None and f.flags & 0x80 and not f.flags & 0x40 and f.rest > 0
            else None
        )
    )
)
rule("MQTT-3.1.2-21")(
    _connect_rule(
        lambda f: (
            "the password flag is set and no password follows"
            if f.ran_out_at == "password"
            else None
        )
    )
)
rule("MQTT-3.1.2-22")(
    _connect_rule(
        lambda f: (
            "the password flag without the user-name flag"
            if f.flags is not None and f.flags & 0x40 and not f.flags & 0x80
            else None
        )
    )
)


def _payload_flaw(f: _ConnectFields) -> str | None:
    if f.rest == 0:
        return None
    how = (
        f"cut short at the {f.ran_out_at.replace('_', ' ')}"
        if f.ran_out_at
        else (f"{f.rest} bytes too many")
    )
    return f"the payload does not hold the fields its flags announce, in order ({how})"


rule("MQTT-3.1.3-1")(_connect_rule(_payload_flaw))
rule("MQTT-3.1.3-4")(
    _connect_rule(
        lambda f: (
            f"the client identifier is {_utf8_flaw(f.client_id)}"
            if f.client_id is not None and _utf8_flaw(f.client_id)
            else None
        )
    )
)
rule("MQTT-3.1.3-11")(
    _connect_rule(
        lambda f: (
            f"the user name is {_utf8_flaw(f.username)}"
            if f.username is not None and _utf8_flaw(f.username)
            else None
        )
    )
)


@rule("MQTT-3.1.3-7")
def _empty_client_id(traffic: Traffic) -> tuple[int, list[str]]:
    empty = [f for f in _connects(traffic) if f.client_id == b"" and f.flags is not None]
    problems = [
        f"CONNECT on connection {f.packet.connection}: an empty client identifier with "
        "clean session 0"
        for f in empty
        if not (f.flags or 0) & 0x02
    ]
    return len(empty), problems


@rule("MQTT-3.1.3-10")
def _will_topic(traffic: Traffic) -> tuple[int, list[str]]:
    wills = [f for f in _connects(traffic) if f.will_topic is not None]
    problems = [
        f"CONNECT on connection {f.packet.connection}: the will topic is {_utf8_flaw(f.will_topic)}"
        for f in wills
        if f.will_topic is not None and _utf8_flaw(f.will_topic)
    ]
    return len(wills), problems


def _strings_sent(traffic: Traffic) -> Iterable[tuple[WirePacket, str, bytes]]:
    """Every UTF-8 string field the client sent: (packet, what it is, bytes)."""
    for fields in _connects(traffic):
        for name in ("client_id", "will_topic", "username"):
            value = getattr(fields, name)
            if value is not None:
                yield fields.packet, name.replace("_", " "), value
    for packet in traffic.sent(PacketType.PUBLISH):
        topic = _topic_of(packet)
        if topic is not None:
            yield packet, "topic name", topic
    for packet in traffic.sent(PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE):
        for topic_filter, _ in _filters(packet)[0]:
            yield packet, "topic filter", topic_filter


@rule("MQTT-1.5.3-1")
def _well_formed_strings(traffic: Traffic) -> tuple[int, list[str]]:
    judged, problems = 0, []
    for packet, what, raw in _strings_sent(traffic):
        judged += 1
        flaw = _utf8_flaw(raw)
        if flaw:
            problems.append(f"{_short(packet)}: its {what} {raw!r} is {flaw}")
    return judged, problems


@rule("MQTT-1.5.3-2")
def _no_nul(traffic: Traffic) -> tuple[int, list[str]]:
    judged, problems = 0, []
    for packet, what, raw in _strings_sent(traffic):
        judged += 1
        if b"\x00" in raw:
            problems.append(f"{_short(packet)}: its {what} {raw!r} holds U+0000")
    return judged, problems


def _topics_sent(traffic: Traffic) -> list[tuple[WirePacket, bytes]]:
    found = []
    for packet in traffic.sent(PacketType.PUBLISH):
        topic = _topic_of(packet)
        if topic is not None:
            found.append((packet, topic))
    return found


@rule("MQTT-3.3.2-1")
def _topic_name_first(traffic: Traffic) -> tuple[int, list[str]]:
    sent = traffic.sent(PacketType.PUBLISH)
    problems = []
    for packet in sent:
        topic = _topic_of(packet)
        if topic is None:
            problems.append(f"{_short(packet)} has no whole topic name first")
        elif _utf8_flaw(topic):
            problems.append(f"{_short(packet)}: its topic name {topic!r} is {_utf8_flaw(topic)}")
    return len(sent), problems


@rule("MQTT-3.3.2-2", "MQTT-4.7.1-1")
def _no_wildcard_in_names(traffic: Traffic) -> tuple[int, list[str]]:
    found = _topics_sent(traffic)
    problems = [
        f"{_short(p)} is published to {t!r}, a name with a wildcard"
        for p, t in found
        if b"+" in t or b"#" in t
    ]
    return len(found), problems


def _filters_sent(traffic: Traffic) -> list[tuple[WirePacket, bytes]]:
    return [
        (packet, name)
        for packet in traffic.sent(PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE)
        for name, _ in _filters(packet)[0]
    ]


def _hash_flaw(name: bytes) -> bool:
    levels = name.split(b"/")
    return any(
        b"#" in level and (level != b"#" or i != len(levels) - 1) for i, level in enumerate(levels)
    )


def _plus_flaw(name: bytes) -> bool:
    body = name
    if body.startswith(b"$share/"):  # a share group is not a level of the filter
        body = body.split(b"/", 2)[2] if body.count(b"/") >= 2 else body
    return any(b"+" in level and level != b"+" for level in body.split(b"/"))


@rule("MQTT-4.7.1-2")
def _hash_alone_last(traffic: Traffic) -> tuple[int, list[str]]:
    found = _filters_sent(traffic)
    return len(found), [
        f"{_short(p)}: filter {n!r} has '#' that is not a whole last level"
        for p, n in found
        if _hash_flaw(n)
    ]


@rule("MQTT-4.7.1-3")
def _plus_whole_level(traffic: Traffic) -> tuple[int, list[str]]:
    found = _filters_sent(traffic)
    return len(found), [
        f"{_short(p)}: filter {n!r} has '+' that is not a whole level"
        for p, n in found
        if _plus_flaw(n)
    ]


@rule("MQTT-4.7.3-1")
def _not_empty(traffic: Traffic) -> tuple[int, list[str]]:
    names = [(p, t, "topic name") for p, t in _topics_sent(traffic)]
    names += [(p, n, "topic filter") for p, n in _filters_sent(traffic)]
    return len(names), [f"{_short(p)}: an empty {what}" for p, n, what in names if not n]


@rule("MQTT-4.7.3-2")
def _no_nul_in_topics(traffic: Traffic) -> tuple[int, list[str]]:
    names = [(p, t) for p, t in _topics_sent(traffic)] + _filters_sent(traffic)
    return len(names), [f"{_short(p)}: {n!r} holds U+0000" for p, n in names if b"\x00" in n]


@rule("MQTT-3.8.3-1")
def _subscribe_utf8(traffic: Traffic) -> tuple[int, list[str]]:
    return _filters_utf8(traffic, PacketType.SUBSCRIBE)


@rule("MQTT-3.10.3-1")
def _unsubscribe_utf8(traffic: Traffic) -> tuple[int, list[str]]:
    return _filters_utf8(traffic, PacketType.UNSUBSCRIBE)


def _filters_utf8(traffic: Traffic, kind: PacketType) -> tuple[int, list[str]]:
    sent = traffic.sent(kind)
    problems = []
    for packet in sent:
        names, whole = _filters(packet)
        if not whole:
            problems.append(f"{_short(packet)}: its payload is not whole topic filters")
        problems += [
            f"{_short(packet)}: filter {n!r} is {_utf8_flaw(n)}" for n, _ in names if _utf8_flaw(n)
        ]
    return len(sent), problems


@rule("MQTT-3.8.3-3")
def _subscribe_not_empty(traffic: Traffic) -> tuple[int, list[str]]:
    sent = traffic.sent(PacketType.SUBSCRIBE)
    return len(sent), [f"{_short(p)} holds no topic filter" for p in sent if not _filters(p)[0]]


@rule("MQTT-3.10.3-2")
def _unsubscribe_not_empty(traffic: Traffic) -> tuple[int, list[str]]:
    sent = traffic.sent(PacketType.UNSUBSCRIBE)
    return len(sent), [f"{_short(p)} holds no topic filter" for p in sent if not _filters(p)[0]]


@rule("MQTT-3.8.3-4")
def _requested_qos(traffic: Traffic) -> tuple[int, list[str]]:
    sent = traffic.sent(PacketType.SUBSCRIBE)
    problems = []
    for packet in sent:
        for name, options in _filters(packet)[0]:
            if options is not None and (options & 0xFC or options & 0x03 == 3):
                problems.append(
                    f"{_short(packet)}: filter {name!r} asks with options byte {options:#04x} "
                    "(QoS 0 to 2, the other bits 0)"
                )
    return len(sent), problems


@rule("MQTT-3.3.1-2")
def _qos0_no_dup(traffic: Traffic) -> tuple[int, list[str]]:
    sent = [p for p in traffic.sent(PacketType.PUBLISH) if p.qos == 0]
    return len(sent), [f"{_short(p)} at QoS 0 has DUP set" for p in sent if p.dup]


@rule("MQTT-3.3.1-4")
def _never_qos3(traffic: Traffic) -> tuple[int, list[str]]:
    sent = traffic.sent(PacketType.PUBLISH)
    return len(sent), [f"{_short(p)} has both QoS bits set (QoS 3)" for p in sent if p.qos == 3]


@rule("MQTT-2.3.1-1")
def _nonzero_ids(traffic: Traffic) -> tuple[int, list[str]]:
    judged, problems = 0, []
    for packet in traffic.sent(PacketType.PUBLISH, PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE):
        if packet.type is PacketType.PUBLISH:
            if not packet.qos:
                continue
            packet_id = _publish_id(packet)
        else:
            packet_id = _Cursor(packet.body).u16()
        judged += 1
        if not packet_id:
            problems.append(f"{_short(packet)} has packet identifier {packet_id!r}")
    return judged, problems


@rule("MQTT-2.3.1-5")
def _qos0_no_id(traffic: Traffic) -> tuple[int, list[str]]:
    """A QoS 0 PUBLISH with an identifier shows as two bytes before the payload the
    application sent: judged on the PUBLISHes whose payload the kit knows."""
    judged, problems = 0, []
    for packet in traffic.sent(PacketType.PUBLISH):
        if packet.qos:
            continue
        payload = _publish_payload(packet)
        if payload is None:
            continue
        if payload in traffic.payloads:
            judged += 1
        elif len(payload) >= 2 and payload[2:] in traffic.payloads:
            judged += 1
            problems.append(
                f"{_short(packet)} at QoS 0 carries two bytes ({payload[:2].hex()}) before the "
                "payload sent: a packet identifier"
            )
    return judged, problems


# -- identifiers over time: in use, resends, acknowledgements --------------------------------


@dataclass
class _Sent:
    packet: WirePacket
    packet_id: int
    topic: bytes | None
    payload: bytes | None


class _History(NamedTuple):
    problems: list[str]  # identifiers reused while in use (MQTT-2.3.1-2)
    owed: list[list[_Sent]]  # per resumed connection: what it must send again
    judged: int  # new identifiers judged


def _in_flight_history(traffic: Traffic) -> _History:
    """Walks the client's packets in order, keeping the identifiers in use (a QoS 1
    PUBLISH until its PUBACK, a SUBSCRIBE until its SUBACK, an UNSUBSCRIBE until its
    UNSUBACK; a clean session starts with none, a resumed one keeps its PUBLISHes).

    Returns the reuse problems (MQTT-2.3.1-2), for each connection after the first of
    a resumed session the QoS 1 PUBLISHes unacknowledged when the one before it ended
    (what 4.4.0-1 says must come again), and how many new identifiers were judged.
    Walked once per traffic: six rules read it."""
    if traffic._history is not None:
        return traffic._history
    in_use: dict[int, _Sent] = {}
    publishes: dict[int, _Sent] = {}  # unacknowledged QoS 1 PUBLISHes, by id, in order
    problems: list[str] = []
    owed: list[list[_Sent]] = []
    judged = 0
    connected_before = False

    def take(sent: _Sent) -> None:
        """A new packet takes its identifier: one still in use is a reuse."""
        nonlocal judged
        judged += 1
        holder = in_use.get(sent.packet_id)
        if holder is not None:
            problems.append(
                f"{_short(sent.packet)} uses identifier {sent.packet_id}, still in use by "
                f"the {holder.packet.type.name} on connection {holder.packet.connection}"
            )
        in_use[sent.packet_id] = sent

    for packet in traffic.packets:
        if packet.direction == "out" and packet.type is PacketType.CONNECT:
            fields = _connect_fields(packet)
            clean = fields.flags is None or bool(fields.flags & 0x02)
            if clean:
                in_use.clear()
                publishes.clear()
            elif connected_before:
                # Only PUBLISHes survive a connection: SUBSCRIBEs were answered or lost.
                in_use = {i: s for i, s in in_use.items() if i in publishes}
                owed.append(list(publishes.values()))
            connected_before = True
        elif packet.direction == "out" and packet.type is PacketType.PUBLISH and packet.qos:
            packet_id = _publish_id(packet)
            if packet_id and not (packet.dup and packet_id in publishes):  # not a resend
                sent = _Sent(packet, packet_id, _topic_of(packet), _publish_payload(packet))
                take(sent)
                publishes[packet_id] = sent
        elif packet.direction == "out" and packet.type in (
            PacketType.SUBSCRIBE,
            PacketType.UNSUBSCRIBE,
        ):
            packet_id = _Cursor(packet.body).u16()
            if packet_id:
                take(_Sent(packet, packet_id, None, None))
        elif packet.direction == "in" and packet.type in (
            PacketType.PUBACK,
            PacketType.SUBACK,
            PacketType.UNSUBACK,
        ):
            packet_id = _Cursor(packet.body).u16()
            if packet_id is not None and not packet.injected:
                in_use.pop(packet_id, None)
                if packet.type is PacketType.PUBACK:
                    publishes.pop(packet_id, None)
    traffic._history = _History(problems, owed, judged)
    return traffic._history


@rule("MQTT-2.3.1-2")
def _ids_unused(traffic: Traffic) -> tuple[int, list[str]]:
    history = _in_flight_history(traffic)
    return history.judged, history.problems


def _resumed_connections(traffic: Traffic) -> list[list[WirePacket]]:
    """The connections after the first whose CONNECT asked to resume (clean session 0),
    in order, each as its packets."""
    found = []
    seen_first = False
    for packets in traffic.connections().values():
        connect = next(
            (p for p in packets if p.direction == "out" and p.type is PacketType.CONNECT), None
        )
        if connect is None:
            continue
        fields = _connect_fields(connect)
        if seen_first and fields.flags is not None and not fields.flags & 0x02:
            found.append(packets)
        seen_first = True
    return found


def _resends(traffic: Traffic) -> list[tuple[list[_Sent], list[_Sent]]]:
    """For each resumed connection: what was owed (unacknowledged when the connection
    before it ended) and the QoS 1 PUBLISHes that connection carried, in order."""
    owed = _in_flight_history(traffic).owed
    pairs = []
    for due, packets in zip(owed, _resumed_connections(traffic), strict=False):
        carried = [
            _Sent(p, _publish_id(p) or 0, _topic_of(p), _publish_payload(p))
            for p in packets
            if p.direction == "out" and p.type is PacketType.PUBLISH and p.qos
        ]
        pairs.append((due, carried))
    return pairs


def _same_message(a: _Sent, b: _Sent) -> bool:
    return a.topic == b.topic and a.payload == b.payload


def _sent_again(traffic: Traffic) -> list[tuple[_Sent, _Sent | None]]:
    """Each QoS 1 PUBLISH a resumed session owed, with the one that carried it again
    on that connection (``None``: it did not come again)."""
    return [
        (message, next((c for c in carried if _same_message(message, c)), None))
        for due, carried in _resends(traffic)
        for message in due
    ]


@rule("MQTT-4.4.0-1", "MQTT-4.3.2-1")
def _resend_all(traffic: Traffic) -> tuple[int, list[str]]:
    pairs = _sent_again(traffic)
    return len(pairs), [
        f"the QoS 1 PUBLISH {message.packet_id} unacknowledged on connection "
        f"{message.packet.connection} was not sent again on the resumed session"
        for message, again in pairs
        if again is None
    ]


@rule("MQTT-2.3.1-3")
def _resend_same_id(traffic: Traffic) -> tuple[int, list[str]]:
    pairs = [(m, a) for m, a in _sent_again(traffic) if a is not None]
    return len(pairs), [
        f"the PUBLISH first sent with identifier {message.packet_id} came again with "
        f"identifier {again.packet_id}"
        for message, again in pairs
        if again.packet_id != message.packet_id
    ]


@rule("MQTT-3.3.1-1")
def _dup_on_resend(traffic: Traffic) -> tuple[int, list[str]]:
    pairs = [(m, a) for m, a in _sent_again(traffic) if a is not None]
    return len(pairs), [
        f"the PUBLISH {message.packet_id} sent again on connection {again.packet.connection} "
        "has DUP 0"
        for message, again in pairs
        if not again.packet.dup
    ]


@rule("MQTT-3.3.1-3")
def _dup_only_on_resend(traffic: Traffic) -> tuple[int, list[str]]:
    """DUP 1 only on a message sent before: a first attempt carries DUP 0."""
    first_seen: dict[tuple[bytes | None, bytes | None, int], WirePacket] = {}
    judged, problems = 0, []
    for packet in traffic.sent(PacketType.PUBLISH):
        if not packet.qos:
            continue
        judged += 1
        key = (_topic_of(packet), _publish_payload(packet), _publish_id(packet) or 0)
        if packet.dup and key not in first_seen:
            problems.append(
                f"{_short(packet)} (identifier {key[2]}) has DUP 1 on its first attempt"
            )
        first_seen.setdefault(key, packet)
    return judged, problems


@rule("MQTT-4.6.0-1")
def _resend_in_order(traffic: Traffic) -> tuple[int, list[str]]:
    judged, problems = 0, []
    for due, carried in _resends(traffic):
        positions = []
        for message in due:
            index = next((i for i, c in enumerate(carried) if _same_message(message, c)), None)
            if index is not None:
                positions.append((index, message.packet_id))
        if len(positions) < 2:
            continue
        judged += len(positions)
        order = [pid for _, pid in sorted(positions)]
        first = [pid for _, pid in positions]
        if order != first:
            problems.append(f"resent in the order {order}, first sent in the order {first}")
    return judged, problems


def _acks_per_connection(traffic: Traffic) -> dict[int, tuple[list[int], list[int], list[int]]]:
    """Per connection: the identifiers of the QoS 1 PUBLISHes the client received (the
    broker's, not the kit's injections), the identifiers of the PUBACKs it sent, and
    the PUBACKs it sent for nothing it received."""
    found = {}
    for number, packets in traffic.connections().items():
        received: list[int] = []
        acked: list[int] = []
        stray: list[int] = []
        for packet in packets:
            if packet.type is PacketType.PUBLISH and packet.direction == "in" and packet.qos == 1:
                if not packet.injected:
                    received.append(_publish_id(packet) or 0)
            elif packet.type is PacketType.PUBACK and packet.direction == "out":
                packet_id = _Cursor(packet.body).u16() or 0
                acked.append(packet_id)
                if packet_id not in received:
                    stray.append(packet_id)
        found[number] = (received, acked, stray)
    return found


@rule("MQTT-2.3.1-6", "MQTT-4.3.2-2")
def _ack_with_its_id(traffic: Traffic) -> tuple[int, list[str]]:
    judged, problems = 0, []
    for number, (_, acked, stray) in _acks_per_connection(traffic).items():
        judged += len(acked)
        problems += [
            f"connection {number}: a PUBACK for identifier {i}, which no QoS 1 PUBLISH it "
            "received carried"
            for i in stray
        ]
    return judged, problems


def _may_owe(traffic: Traffic, number: int) -> bool:
    """Whether a connection may end with PUBACKs owed: one the network or the broker
    ended, or a resumed session's (its broker sends what was not acknowledged again);
    a clean session the client ends itself, or one still open, owes none."""
    close = next((c for c in traffic.closes if c.connection == number), None)
    if close is not None and close.by != "client":
        return True
    connect = next(
        (
            p
            for p in traffic.connections().get(number, [])
            if p.direction == "out" and p.type is PacketType.CONNECT
        ),
        None,
    )
    flags = _connect_fields(connect).flags if connect is not None else None
    return close is not None and flags is not None and not flags & 0x02


@rule("MQTT-3.3.4-1", "MQTT-4.5.0-2")
def _answered_as_qos_says(traffic: Traffic) -> tuple[int, list[str]]:
    """Every QoS 1 PUBLISH received gets one PUBACK on its connection, read or
    dropped (unless the connection ended in a way that leaves it owed, ``_may_owe``);
    a QoS 0 one gets none."""
    judged, problems = 0, []
    for number, (received, acked, _) in _acks_per_connection(traffic).items():
        ended = _may_owe(traffic, number)
        for packet_id in set(received):
            judged += 1
            wanted = received.count(packet_id)
            got = acked.count(packet_id)
            if got > wanted or (got < wanted and not ended):
                problems.append(
                    f"connection {number}: the QoS 1 PUBLISH {packet_id} was received "
                    f"{wanted} time(s) and acknowledged {got} time(s)"
                )
    return judged, problems


@rule("MQTT-4.6.0-2")
def _acks_in_order(traffic: Traffic) -> tuple[int, list[str]]:
    judged, problems = 0, []
    for number, (received, acked, _) in _acks_per_connection(traffic).items():
        expected = [i for i in received if i in acked]
        got = [i for i in acked if i in received]
        judged += len(got)
        if got != expected[: len(got)]:
            problems.append(
                f"connection {number}: PUBACKs went out in the order {got[:12]}, the "
                f"PUBLISHes came in the order {expected[:12]}"
            )
    return judged, problems


@rule("MQTT-3.1.2-23")
def _keep_alive(traffic: Traffic) -> tuple[int, list[str]]:
    """No gap between two packets the client sends (from its CONNECT to the end of the
    connection, or to the end of the traffic) exceeds the keep-alive it asked for."""
    judged, problems = 0, []
    for number, packets in traffic.connections().items():
        sent = [p for p in packets if p.direction == "out"]
        if not sent or sent[0].type is not PacketType.CONNECT:
            continue
        keep_alive = _connect_fields(sent[0]).keep_alive
        if not keep_alive:
            continue
        end = next((c.at for c in traffic.closes if c.connection == number), traffic.until)
        times = [p.at for p in sent if p.type is not PacketType.DISCONNECT]
        if end - times[0] < keep_alive:
            continue  # too short a connection to judge
        judged += 1
        times.append(end)
        worst = max(later - earlier for earlier, later in itertools.pairwise(times))
        if worst > keep_alive + traffic.keep_alive_slack:
            problems.append(
                f"connection {number}: {worst:.2f} s without a packet from the client, with "
                f"a keep-alive of {keep_alive} s"
            )
    return judged, problems


@rule("MQTT-3.14.4-1")
def _nothing_after_disconnect(traffic: Traffic) -> tuple[int, list[str]]:
    judged, problems = 0, []
    for number, packets in traffic.connections().items():
        sent = [p for p in packets if p.direction == "out"]
        index = next((i for i, p in enumerate(sent) if p.type is PacketType.DISCONNECT), None)
        if index is None:
            continue
        judged += 1
        after = [p.type.name for p in sent[index + 1 :]]
        if after:
            problems.append(f"connection {number}: {', '.join(after)} sent after DISCONNECT")
        closed = next((c for c in traffic.closes if c.connection == number), None)
        if closed is None or closed.by != "client":
            by = "still open" if closed is None else f"closed by the {closed.by}"
            problems.append(
                f"connection {number}: the client sent DISCONNECT and did not close the "
                f"connection ({by})"
            )
    return judged, problems


def audit(traffic: Traffic, statements: Iterable[str] | None = None) -> dict[str, Finding]:
    """Each statement (all of ``RULES`` by default) judged over ``traffic``."""
    chosen = list(RULES) if statements is None else [s for s in statements if s in RULES]
    found = {}
    for statement in chosen:
        judged, problems = RULES[statement](traffic)
        found[statement] = Finding(statement, judged, tuple(problems))
    return found
