"""A fake MQTT 3.1.1 broker on loopback that answers packet by packet, with hooks.

Unlike ``hostile.FakeBroker`` (a fixed script after CONNECT), this one parses what
the client sends and lets a test decide the answer to each packet: refuse a
subscription, never answer PINGREQ, trickle bytes, hang up on SUBSCRIBE. Its
defaults behave like a minimal broker (CONNACK accepted, SUBACK granting the
asked QoS, PUBACK for QoS 1, PINGRESP). It exists only to provoke the connector.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .hostile import publish, remaining_length

CONNECT, PUBLISH, PUBACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT = 1, 3, 4, 8, 10, 12, 14


@dataclass
class Packet:
    kind: int
    flags: int
    body: bytes

    @property
    def packet_id(self) -> int:
        return int.from_bytes(self.body[:2], "big")

    def filters(self) -> list[tuple[str, int]]:
        """(filter, qos) pairs of a SUBSCRIBE."""
        out: list[tuple[str, int]] = []
        pos = 2
        while pos < len(self.body):
            size = int.from_bytes(self.body[pos : pos + 2], "big")
            name = self.body[pos + 2 : pos + 2 + size].decode("utf-8", "replace")
            pos += 2 + size
            out.append((name, self.body[pos]))
            pos += 1
        return out


class Session:
    """One accepted connection; ``send`` writes raw bytes to the client."""

    def __init__(self, sock: socket.socket, broker: ReactiveBroker) -> None:
        self.sock = sock
        self.broker = broker
        self.lock = threading.Lock()
        # Its own socket object, so its own timeout: the conversation polls with
        # 0.2 s, and a sendall's timeout bounds the whole send (a 32 MiB payload to
        # a client slowed by a loaded machine took longer, and was cut mid-packet).
        self._out = sock.dup()
        self._out.settimeout(60)

    def send(self, data: bytes) -> None:
        with self.lock, contextlib.suppress(OSError):
            self._out.sendall(data)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        packet = bytearray(publish(topic.encode(), payload, qos, packet_id=7))
        if retain:
            packet[0] |= 0x01
        self.send(bytes(packet))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        for each in (self.sock, self._out):
            with contextlib.suppress(OSError):
                each.close()


Handler = Callable[[Session, Packet], bool]  # True: handled, skip the default answer


@dataclass
class ReactiveBroker:
    """Default answers to every packet, unless ``on_packet`` says it handled it."""

    on_packet: Handler | None = None
    connack: bytes = b"\x20\x02\x00\x00"
    echo: bool = False  # send every PUBLISH back to its sender (QoS 0), as if subscribed
    port: int = 0
    packets: list[Packet] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    _server: socket.socket | None = field(default=None, repr=False)
    _stop: bool = field(default=False, repr=False)

    @property
    def connects(self) -> int:
        return sum(1 for p in self.packets if p.kind == CONNECT)

    def seen(self, kind: int) -> list[Packet]:
        return [p for p in list(self.packets) if p.kind == kind]

    def start(self) -> ReactiveBroker:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._serve, name="reactive-broker", daemon=True).start()
        return self

    def _serve(self) -> None:
        assert self._server is not None
        while not self._stop:
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            session = Session(sock, self)
            self.sessions.append(session)
            threading.Thread(
                target=self._answer, args=(session,), name="reactive-broker", daemon=True
            ).start()

    def _answer(self, session: Session) -> None:
        with contextlib.suppress(OSError):  # the test or a handler closed the session
            self._converse(session)

    def _converse(self, session: Session) -> None:
        sock = session.sock
        sock.settimeout(0.2)
        buffer = b""
        while not self._stop:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                parsed = _split(buffer)
                if parsed is None:
                    break
                packet, buffer = parsed
                self.packets.append(packet)
                if self.on_packet is not None and self.on_packet(session, packet):
                    continue
                self._default(session, packet)

    def _default(self, session: Session, packet: Packet) -> None:
        if packet.kind == CONNECT:
            session.send(self.connack)
        elif packet.kind == SUBSCRIBE:
            codes = bytes(min(q, 1) for _, q in packet.filters())
            session.send(suback(packet.packet_id, codes))
        elif packet.kind == UNSUBSCRIBE:
            session.send(b"\xb0\x02" + packet.body[:2])
        elif packet.kind == PUBLISH:
            topic_len = int.from_bytes(packet.body[:2], "big")
            qos = (packet.flags >> 1) & 3
            if qos:
                session.send(b"\x40\x02" + packet.body[2 + topic_len : 4 + topic_len])
            if self.echo:
                payload = packet.body[2 + topic_len + (2 if qos else 0) :]
                session.send(publish(packet.body[2 : 2 + topic_len], payload))
        elif packet.kind == PINGREQ:
            session.send(b"\xd0\x00")
        elif packet.kind == DISCONNECT:
            session.close()

    def stop(self) -> None:
        self._stop = True
        for session in self.sessions:
            session.close()
        if self._server is not None:
            self._server.close()

    def __enter__(self) -> ReactiveBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def suback(packet_id: int, codes: bytes) -> bytes:
    body = packet_id.to_bytes(2, "big") + codes
    return b"\x90" + remaining_length(len(body)) + body


def trickle(session: Session, data: bytes, every: float, stop: threading.Event) -> None:
    """Send ``data`` one byte at a time, ``every`` seconds apart, until ``stop``."""
    for byte in data:
        if stop.wait(every):
            return
        session.send(bytes([byte]))
    time.sleep(0)


def _split(buffer: bytes) -> tuple[Packet, bytes] | None:
    if len(buffer) < 2:
        return None
    length, mult, pos = 0, 1, 1
    while True:
        if pos >= len(buffer):
            return None
        byte = buffer[pos]
        length += (byte & 0x7F) * mult
        mult *= 128
        pos += 1
        if not byte & 0x80:
            break
    if len(buffer) < pos + length:
        return None
    header = buffer[0]
    return Packet(header >> 4, header & 0x0F, buffer[pos : pos + length]), buffer[pos + length :]
