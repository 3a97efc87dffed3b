"""REQ_0257 on the wire: connectors that break one MQTT 3.1.1 statement each.

Each is the reference connector behind a ``Relay``, a small loopback relay between
the connector and the broker (the kit's proxy, in a kit run) that changes whole
packets one way or the other: what the connector sends (a PUBACK out of order, a
resend without DUP) or what it lets through (a wildcard topic name "repaired" into
one it accepts). The kit must fail exactly the statement each one breaks
(``statements``), through the scenario written for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.ports import PayloadCodec

from .base import FilteringReader, Wrapper
from .registry import breaks

#: A rule: (the whole packet's bytes, the connection's state) -> the bytes sent instead.
Rule = Callable[[bytes, dict[str, Any]], bytes]


def _unchanged(raw: bytes, state: dict[str, Any]) -> bytes:
    return raw


def _whole(buffer: bytearray) -> bytes | None:
    """Take one whole packet off the front of ``buffer``, or None if it is not all here."""
    length, index, shift = 0, 1, 0
    while True:
        if index > 4:  # no MQTT length: passed on as it is, for the client to refuse
            raw = bytes(buffer)
            buffer.clear()
            return raw
        if index >= len(buffer):
            return None
        byte = buffer[index]
        index += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    end = index + length
    if len(buffer) < end:
        return None
    raw = bytes(buffer[:end])
    del buffer[:end]
    return raw


class Relay:
    """Forwards 127.0.0.1:``port`` to ``target``, one whole packet at a time, each one
    through ``outbound`` (client to broker) or ``inbound`` (broker to client)."""

    def __init__(
        self,
        target: tuple[str, int],
        outbound: Rule = _unchanged,
        inbound: Rule = _unchanged,
        tick: Callable[[dict[str, Any]], bytes] | None = None,
    ) -> None:
        self.target = target
        self.rules = {"out": outbound, "in": inbound}
        self.tick = tick  # bytes to send the broker now (held ones), each 50 ms
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._stop = False
        self._pairs: dict[socket.socket, tuple[socket.socket, str, bytearray, dict[str, Any]]] = {}
        self._thread = threading.Thread(target=self._run, name="conformance-harness-relay")
        self._thread.daemon = True
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(0.05):
                if key.data is None:
                    self._accept()
                else:
                    self._forward(key.fileobj)  # type: ignore[arg-type]
            if self.tick is not None:
                for other, direction, _, state in list(self._pairs.values()):
                    if direction == "out":
                        held = self.tick(state)
                        if held:
                            with contextlib.suppress(OSError):
                                other.sendall(held)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        state: dict[str, Any] = {}
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pairs[client] = (upstream, "out", bytearray(), state)
        self._pairs[upstream] = (client, "in", bytearray(), state)
        self._selector.register(client, selectors.EVENT_READ, "pair")
        self._selector.register(upstream, selectors.EVENT_READ, "pair")

    def _forward(self, sock: socket.socket) -> None:
        pair = self._pairs.get(sock)
        if pair is None:
            return
        other, direction, buffer, state = pair
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        buffer += data
        out = b""
        while (raw := _whole(buffer)) is not None:
            out += self.rules[direction](raw, state)
        if out:
            try:
                other.sendall(out)
            except OSError:
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        pair = self._pairs.get(sock)
        if pair is not None and pair[1] == "out" and pair[3].get("keep open"):
            # The connector closed; its side of the relay goes, the broker's stays open.
            self._pairs.pop(sock, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
            return
        pair = self._pairs.pop(sock, None)
        for each in (sock, pair[0] if pair else None):
            if each is None:
                continue
            self._pairs.pop(each, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(each)
            with contextlib.suppress(OSError):
                each.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for sock in list(self._pairs):
            self._drop(sock)
        self._listener.close()
        self._selector.close()


class _Relayed(Wrapper):
    """The reference connector behind a relay, which closes with it."""

    def __init__(self, inner: MqttConnector[Any], relay: Relay) -> None:
        super().__init__(inner)
        self.relay = relay

    def close(self, timeout: float = 5.0) -> Any:
        try:
            return self.inner.close(timeout)
        finally:
            self.relay.close()


def relayed(
    options: MqttConnectorOptions,
    codec: PayloadCodec[Any],
    outbound: Rule = _unchanged,
    inbound: Rule = _unchanged,
    tick: Callable[[dict[str, Any]], bytes] | None = None,
) -> Any:
    if options.tls is not None:  # the relay reads plain MQTT: TLS scenarios go around it
        return MqttConnector(options, codec)
    relay = Relay((options.host, options.port), outbound, inbound, tick)
    moved = dataclasses.replace(options, host="127.0.0.1", port=relay.port)
    return _Relayed(MqttConnector(moved, codec), relay)


def _kind(raw: bytes) -> int:
    return raw[0] >> 4


def _topic_bounds(raw: bytes) -> tuple[int, int]:
    """Where a PUBLISH's topic bytes are in ``raw``."""
    index = 1
    while raw[index] & 0x80:
        index += 1
    start = index + 1
    length = raw[start] << 8 | raw[start + 1]
    return start + 2, start + 2 + length


