"""A fault-injecting TCP proxy that also reads MQTT fixed headers off the wire.

Rules of this module:
- it sits between one or more clients and a broker on loopback and forwards
  bytes unchanged; ``pause()`` stops forwarding in both directions (a stalled
  path: the sockets stay open and fill up), ``resume()`` lets bytes flow again,
  ``cut()`` closes every open connection (a network failure), ``outage()``
  cuts and refuses new connections until ``restore()`` (the broker is gone
  for a while);
- ``refuse_subscriptions(filters)`` rewrites the broker's SUBACK return code
  to 0x80 (failure) for those filters, so any broker can be made to refuse a
  subscription; while a rewrite rule is set, broker-to-client bytes are
  forwarded a whole packet at a time;
- it can also play a hostile broker towards the client (``send_before``,
  ``send_now``, ``rewrite``, ``trickle``): bytes no broker may send, injected
  between whole packets or in place of one, or the broker's bytes one at a time;
  each injected packet is recorded as ``injected`` (``WirePacket.injected``), and
  every connection's end as a ``Close`` saying which side ended it;
- it frames the byte stream itself (whatever the bytes, it forwards them) and
  decodes each whole packet with the project's sans-IO codec
  (``adapters.mqtt.packets``, the one the reference connector's data plane
  uses); it knows nothing about the connector under test, so it works with any
  client and any broker;
- everything it sees is kept as ``WirePacket`` records with a monotonic time.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from taktora_connector.adapters.mqtt.protocol.packets import (
    ConnAck,
    Connect,
    NeedData,
    Packet,
    PacketReader,
    ProtocolViolation,
    Publish,
    SubAck,
    Subscribe,
    Unsubscribe,
    remaining_length,
)
from taktora_connector.adapters.mqtt.protocol.packets import PacketType as _CodecPacketType

from .brokers import free_port

#: The kit names packet types as the codec does: one table of them.
PacketType = _CodecPacketType


@dataclass(frozen=True)
class WirePacket:
    """One MQTT packet seen on the wire."""

    direction: str  # "out": client -> broker, "in": broker -> client
    type: PacketType
    flags: int
    body: bytes = field(repr=False)
    at: float = 0.0
    connection: int = 0
    injected: bool = False  # sent by the kit's hostile broker, not by the broker

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 0x3

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x1)

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x8)

    def topic(self) -> str:
        """The topic of a PUBLISH."""
        (length,) = struct.unpack_from("!H", self.body, 0)
        return self.body[2 : 2 + length].decode("utf-8")

    def payload(self) -> bytes:
        """The application payload of a PUBLISH."""
        (length,) = struct.unpack_from("!H", self.body, 0)
        offset = 2 + length + (2 if self.qos else 0)
        return self.body[offset:]

    def packet_id(self) -> int | None:
        if self.type is PacketType.PUBLISH:
            if not self.qos:
                return None
            (length,) = struct.unpack_from("!H", self.body, 0)
            return int(struct.unpack_from("!H", self.body, 2 + length)[0])
        if len(self.body) >= 2:
            return int(struct.unpack_from("!H", self.body, 0)[0])
        return None

    def protocol(self) -> tuple[str, int]:
        """A CONNECT's protocol name and level (MQTT 3.1.1: ``("MQTT", 4)``)."""
        (length,) = struct.unpack_from("!H", self.body, 0)
        name = self.body[2 : 2 + length].decode("utf-8")
        level: int = self.body[2 + length]
        return name, level

    def connect_flags(self) -> int:
        (length,) = struct.unpack_from("!H", self.body, 0)
        flags: int = self.body[3 + length]
        return flags

    def client_id(self) -> str:
        """A CONNECT's client identifier."""
        (length,) = struct.unpack_from("!H", self.body, 0)
        offset = 2 + length + 1 + 1 + 2  # name, level, flags, keep-alive
        (id_length,) = struct.unpack_from("!H", self.body, offset)
        return self.body[offset + 2 : offset + 2 + id_length].decode("utf-8")

    def has_credentials(self) -> bool:
        flags = self.connect_flags()
        return bool(flags & 0x80) and bool(flags & 0x40)

    def filters(self) -> list[tuple[str, int | None]]:
        """A SUBSCRIBE's (filter, QoS) pairs, or an UNSUBSCRIBE's (filter, None)."""
        found: list[tuple[str, int | None]] = []
        offset = 2
        body = self.body
        while offset < len(body):
            (length,) = struct.unpack_from("!H", body, offset)
            name = body[offset + 2 : offset + 2 + length].decode("utf-8")
            offset += 2 + length
            if self.type is PacketType.SUBSCRIBE:
                found.append((name, body[offset]))
                offset += 1
            else:
                found.append((name, None))
        return found

    def decoded(self) -> Packet | None:
        """The packet as the codec reads it; ``None`` if it breaks an MQTT 3.1.1 rule."""
        reader = PacketReader()
        reader.receive_data(
            bytes((self.type << 4 | self.flags,)) + remaining_length(len(self.body)) + self.body
        )
        try:
            packet = reader.next_event()
        except ProtocolViolation:
            return None
        return None if isinstance(packet, NeedData) else packet

    def describe(self) -> dict[str, object]:
        """The packet for a wire log: never a password, payloads by size only."""
        entry: dict[str, object] = {
            "dir": self.direction,
            "type": self.type.name,
            "id": getattr(self.decoded(), "packet_id", None),
            "qos": self.qos if self.type is PacketType.PUBLISH else 0,
            "retain": self.retain if self.type is PacketType.PUBLISH else False,
            "topic": "",
            "size": 0,
            "info": "",
        }
        packet = self.decoded()
        if packet is None:
            entry["info"] = f" (body of {len(self.body)} bytes does not decode)"
        elif isinstance(packet, Publish):
            entry.update(
                topic=packet.topic.decode("utf-8", "backslashreplace"),
                size=len(packet.payload),
                info=" dup" if packet.dup else "",
            )
        elif isinstance(packet, Connect):
            entry["info"] = (
                f" MQTT level 4, client id {packet.client_id!r}, "
                f"clean session {int(packet.clean_session)}, keep-alive {packet.keep_alive} s, "
                f"will {int(packet.will is not None)}, "
                f"username {'yes' if packet.username is not None else 'no'}, "
                f"password {'yes (not shown)' if packet.password is not None else 'no'}"
            )
        elif isinstance(packet, ConnAck):
            entry["info"] = (
                f" session present {int(packet.session_present)}, return code {packet.return_code}"
            )
        elif isinstance(packet, Subscribe):
            entry["info"] = " " + ", ".join(f"{name} (QoS {qos})" for name, qos in packet.topics)
        elif isinstance(packet, Unsubscribe):
            entry["info"] = " " + ", ".join(packet.topics)
        elif isinstance(packet, SubAck):
            entry["info"] = " return codes " + ", ".join(str(c) for c in packet.return_codes)
        return entry


