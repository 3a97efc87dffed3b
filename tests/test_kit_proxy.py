"""The kit's fault proxy: bytes pass unchanged, an outage refuses connections until
restored, and a refused filter's SUBACK return code becomes 0x80."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taktora_connector.conformance.proxy import FaultProxy, PacketType, WirePacket, _Decoder


def packet(kind: int, body: bytes, flags: int = 0) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([kind << 4 | flags]) + bytes(encoded) + body


def subscribe(packet_id: int, *filters: str) -> bytes:
    body = struct.pack("!H", packet_id)
    for name in filters:
        raw = name.encode()
        body += struct.pack("!H", len(raw)) + raw + b"\x01"
    return packet(8, body, flags=0x2)


def suback(packet_id: int, *codes: int) -> bytes:
    return packet(9, struct.pack("!H", packet_id) + bytes(codes))


STREAM = st.lists(
    st.tuples(st.sampled_from([3, 4, 9, 12, 13]), st.binary(max_size=300)), max_size=20
).map(lambda items: b"".join(packet(kind, body) for kind, body in items))


@settings(max_examples=200, deadline=None)
@given(stream=STREAM, cuts=st.lists(st.integers(min_value=1, max_value=400)), hold=st.booleans())
def test_the_decoder_forwards_every_byte_whatever_the_chunks(
    stream: bytes, cuts: list[int], hold: bool
) -> None:
    sink: list[WirePacket] = []
    decoder = _Decoder("in", 1, sink)
    forwarded, offset = b"", 0
    for size in [*cuts, len(stream)]:
        forwarded += decoder.feed(stream[offset : offset + size], hold=hold)
        offset += size
    assert forwarded == stream
    assert sum(len(p.body) for p in sink) <= len(stream)


class FakeBroker:
    """One accepted connection at a time, answered by hand."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(5)
        self.port = self.server.getsockname()[1]

    def accept(self) -> socket.socket:
        sock, _ = self.server.accept()
        sock.settimeout(5)
        return sock

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def wired() -> Iterator[tuple[FaultProxy, FakeBroker]]:
    broker = FakeBroker()
    proxy = FaultProxy(broker.port)
    try:
        yield proxy, broker
    finally:
        proxy.close()
        broker.close()


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
    return data


def test_a_refused_filter_gets_suback_0x80_and_the_others_keep_theirs(
    wired: tuple[FaultProxy, FakeBroker],
) -> None:
    proxy, broker = wired
    proxy.refuse_subscriptions({"deny/#"})
    with socket.create_connection(("127.0.0.1", proxy.port), 5) as client:
        client.settimeout(5)
        upstream = broker.accept()
        with upstream:
            request = subscribe(7, "ok/t", "deny/#")
            client.sendall(request)
            assert read_exactly(upstream, len(request)) == request  # out: unchanged
            upstream.sendall(suback(7, 1, 1)[:3])  # split: the proxy waits for the whole packet
            upstream.sendall(suback(7, 1, 1)[3:])
            assert read_exactly(client, 6) == suback(7, 1, 0x80)
    (seen,) = proxy.seen(PacketType.SUBACK, "in")
    assert seen.body[2:] == bytes([1, 0x80])


def test_an_outage_refuses_connections_until_restored(
    wired: tuple[FaultProxy, FakeBroker],
) -> None:
    proxy, broker = wired
    proxy.outage()
    with socket.create_connection(("127.0.0.1", proxy.port), 5) as refused:
        refused.settimeout(5)
        assert refused.recv(1) == b""  # closed at once, nothing reached the broker
    assert proxy.refused == 1
    proxy.restore()
    with socket.create_connection(("127.0.0.1", proxy.port), 5) as client:
        upstream = broker.accept()
        with upstream:
            client.sendall(packet(12, b""))
            assert read_exactly(upstream, 2) == packet(12, b"")
            assert proxy.open_connections == 1