# -- what the connector sends -------------------------------------------------------------


@breaks(
    "REQ_0257",
    caught_by="TEST_2615",
    statements=("MQTT-4.6.0-2",),
    may_also_fail=("TEST_2633",),
    because="with the broker's bytes one at a time, two PUBACKs fall within its 0.2 s "
    "hold, or do not, by timing",
)
def acks_out_of_order(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Holds each PUBACK until the next one (or 0.2 s) and sends that one first."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 4:
            return raw
        held = state.pop("held", None)
        if held is None:
            state["held"] = (raw, time.monotonic())
            return b""
        return raw + bytes(held[0])

    def tick(state: dict[str, Any]) -> bytes:
        held = state.get("held")
        if held is not None and time.monotonic() - held[1] > 0.2:
            del state["held"]
            return bytes(held[0])
        return b""

    return relayed(options, codec, outbound=outbound, tick=tick)


@breaks("REQ_0257", caught_by="TEST_2614", statements=("MQTT-3.3.1-1",), quick=False)
def resends_without_dup(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Clears the DUP flag of every PUBLISH it sends."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 3:
            return bytes((raw[0] & ~0x08,)) + raw[1:]
        return raw

    return relayed(options, codec, outbound=outbound)


@breaks("REQ_0257", caught_by="TEST_2616", statements=("MQTT-3.1.2-23",), quick=False)
def never_pings(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends no PINGREQ: an idle connection goes silent past its keep-alive."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        return b"" if _kind(raw) == 12 else raw

    return relayed(options, codec, outbound=outbound)


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-3.14.4-1",), quick=False)
def pings_after_disconnect(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends a PINGREQ after its DISCONNECT."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        return raw + b"\xc0\x00" if _kind(raw) == 14 else raw

    return relayed(options, codec, outbound=outbound)


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-1.5.3-3",), quick=False)
def strips_the_bom(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Hands out received topic names with U+FEFF taken out."""
    return _BomStripping(MqttConnector(options, codec))


class _BomStripping(Wrapper):
    def create_reader(self, descriptor: Any) -> Any:
        return self.inner.create_reader(descriptor).map(_StrippingReader)


class _StrippingReader(FilteringReader):
    def _keep(self, result: Any) -> Any:
        return result.map(_stripped)


def _stripped(envelope: Any) -> Any:
    if envelope is None or "\ufeff" not in envelope.routing.topic:
        return envelope
    routing = envelope.routing
    topic = routing.topic.replace("\ufeff", "")
    return dataclasses.replace(
        envelope, routing=MqttRouting.delivered(topic, int(routing.qos), routing.retained)
    )


# -- what it lets through from a hostile broker ------------------------------------------


@breaks("REQ_0257", caught_by="TEST_2621", statements=("MQTT-3.3.2-2",))
def repairs_wildcard_topics(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Turns '+' and '#' in a received topic name into 'x', and delivers it."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 3:
            return raw
        start, end = _topic_bounds(raw)
        topic = raw[start:end].replace(b"+", b"x").replace(b"#", b"x")
        return raw[:start] + topic + raw[end:]

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2620", statements=("MQTT-3.2.0-1",), quick=False)
def waits_out_an_early_publish(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Holds what comes before CONNACK and hands it over after it."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if state.get("connected"):
            return raw
        if _kind(raw) == 2:
            state["connected"] = True
            early: bytes = state.pop("early", b"")
            return raw + early
        state["early"] = state.get("early", b"") + raw
        return b""

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2629", statements=("MQTT-4.8.0-1",), quick=False)
def skips_reserved_packet_types(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Drops packets of type 0 or 15 instead of closing the connection."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        return b"" if _kind(raw) in (0, 15) else raw

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2631", statements=("MQTT-3.8.4-5",), quick=False)
def pads_short_subacks(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Gives a SUBACK without return codes the codes of the SUBSCRIBE it answers."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 9 and raw[1] == 2:  # one filter per SUBSCRIBE in that scenario
            return b"\x90\x03" + raw[2:4] + b"\x01"
        return raw

    return relayed(options, codec, inbound=inbound)


@breaks(
    "REQ_0255",
    caught_by="TEST_2612",
    statements=("MQTT-3.1.3-1",),
    may_also_fail=("TEST_0135",),
    because="amqtt reads CONNECT's fields from the stream, not by its remaining length, so "
    "the two stray bytes become a packet of type 0 that makes it close the connection; "
    "under load the connector is seen Connecting, never Up, in the auth scenario's 10 s",
    quick=False,
)
def pads_connect_with_credentials(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Puts two stray bytes after the password of a CONNECT with credentials."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) != 1 or raw[1] & 0x80:  # only a CONNECT whose length fits one byte
            return raw
        flags = raw[2 + 2 + 4 + 1]  # fixed header, "MQTT" with its length, level
        if not flags & 0x80:
            return raw
        body = raw[2:] + b"\x00\x00"
        return bytes((raw[0], len(body))) + body

    return relayed(options, codec, outbound=outbound)


@breaks("REQ_0257", caught_by="TEST_2613", statements=("MQTT-2.3.1-2",), quick=False)
def subscribes_with_an_identifier_in_use(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Any:
    """Gives a SUBSCRIBE the identifier of a QoS 1 PUBLISH still waiting for its PUBACK
    (and its SUBACK back its own, so the connector sees nothing amiss)."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        waiting: set[int] = state.setdefault("waiting", set())
        if _kind(raw) == 3 and raw[0] & 0x06:
            _, end = _topic_bounds(raw)
            waiting.add(raw[end] << 8 | raw[end + 1])
        elif _kind(raw) == 8 and waiting and not raw[1] & 0x80:
            borrowed = min(waiting)
            state.setdefault("borrowed", {})[borrowed] = raw[2:4]
            return raw[:2] + borrowed.to_bytes(2, "big") + raw[4:]
        return raw

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 4:
            state.setdefault("waiting", set()).discard(raw[2] << 8 | raw[3])
        elif _kind(raw) == 9:
            own: bytes | None = state.setdefault("borrowed", {}).pop(raw[2] << 8 | raw[3], None)
            if own is not None:
                return raw[:2] + own + raw[4:]
        return raw

    return relayed(options, codec, outbound=outbound, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2632", statements=("MQTT-3.2.2-5",), quick=False)
def leaves_refused_connections_open(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Keeps a connection whose CONNACK refused it open towards the broker."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 2 and len(raw) == 4 and raw[3]:
            state["keep open"] = True
        return raw

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by="TEST_2625", statements=("MQTT-3.3.1-4",), quick=False)
def reads_qos3_as_qos1(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Takes a received PUBLISH with both QoS bits set for a QoS 1 one."""

    def inbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 3 and raw[0] & 0x06 == 0x06:
            return bytes((raw[0] & ~0x04,)) + raw[1:]
        return raw

    return relayed(options, codec, inbound=inbound)


@breaks("REQ_0257", caught_by=("TEST_2611", "TEST_2614"), statements=("MQTT-3.3.1-3",), quick=False)
def dup_on_first_attempts(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sets DUP on every QoS 1 PUBLISH, the first attempt too."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        if _kind(raw) == 3 and raw[0] & 0x06:
            return bytes((raw[0] | 0x08,)) + raw[1:]
        return raw

    return relayed(options, codec, outbound=outbound)


@breaks("REQ_0257", caught_by="TEST_2611", statements=("MQTT-2.2.2-1",), quick=False)
def disconnects_with_flags(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Sends its DISCONNECT with a reserved flag set."""

    def outbound(raw: bytes, state: dict[str, Any]) -> bytes:
        return b"\xe1\x00" if raw == b"\xe0\x00" else raw

    return relayed(options, codec, outbound=outbound)
