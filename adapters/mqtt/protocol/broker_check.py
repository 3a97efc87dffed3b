"""What a client must refuse in what a broker sends, for a connector on any MQTT library.

A connector built on a client library that trusts its broker (gmqtt does; see
``examples/gmqtt_connector``) feeds this every byte its library writes and reads:
``sent`` learns what the broker owes an answer to, ``received`` splits the broker's
bytes into the whole packets that are fine and the first protocol violation, which
names the statement it breaks. The connector hands its library the bytes that are
fine and closes the connection on the violation (MQTT-4.8.0-1).

Rules of this module:
- pure, like the rest of ``protocol``: bytes in, verdicts out; no socket, no clock;
- the rules are the ones the reference connector keeps, from their one owner each:
  the codec (``packets.PacketReader``: framing, fixed-header flags, QoS 3, packet
  identifier 0, lengths that lie), the session's state table (``session``: CONNACK
  first, packets no broker sends), ``topic_name_flaw`` (a PUBLISH's topic must be a
  topic name) and the SUBACK's one return code per filter (MQTT-3.8.4-5);
- one instance per network connection: ``connection_opened`` starts a new one.
"""

from __future__ import annotations

from taktora_connector.adapters.mqtt.topics import validate_topic_name
from taktora_connector.domain import ConfigurationError

from .packets import (
    NeedData,
    PacketReader,
    PacketType,
    ProtocolViolation,
    Publish,
    SkippedPublish,
    SubAck,
    Subscribe,
)
from .session import ClientSession


def topic_name_flaw(raw: bytes) -> str | None:
    """Why the bytes of a received PUBLISH's topic are no topic name, naming the
    statement they break, or ``None``: UTF-8 (MQTT-1.5.3-1), not empty (MQTT-4.7.3-1),
    no wildcard (MQTT-3.3.2-2), no U+0000 (MQTT-1.5.3-2)."""
    try:
        topic = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"the topic name {raw!r} is not UTF-8 (MQTT-1.5.3-1)"
    if not topic:
        return "the empty topic name (MQTT-4.7.3-1)"
    if "+" in topic or "#" in topic:
        return f"the topic name {topic!r} holds a wildcard (MQTT-3.3.2-2)"
    if "\x00" in topic:
        return f"the topic name {topic!r} holds U+0000 (MQTT-1.5.3-2)"
    try:
        validate_topic_name(topic)
    except ConfigurationError as err:
        return str(err)
    return None


class BrokerCheck:
    """One connection's broker bytes, checked packet by packet."""

    def __init__(self) -> None:
        self._incoming = PacketReader()
        self._outgoing = PacketReader()
        self._session = ClientSession()
        self._filters: dict[int, int] = {}  # SUBSCRIBE id -> how many filters it asked for
        self.connection_opened()

    def connection_opened(self) -> None:
        """A new network connection: CONNECT goes out, CONNACK is awaited (a fresh
        connection owes and knows nothing of the one before)."""
        self._incoming = PacketReader()
        self._outgoing = PacketReader()
        self._filters.clear()
        self._session.connection_opened()

    @property
    def connected(self) -> bool:
        """The broker's CONNACK came (accepting or not)."""
        return self._session.connected

    def sent(self, data: bytes) -> None:
        """The client's bytes: each SUBSCRIBE's filters, so its SUBACK can be checked."""
        self._outgoing.receive_data(data)
        while True:
            try:
                packet = self._outgoing.next_event()
            except ProtocolViolation:
                self._outgoing = PacketReader()  # the client's own fault: not ours to judge
                return
            if isinstance(packet, NeedData):
                return
            if isinstance(packet, Subscribe):
                self._filters[packet.packet_id] = len(packet.topics)

    def received(self, data: bytes) -> tuple[int, ProtocolViolation | None]:
        """How many of ``data``'s bytes end whole packets that are fine (hand those on),
        and the first violation in the rest (then close the connection), or ``None``."""
        reader = self._incoming
        before = reader.buffered
        reader.receive_data(data)
        fine = -before  # bytes of earlier calls, already handed on, are not counted twice
        try:
            while True:
                packet = reader.next_event()
                if isinstance(packet, NeedData):
                    break
                self._judge(packet)
                fine = len(data) - reader.buffered
        except ProtocolViolation as err:
            self._session.connection_closed()
            return max(fine, 0), err
        return len(data), None

    def _judge(self, packet: object) -> None:
        kind = _kind(packet)
        self._session.received(kind)
        if isinstance(packet, Publish | SkippedPublish):
            flaw = topic_name_flaw(packet.topic)
            if flaw is not None:
                raise ProtocolViolation(f"PUBLISH with {flaw}")
            if packet.qos == 2:
                raise ProtocolViolation(
                    "QoS 2 PUBLISH on a subscription of QoS 1 at most (MQTT-3.8.4-6)"
                )
        elif isinstance(packet, SubAck):
            wanted = self._filters.pop(packet.packet_id, None)
            if wanted is None:
                raise ProtocolViolation(
                    f"SUBACK {packet.packet_id} answers no SUBSCRIBE in flight (MQTT-3.8.4-2)"
                )
            if len(packet.return_codes) != wanted:
                raise ProtocolViolation(
                    f"SUBACK {packet.packet_id} has {len(packet.return_codes)} return codes "
                    f"for {wanted} filters (MQTT-3.8.4-5)"
                )


def _kind(packet: object) -> int:
    if isinstance(packet, Publish | SkippedPublish):
        return PacketType.PUBLISH
    name = type(packet).__name__.upper()
    return int(PacketType[name])
