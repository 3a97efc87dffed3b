"""What a broker may send, and when: the client session's states as one table.

The data plane asks this module about every packet it reads from the broker,
before it acts on it. A packet that the connection's state does not allow is a
protocol violation: the connection is closed (MQTT-4.8.0-1) and the statement
it broke is named in the reason.

Rules of this module:
- pure: no sockets, threads, clocks, logging or paho; it is tested without a
  network (``tests/test_session.py``);
- the states and the packet types each one allows are the literal table
  ``ALLOWED``; nothing else decides;
- a connection starts ``AWAITING_CONNACK``: the broker's first packet must be
  CONNACK (MQTT-3.2.0-1), so a PUBLISH, PUBACK, SUBACK or PINGRESP before it
  ends the connection before anything is delivered or acknowledged;
- ``CONNECTED`` allows what a broker sends to a client that never publishes or
  subscribes above QoS 1: PUBLISH, PUBACK, SUBACK, UNSUBACK, PINGRESP; a second
  CONNACK, a packet only clients send (CONNECT, SUBSCRIBE, UNSUBSCRIBE,
  PINGREQ, DISCONNECT) and the QoS 2 flow (PUBREC, PUBREL, PUBCOMP, which
  answer or follow a QoS 2 PUBLISH this client never sends nor accepts,
  MQTT-3.8.4-6) are violations;
- ``CLOSED`` allows nothing: bytes after the end are not read;
- a CONNACK that refuses (``connack_refusal``) ends the connection as well: the
  caller classifies the code (``connecting.refusal``) and closes, never paho (for
  code 1 paho would reconnect by itself speaking MQTT 3.1).
"""

from __future__ import annotations

import enum
from typing import Final

from .packets import PacketType, ProtocolViolation


class State(enum.Enum):
    AWAITING_CONNACK = "awaiting CONNACK"
    CONNECTED = "connected"
    CLOSED = "closed"


#: The packet types (``PacketType``) each state accepts from the broker.
ALLOWED: Final[dict[State, frozenset[int]]] = {
    State.AWAITING_CONNACK: frozenset({PacketType.CONNACK}),
    State.CONNECTED: frozenset(
        {
            PacketType.PUBLISH,
            PacketType.PUBACK,
            PacketType.SUBACK,
            PacketType.UNSUBACK,
            PacketType.PINGRESP,
        }
    ),
    State.CLOSED: frozenset(),
}

#: Packets only a client sends (MQTT 3.1.1 section 2.2.1, "direction of flow").
_CLIENT_ONLY: Final = frozenset(
    {
        PacketType.CONNECT,
        PacketType.SUBSCRIBE,
        PacketType.UNSUBSCRIBE,
        PacketType.PINGREQ,
        PacketType.DISCONNECT,
    }
)
_QOS2_FLOW: Final = frozenset({PacketType.PUBREC, PacketType.PUBREL, PacketType.PUBCOMP})


def _why(state: State, kind: int) -> str:
    name = PacketType(kind).name
    if state is State.AWAITING_CONNACK:
        return f"{name} before CONNACK: a broker's first packet is CONNACK (MQTT-3.2.0-1)"
    if state is State.CLOSED:
        return f"{name} after the connection ended"
    if kind == PacketType.CONNACK:
        return "a second CONNACK on one connection (MQTT-3.2.0-1 allows one, first)"
    if kind in _CLIENT_ONLY:
        return f"{name} from the broker: only a client sends it (MQTT 3.1.1 section 2.2.1)"
    if kind in _QOS2_FLOW:
        return (
            f"{name} from the broker: this client never sends QoS 2 and never accepts it "
            "(MQTT-3.8.4-6), so there is no QoS 2 flow to continue"
        )
    return f"{name} is not allowed while {state.value}"  # pragma: no cover - table complete


def connack_refusal(packet: bytes) -> int | None:
    """The return code of a whole CONNACK packet that refuses the connection (1 to
    255), or None when it accepts (code 0) or is not a CONNACK. Codes 1 to 5 are the
    standard's (section 3.2.2.3, classified in ``connecting.refusal``); any other
    non-zero code refuses too, as an unknown one."""
    if len(packet) != 4 or packet[:2] != b"\x20\x02" or not packet[3]:
        return None
    return packet[3]


class ClientSession:
    """The state of one network connection, as the broker's packets move it."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = State.CLOSED

    def connection_opened(self) -> None:
        """A new network connection: CONNECT went out, CONNACK is awaited."""
        self.state = State.AWAITING_CONNACK

    def connection_closed(self) -> None:
        self.state = State.CLOSED

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    def received(self, kind: int) -> None:
        """The broker sent a packet of ``kind``: allowed now, or ``ProtocolViolation``
        (and the session is closed). A CONNACK moves it to ``CONNECTED``; whether the
        CONNACK accepts or refuses is the caller's to read (a refusal ends the
        connection all the same)."""
        state = self.state
        if kind not in ALLOWED[state]:
            self.state = State.CLOSED
            raise ProtocolViolation(_why(state, kind))
        if kind == PacketType.CONNACK:
            self.state = State.CONNECTED