@dataclass(frozen=True)
class Close:
    """The end of one proxied connection: who ended it, and when."""

    connection: int
    by: str  # "client", "broker" or "kit" (``cut``, ``outage``)
    at: float


#: A hostile broker's rule for one packet type: the bytes the client gets instead of
#: the broker's packet (``None``: the packet unchanged).
Rewrite = Callable[[WirePacket], bytes | None]


def _length_of(raw: bytes) -> tuple[int | None, int]:
    """The remaining length of the packet ``raw`` starts with and where its body begins;
    ``None`` when the length is cut or longer than four bytes."""
    length, shift, index = 0, 0, 1
    while index < len(raw) and index <= 4:
        byte = raw[index]
        index += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return length, index
    return None, index


class _Decoder:
    """Incremental MQTT framing for one direction of one connection.

    ``feed`` records every complete packet and returns the bytes to forward:
    everything received (``hold=False``), or only whole packets, each one
    passed through ``rewrite`` first (``hold=True``).
    """

    def __init__(self, direction: str, connection: int, sink: list[WirePacket]) -> None:
        self._buffer = bytearray()
        self._sent = 0  # bytes at the start of the buffer already forwarded
        self.direction = direction
        self._connection = connection
        self._sink = sink
        self.disconnected = False  # a DISCONNECT passed (the client's, for "out")

    @property
    def pending(self) -> bool:
        """Bytes of an incomplete packet are held (not forwarded yet)."""
        return bool(self._buffer)

    def feed(
        self,
        data: bytes,
        hold: bool = False,
        rewrite: Callable[[WirePacket], WirePacket] | None = None,
        transform: Callable[[WirePacket, bytes], bytes | None] | None = None,
    ) -> bytes:
        buffer = self._buffer
        buffer.extend(data)
        out = bytearray()
        while True:
            if len(buffer) < 2:
                break
            multiplier, length, index = 1, 0, 1
            complete = True
            while True:
                if index >= len(buffer):
                    complete = False
                    break
                byte = buffer[index]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                index += 1
                if not byte & 0x80 or index > 4:
                    break
            end = index + length
            if not complete or len(buffer) < end:
                break
            kind = buffer[0] >> 4
            if kind == PacketType.DISCONNECT:
                self.disconnected = True
            raw = bytes(buffer[:end])
            if 1 <= kind <= 14:
                packet = WirePacket(
                    self.direction,
                    PacketType(kind),
                    buffer[0] & 0x0F,
                    bytes(buffer[index:end]),
                    time.monotonic(),
                    self._connection,
                )
                if rewrite is not None:
                    changed = rewrite(packet)
                    if changed is not packet and self._sent == 0:  # not forwarded yet
                        raw = raw[:index] + changed.body
                        packet = changed
                if transform is not None and self._sent == 0:
                    replaced = transform(packet, raw)
                    if replaced is not None:  # recorded by the transform
                        out += replaced
                        del buffer[:end]
                        continue
                self._sink.append(packet)
            out += raw[self._sent :]
            self._sent = max(0, self._sent - end)
            del buffer[:end]
        if not hold:
            out += buffer[self._sent :]
            self._sent = len(buffer)
        return bytes(out)


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.packets: list[WirePacket] = []
        self._lock = threading.RLock()  # a rewrite rule may change the rules
        self._paused: frozenset[str] = frozenset()
        self._stop = False
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._pairs: dict[socket.socket, tuple[socket.socket, _Decoder]] = {}
        self._connections = 0
        self._down = False
        self.refused = 0  # connections closed at once during an outage
        self._refused_filters: frozenset[str] = frozenset()
        self._subscribed: dict[tuple[int, int | None], list[str]] = {}
        #: How every connection ended (``Close``), in order.
        self.closes: list[Close] = []
        #: Every injection of the hostile broker: (connection, bytes, time).
        self.injections: list[tuple[int, bytes, float]] = []
        self._before: list[tuple[PacketType, bytes]] = []  # once each, in order
        self._now: list[tuple[bytes, int | None]] = []
        self._rewrites: dict[PacketType, Rewrite] = {}
        self._trickle = False
        self._cut: set[int] = set()  # connections the kit cut
        self._thread = threading.Thread(
            target=self._run, name="conformance-harness-proxy", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    # -- faults ------------------------------------------------------------------------

    def pause(self, direction: str | None = None) -> None:
        """Stop forwarding (``"out"``: client to broker, ``"in"``: broker to client,
        ``None``: both): the path stalls, no connection is closed."""
        self._paused = frozenset({"in", "out"} if direction is None else {direction})

    def resume(self) -> None:
        self._paused = frozenset()

    def cut(self) -> None:
        """Close every open connection, as a failing network would."""
        with self._lock:
            sockets = list(self._pairs)
            ended = {decoder._connection for _, decoder in self._pairs.values()}
            now = time.monotonic()
            self.closes.extend(Close(number, "kit", now) for number in sorted(ended))
            self._cut |= ended
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def outage(self) -> None:
        """Close every open connection and refuse new ones until ``restore()``."""
        self._down = True
        self.cut()

    def restore(self) -> None:
        """End an ``outage()``: connections are accepted again."""
        self._down = False

    def refuse_subscriptions(self, filters: set[str]) -> None:
        """From now on, the SUBACK for any of ``filters`` says 0x80 (failure)."""
        self._refused_filters = frozenset(filters)

    def _rewrite(self, packet: WirePacket) -> WirePacket:
        """Note SUBSCRIBE filters; turn the SUBACK codes of refused filters into 0x80."""
        key = (packet.connection, packet.packet_id())
        if packet.type is PacketType.SUBSCRIBE:
            self._subscribed[key] = [name for name, _ in packet.filters()]
            return packet
        if packet.type is not PacketType.SUBACK:
            return packet
        filters = self._subscribed.pop(key, [])
        codes = bytearray(packet.body[2:])
        for position, name in enumerate(filters[: len(codes)]):
            if name in self._refused_filters:
                codes[position] = 0x80
        if bytes(codes) == packet.body[2:]:
            return packet
        return replace(packet, body=packet.body[:2] + bytes(codes))

    # -- a hostile broker ----------------------------------------------------------------

    def send_before(self, kind: PacketType, raw: bytes) -> None:
        """Once: the client gets ``raw`` just before the broker's next ``kind`` packet
        (on whichever connection it comes), e.g. a PUBLISH before the CONNACK."""
        with self._lock:
            self._before.append((kind, raw))

    def send_now(self, raw: bytes, connection: int | None = None) -> None:
        """Once: the client of ``connection`` (by default the newest open one) gets
        ``raw`` now, between whole packets of the broker's."""
        with self._lock:
            self._now.append((raw, connection))

    def rewrite(self, kind: PacketType, rule: Rewrite | None) -> None:
        """From now on, each ``kind`` packet the broker sends goes through ``rule``:
        the client gets the bytes it returns instead (``None``: the packet as it was).
        ``rule=None`` ends the rewriting."""
        with self._lock:
            if rule is None:
                self._rewrites.pop(kind, None)
            else:
                self._rewrites[kind] = rule

    def trickle(self, on: bool = True) -> None:
        """Forward the broker's bytes to the client one byte per write."""
        self._trickle = on

    @property
    def _hostile(self) -> bool:
        return bool(self._before or self._now or self._rewrites or self._trickle)

    def _record_injected(self, raw: bytes, connection: int) -> None:
        """Keep what the kit sent in the broker's place (lock held); bytes that are no
        whole packet are recorded as far as their first byte tells."""
        at = time.monotonic()
        self.injections.append((connection, raw, at))
        if not raw or not 1 <= raw[0] >> 4 <= 14:
            return  # a reserved packet type: in ``injections`` only
        length, index = _length_of(raw)
        body = raw[index : index + length] if length is not None else raw[1:]
        self.packets.append(
            WirePacket("in", PacketType(raw[0] >> 4), raw[0] & 0x0F, body, at, connection, True)
        )

    def _transform(self, packet: WirePacket, raw: bytes) -> bytes | None:
        """The hostile broker's hand on one whole packet from the broker (lock held)."""
        out = b""
        for position, (kind, injected) in enumerate(self._before):
            if kind is packet.type:
                del self._before[position]
                self._record_injected(injected, packet.connection)
                out = injected
                break
        rule = self._rewrites.get(packet.type)
        replaced = rule(packet) if rule is not None else None
        if replaced is None:
            if not out:
                return None
            self.packets.append(packet)
            return out + raw
        self._record_injected(replaced, packet.connection)
        return out + replaced

    # -- observation -------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs) // 2

    def seen(self, kind: PacketType, direction: str | None = None) -> list[WirePacket]:
        with self._lock:
            return [
                p
                for p in self.packets
                if p.type is kind and (direction is None or p.direction == direction)
            ]

    def all_packets(self) -> list[WirePacket]:
        with self._lock:
            return list(self.packets)

    # -- the loop ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop:
            events = self._selector.select(0.01 if self._now else 0.05)
            if self._now:
                self._inject_now()
            paused = self._paused
            for key, _ in events:
                if key.data is None:
                    self._accept()
                    continue
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                pair = self._pairs.get(sock)
                if pair is not None and pair[1].direction not in paused:
                    self._forward(sock)
            if paused:
                time.sleep(0.002)  # held bytes keep sockets readable: do not spin

    def _inject_now(self) -> None:
        with self._lock:
            clients = {
                decoder._connection: sock
                for sock, (_, decoder) in self._pairs.items()
                if decoder.direction == "out"
            }
            if not clients:
                return
            raw, wanted = self._now[0]
            number = max(clients) if wanted is None else wanted
            client = clients.get(number)
            if client is None:
                return  # not open (yet, or any more): the step waiting for it says so
            upstream_decoder = self._pairs[self._pairs[client][0]][1]
            if upstream_decoder.pending:
                return  # in the middle of a broker packet: after it
            del self._now[0]
            self._record_injected(raw, number)
        self._send(client, raw)

    def _send(self, sock: socket.socket, data: bytes) -> bool:
        try:
            sock.setblocking(True)
            if self._trickle:
                for index in range(len(data)):
                    sock.sendall(data[index : index + 1])
                    time.sleep(0.0005)  # each byte its own segment (TCP_NODELAY)
            else:
                sock.sendall(data)
            sock.setblocking(False)
        except OSError:
            return False
        return True

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        if self._down:
            self.refused += 1
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        self._connections += 1
        number = self._connections
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._pairs[client] = (upstream, _Decoder("out", number, self.packets))
            self._pairs[upstream] = (client, _Decoder("in", number, self.packets))
        self._selector.register(client, selectors.EVENT_READ, "pair")
        self._selector.register(upstream, selectors.EVENT_READ, "pair")

    def _forward(self, sock: socket.socket) -> None:
        pair = self._pairs.get(sock)
        if pair is None:
            return
        other, decoder = pair
        if decoder._connection in self._cut:
            # Cut by the kit: what was held (a stalled path) never reaches the other
            # side, so it is neither forwarded nor recorded.
            self._drop(sock)
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        rules = bool(self._refused_filters)
        inbound = decoder.direction == "in"
        hostile = inbound and self._hostile
        with self._lock:
            data = decoder.feed(
                data,
                hold=(rules or hostile) and inbound,
                rewrite=self._rewrite if rules else None,
                transform=self._transform if hostile else None,
            )
        if not data:
            return
        if not self._send(other, data) if inbound else not self._send_plain(other, data):
            self._drop(sock)

    @staticmethod
    def _send_plain(sock: socket.socket, data: bytes) -> bool:
        try:
            sock.setblocking(True)
            sock.sendall(data)
            sock.setblocking(False)
        except OSError:
            return False
        return True

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            pair = self._pairs.get(sock)
            if pair is not None and pair[1].direction == "in" and pair[0] in self._pairs:
                client_side = self._pairs[pair[0]][1]
                if client_side.disconnected and pair[1]._connection not in self._cut:
                    # The broker closed after the client's DISCONNECT: the client must
                    # close too (MQTT-3.14.4-1); its socket stays open to see it do so.
                    del self._pairs[sock]
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(sock)
                    with contextlib.suppress(OSError):
                        sock.close()
                    return
            pair = self._pairs.pop(sock, None)
            other = pair[0] if pair else None
            if other is not None:
                self._pairs.pop(other, None)
            if pair is not None:
                number = pair[1]._connection
                if number not in self._cut:  # the kit's own cut is recorded as such
                    by = "client" if pair[1].direction == "out" else "broker"
                    self.closes.append(Close(number, by, time.monotonic()))
        for each in (sock, other):
            if each is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(each)
            with contextlib.suppress(OSError):
                each.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        with self._lock:
            sockets = list(self._pairs)
            self._pairs.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._selector.close()
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
