"""The sans-IO MQTT 3.1.1 codec: byte for byte against paho, the packet rules, and fuzzing."""

from __future__ import annotations

import socket
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from taktora_connector.adapters.mqtt.protocol.packets import (
    MAX_REMAINING,
    NEED_DATA,
    ConnAck,
    Connect,
    Disconnect,
    NeedData,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    ProtocolViolation,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
    encode,
    encode_puback,
    encode_publish,
    remaining_length,
)


def read_all(data: bytes, chunk: int | None = None) -> list[Packet]:
    reader = PacketReader()
    packets: list[Packet] = []
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        reader.receive_data(data[start : start + step])
        while not isinstance(event := reader.next_event(), NeedData):
            packets.append(event)
    return packets


# -- byte for byte against paho ------------------------------------------------------------------


class PahoOnTheWire:
    """A paho client connected to a loopback socket we read: what paho writes, byte for byte."""

    def __init__(self, **connect: Any) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=connect.pop("client_id", "wire"),
            clean_session=connect.pop("clean_session", True),
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        for name, args in connect.items():
            getattr(self.client, name)(*args)
        self.client.connect("127.0.0.1", self.server.getsockname()[1], keepalive=30)
        self.peer, _ = self.server.accept()
        self.peer.settimeout(5)

    def written(self, size: int) -> bytes:
        """The next ``size`` bytes paho wrote (paho writes inline or on loop_write)."""
        self.client.loop_write()
        out = b""
        while len(out) < size:
            chunk = self.peer.recv(size - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def accept(self) -> None:
        self.peer.sendall(b"\x20\x02\x00\x00")
        self.client.loop_read()

    def close(self) -> None:
        self.client.disconnect()
        self.peer.close()
        self.server.close()


def test_connect_matches_paho_byte_for_byte() -> None:
    wire = PahoOnTheWire(
        client_id="wire-1",
        clean_session=False,
        username_pw_set=("user", "pass"),
        will_set=("last/will", b"gone", 1, True),
    )
    try:
        expected = Connect(
            "wire-1", False, 30, "user", b"pass", Will("last/will", b"gone", 1, True)
        )
        raw = wire.written(len(encode(expected)))
        assert raw == encode(expected)
        assert read_all(raw) == [expected]
    finally:
        wire.close()


@pytest.mark.parametrize(
    ("topic", "payload", "qos", "retain"),
    [
        ("a", b"", 0, False),
        ("sensors/room/temp", b"x" * 64, 0, True),
        ("t/\u00fc\u00df/\u6771", b"\x00\xff" * 100, 1, False),  # 200 B: two length bytes
        ("big", b"y" * 20_000, 1, True),
        ("huge", b"z" * 2_100_000, 0, False),  # four length bytes
    ],
)
def test_publish_matches_paho_byte_for_byte(
    topic: str, payload: bytes, qos: int, retain: bool
) -> None:
    wire = PahoOnTheWire()
    try:
        wire.written(len(encode(Connect("wire", keep_alive=30))))
        wire.accept()
        info = wire.client.publish(topic, payload, qos, retain)
        packet_id = info.mid if qos else None
        expected = encode_publish(topic.encode(), payload, qos, retain, packet_id)
        raw = wire.written(len(expected))
        while wire.client.want_write():  # a large packet takes several writes
            raw += wire.written(len(expected) - len(raw))
        assert raw == expected
        assert read_all(raw, 1000) == [
            Publish(topic.encode(), payload, qos, retain, False, packet_id)
        ]
    finally:
        wire.close()


def test_subscribe_unsubscribe_puback_and_disconnect_match_paho() -> None:
    wire = PahoOnTheWire()
    try:
        wire.written(len(encode(Connect("wire", keep_alive=30))))
        wire.accept()
        _, sub_id = wire.client.subscribe([("a/+", 0), ("b/#", 1), ("c", 2)])
        assert sub_id is not None
        expected: bytes = encode(Subscribe(sub_id, [("a/+", 0), ("b/#", 1), ("c", 2)]))
        assert wire.written(len(expected)) == expected
        _, unsub_id = wire.client.unsubscribe(["a/+", "c"])
        assert unsub_id is not None
        expected = encode(Unsubscribe(unsub_id, ["a/+", "c"]))
        assert wire.written(len(expected)) == expected
        # paho acknowledges a QoS 1 PUBLISH from the broker with a PUBACK.
        wire.peer.sendall(encode_publish(b"a/x", b"p", 1, False, 4242))
        wire.client.loop_read()
        assert wire.written(4) == encode_puback(4242) == encode(PubAck(4242))
        wire.client.disconnect()
        assert wire.written(2) == encode(Disconnect()) == b"\xe0\x00"
    finally:
        wire.peer.close()
        wire.server.close()


# -- the packet rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (MAX_REMAINING, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_boundaries_of_the_spec(size: int, encoded: bytes) -> None:
    assert remaining_length(size) == encoded  # the table of MQTT 3.1.1 section 2.2.3


def test_remaining_length_beyond_four_bytes_is_refused_both_ways() -> None:
    with pytest.raises(ProtocolViolation):
        remaining_length(MAX_REMAINING + 1)
    with pytest.raises(ProtocolViolation, match="four bytes"):
        read_all(b"\x30\xff\xff\xff\xff\x01")


MALFORMED = {
    "QoS 3": (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
    "QoS 0 with DUP": (b"\x38\x03\x00\x01a", "DUP"),
    "QoS 1 packet id 0": (b"\x32\x05\x00\x01a\x00\x00", "identifier 0"),
    "QoS 1 without packet id": (b"\x32\x03\x00\x01a", "packet identifier"),
    "topic longer than packet": (b"\x30\x03\x00\x05a", "too short"),
    "PUBLISH of one byte": (b"\x30\x01\x00", "shorter"),
    "reserved type 0": (b"\x00\x00", "reserved packet type"),
    "reserved type 15": (b"\xf0\x00", "reserved packet type"),
    "PUBACK with flags": (b"\x41\x02\x00\x01", "reserved flags"),
    "SUBSCRIBE without flag 2": (b"\x80\x06\x00\x01\x00\x01a\x00", "reserved flags"),
    "PUBREL without flag 2": (b"\x60\x02\x00\x01", "reserved flags"),
    "PUBACK too long": (b"\x40\x03\x00\x01\x00", "length 3"),
    "PINGRESP with body": (b"\xd0\x01\x00", "length 1"),
    "CONNACK reserved flags": (b"\x20\x02\x02\x00", "section 3.2.2.1"),
    "SUBACK bad code": (b"\x90\x03\x00\x01\x03", "return codes"),
    "SUBACK packet id 0": (b"\x90\x03\x00\x00\x00", "identifier 0"),
    "SUBSCRIBE empty": (b"\x82\x02\x00\x01", "MQTT-3.8.3-3"),
    "SUBSCRIBE QoS 3": (b"\x82\x06\x00\x01\x00\x01a\x03", "MQTT-3.8.3-4"),
    "UNSUBSCRIBE empty": (b"\xa2\x02\x00\x01", "MQTT-3.10.3-2"),
    "CONNECT 3.1": (b"\x10\x0e\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x00", "not MQTT 3.1.1"),
    "CONNECT reserved flag": (b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00", "reserved"),
    "CONNECT will QoS 3": (
        b"\x10\x11\x00\x04MQTT\x04\x1c\x00\x3c\x00\x00\x00\x01t\x00\x00",
        "MQTT-3.1.2-14",
    ),
    "CONNECT will QoS, no will": (
        b"\x10\x0c\x00\x04MQTT\x04\x08\x00\x3c\x00\x00",
        "MQTT-3.1.2-11",
    ),
    "CONNECT password, no user": (
        b"\x10\x0f\x00\x04MQTT\x04\x40\x00\x3c\x00\x00\x00\x01p",
        "MQTT-3.1.2-22",
    ),
    "field past the end": (b"\x82\x05\x00\x01\x00\x09a", "malformed SUBSCRIBE"),
    "filter not UTF-8": (b"\xa2\x05\x00\x01\x00\x01\xff", "malformed UNSUBSCRIBE"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_packets_are_typed_protocol_violations(case: str) -> None:
    data, reason = MALFORMED[case]
    reader = PacketReader()
    reader.receive_data(data)
    with pytest.raises(ProtocolViolation, match=reason):
        reader.next_event()
    reader.receive_data(b"\xd0\x00")
    with pytest.raises(ProtocolViolation):  # a broken stream stays broken
        reader.next_event()


def test_a_packet_larger_than_the_readers_limit_is_refused_before_it_is_buffered() -> None:
    reader = PacketReader(max_remaining=1024)
    reader.receive_data(b"\x30\x81\x08")  # 1025 bytes announced, none sent yet
    with pytest.raises(ProtocolViolation, match="exceeds the limit"):
        reader.next_event()


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode_publish(b"t", b"", 1, packet_id=None),
        lambda: encode_publish(b"t", b"", 1, packet_id=0),
        lambda: encode_publish(b"t", b"", 2, packet_id=65536),
        lambda: encode_publish(b"t", b"", 3, packet_id=1),
        lambda: encode_publish(b"t", b"", 0, dup=True),
        lambda: encode_publish(b"t" * 65536, b""),
        lambda: encode_puback(0),
        lambda: encode(Subscribe(1, [])),
        lambda: encode(Subscribe(1, [("a", 3)])),
        lambda: encode(Unsubscribe(0, ["a"])),
        lambda: encode(SubAck(1, [7])),
        lambda: encode(Connect("c", password=b"p")),
        lambda: encode(Connect("c", keep_alive=70_000)),
    ],
)
def test_encoders_refuse_what_breaks_a_rule(call: Any) -> None:
    with pytest.raises(ProtocolViolation):
        call()


def test_partial_packets_wait_for_more_bytes_and_keep_the_raw_bytes() -> None:
    publish = encode_publish(b"a/b", b"payload", 1, True, 7)
    reader = PacketReader()
    for byte in publish[:-1]:
        reader.receive_data(bytes((byte,)))
        assert reader.next_event() is NEED_DATA
    reader.receive_data(publish[-1:] + b"\xd0")
    assert reader.next_event() == Publish(b"a/b", b"payload", 1, True, False, 7)
    assert reader.last_raw() == publish  # valid until the next receive_data
    assert reader.next_event() is NEED_DATA
    assert reader.buffered == 1
    reader.receive_data(b"\x00")
    assert reader.next_event() == PingResp()
    assert reader.last_raw() == b"\xd0\x00"
    assert reader.buffered == 0


# -- fuzzing -------------------------------------------------------------------------------------

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
packet_ids = st.integers(1, 65535)
packets = st.one_of(
    st.builds(
        lambda t, p, q, r, d, i: Publish(t, p, q, r, d and q > 0, i if q else None),
        st.binary(max_size=40),
        st.binary(max_size=300),
        st.sampled_from([0, 1, 2]),
        st.booleans(),
        st.booleans(),
        packet_ids,
    ),
    st.builds(PubAck, packet_ids),
    st.builds(PubRec, packet_ids),
    st.builds(PubRel, packet_ids),
    st.builds(PubComp, packet_ids),
    st.builds(UnsubAck, packet_ids),
    st.builds(ConnAck, st.booleans(), st.integers(0, 255)),
    st.builds(SubAck, packet_ids, st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1)),
    st.builds(
        Subscribe,
        packet_ids,
        st.lists(st.tuples(texts, st.sampled_from([0, 1, 2])), min_size=1, max_size=5),
    ),
    st.builds(Unsubscribe, packet_ids, st.lists(texts, min_size=1, max_size=5)),
    st.builds(
        Connect,
        texts,
        st.booleans(),
        st.integers(0, 65535),
        st.none() | texts,
        st.none(),
        st.none()
        | st.builds(Will, texts, st.binary(max_size=20), st.sampled_from([0, 1, 2]), st.booleans()),
    ),
    st.just(PingReq()),
    st.just(PingResp()),
    st.just(Disconnect()),
)


@settings(max_examples=150)
@given(st.lists(packets, max_size=8), st.integers(1, 64))
def test_any_packets_round_trip_in_any_chunking(found: list[Packet], chunk: int) -> None:
    raw = b"".join(encode(p) for p in found)
    assert read_all(raw, chunk) == found


@settings(max_examples=500)
@given(st.binary(max_size=300), st.integers(1, 32))
def test_arbitrary_bytes_raise_nothing_but_a_protocol_violation(data: bytes, chunk: int) -> None:
    try:
        for packet in read_all(data, chunk):
            # What decodes encodes again to a packet that reads back the same.
            assert read_all(encode(packet)) == [packet]
    except ProtocolViolation:
        pass


def _read_by_runs(data: bytes, chunk: int) -> tuple[list[Any], str | None]:
    """``read_all`` through ``next_run``: the packets, then the violation (if one)."""
    reader = PacketReader(max_remaining=200)
    out: list[Any] = []
    try:
        for start in range(0, len(data), chunk):
            reader.receive_data(data[start : start + chunk])
            while True:
                run: list[Publish] = []
                try:
                    event = reader.next_run(run)
                finally:
                    out.extend(run)  # the run before a violation stands
                if isinstance(event, NeedData):
                    break
                out.append(event)
    except ProtocolViolation as err:
        return out, str(err)
    return out, None


def _read_by_events(data: bytes, chunk: int) -> tuple[list[Any], str | None]:
    reader = PacketReader(max_remaining=200)
    out: list[Any] = []
    try:
        for start in range(0, len(data), chunk):
            reader.receive_data(data[start : start + chunk])
            while not isinstance(event := reader.next_event(), NeedData):
                out.append(event)
    except ProtocolViolation as err:
        return out, str(err)
    return out, None


def _publish_raw(first: int, topic: bytes, body: bytes, short: int) -> bytes:
    """A PUBLISH with any flags whose remaining length may be ``short`` bytes too small
    (then its topic may end beyond it)."""
    length = max(0, 2 + len(topic) + len(body) - short)
    return bytes([first]) + remaining_length(length) + len(topic).to_bytes(2, "big") + topic + body


# PUBLISH headers of every kind, good and bad: QoS 0-3, DUP, one- and two-byte lengths,
# lengths that lie.
_publish_bytes = st.builds(
    _publish_raw,
    st.integers(0x30, 0x3F),
    st.binary(max_size=5),
    st.binary(max_size=4) | st.binary(min_size=120, max_size=250),  # 1- and 2-byte lengths
    st.sampled_from([0, 0, 0, 1, 2, 4, 8]),
)


@settings(max_examples=120)
@given(
    st.lists(st.one_of(_publish_bytes, packets.map(encode), st.binary(max_size=6)), max_size=10),
    st.integers(1, 300),
)
# Each fault the fast path must leave to ``next_event``, once for certain:
@example([_publish_raw(0x30, b"abcde", b"", 4)], 300)  # the topic ends beyond the packet
@example([_publish_raw(0x32, b"ab", b"\x00", 0)], 300)  # no room for the packet identifier
@example([_publish_raw(0x32, b"ab", b"\x00\x00x", 0)], 300)  # packet identifier 0
@example([_publish_raw(0x36, b"ab", b"\x00\x01x", 0)], 300)  # QoS 3
@example([_publish_raw(0x38, b"ab", b"x", 0)], 300)  # QoS 0 with DUP
@example([_publish_raw(0x30, b"ab", b"x" * 240, 0)], 300)  # above the reader's limit
@example([_publish_raw(0x30, b"ab", b"x", 0) * 3], 2)  # cut anywhere
def test_next_run_reads_exactly_what_next_event_reads(parts: list[bytes], chunk: int) -> None:
    """The data plane's fast path (one call per run of PUBLISHes) reads the same packets
    and raises the same violation, at the same place, as one call per packet."""
    data = b"".join(parts)
    assert _read_by_runs(data, chunk) == _read_by_events(data, chunk)


def test_the_kits_proxy_decodes_with_this_codec() -> None:
    from taktora_connector.conformance.proxy import PacketType as WireType
    from taktora_connector.conformance.proxy import WirePacket

    def seen(packet: Packet) -> WirePacket:
        raw = encode(packet)
        assert raw[1] < 128  # small packets here: a two-byte fixed header
        return WirePacket("out", WireType(raw[0] >> 4), raw[0] & 0x0F, raw[2:])

    subscribe = Subscribe(9, [("a/+", 1), ("b/#", 0)])
    wire = seen(subscribe)
    assert wire.decoded() == subscribe
    assert wire.describe()["info"] == " a/+ (QoS 1), b/# (QoS 0)"
    publish = Publish(b"t/x", b"12345", 1, True, True, 77)
    wire = seen(publish)
    assert wire.decoded() == publish
    described = wire.describe()
    assert (described["id"], described["topic"], described["size"]) == (77, "t/x", 5)
    connect = Connect("cid", password=None, username="u")
    assert "password no" in str(seen(connect).describe()["info"])
    broken = WirePacket("in", WireType.PUBACK, 0, b"\x00")  # one byte short
    assert broken.decoded() is None
    assert "does not decode" in str(broken.describe()["info"])


def test_a_publish_above_the_payload_limit_is_skipped_as_it_arrives() -> None:
    """Issue 9 point 11: the reader keeps the header, discards the payload as it comes,
    and the packets after it are split as usual."""
    from taktora_connector.adapters.mqtt.protocol.packets import SkippedPublish

    from .hostile import publish

    reader = PacketReader()
    reader.payload_limit = lambda topic: 1024 if topic == b"big/t" else 10**9
    stream = publish(b"big/t", b"x" * 100_000, qos=1, packet_id=5) + publish(b"big/t", b"ok")
    events: list[Any] = []
    for start in range(0, len(stream), 4096):
        reader.receive_data(stream[start : start + 4096])
        assert reader.buffered <= 8192  # never the whole payload
        while not isinstance(event := reader.next_event(), NeedData):
            events.append(event)
    assert events[0] == SkippedPublish(b"big/t", 100_000, 1, False, 5)
    assert events[1].payload == b"ok"
    # A resend keeps its DUP flag when skipped (a resumed session tells resends apart).
    resend = bytearray(publish(b"big/t", b"x" * 100_000, qos=1, packet_id=6))
    resend[0] |= 0x08
    reader.receive_data(bytes(resend[:4096]))
    assert reader.next_event() == SkippedPublish(b"big/t", 100_000, 1, False, 6, dup=True)
    reader.receive_data(bytes(resend[4096:]))
    assert isinstance(reader.next_event(), NeedData)
    # A large one that a reader wants is kept whole.
    reader.payload_limit = lambda topic: 10**9
    stream = publish(b"big/t", b"y" * 100_000)
    for start in range(0, len(stream), 4096):
        reader.receive_data(stream[start : start + 4096])
    last: Any = reader.next_event()
    assert last.payload == b"y" * 100_000


class _CountingReader(PacketReader):
    """Counts every byte the reader copies while buffering (its one join hook)."""

    __slots__ = ("copied", "joins")

    def __init__(self) -> None:
        super().__init__()
        self.copied = 0
        self.joins = 0

    def _join(self, parts: list[bytes | memoryview]) -> bytes:
        joined = super()._join(parts)
        self.copied += len(joined)
        self.joins += 1
        return joined


@pytest.mark.parametrize("with_limit", [False, True])
def test_a_large_publish_is_buffered_in_linear_copies(with_limit: bool) -> None:
    """A 32 MiB PUBLISH read in 64 KiB chunks is joined about once, not once per chunk.

    Joining the pending bytes with every chunk copies them 512 times (8 GiB copied in
    all, seconds of CPU); collecting the chunks and joining them when the announced
    length is all here copies each byte a bounded number of times."""
    from .hostile import publish

    size = 32 * 1024 * 1024
    chunk = 65_536
    reader = _CountingReader()
    if with_limit:  # the data plane's way: a wanted payload is checked, then collected
        reader.payload_limit = lambda topic: size
    stream = publish(b"big/t", b"z" * size, qos=1, packet_id=7) + publish(b"small", b"after")
    events: list[Any] = []
    reads = 0
    for start in range(0, len(stream), chunk):
        reader.receive_data(stream[start : start + chunk])
        reads += 1
        while not isinstance(event := reader.next_event(), NeedData):
            events.append(event)
    assert [(event.topic, len(event.payload)) for event in events] == [
        (b"big/t", size),
        (b"small", 5),
    ]
    assert events[0].payload == b"z" * size
    assert reads > 500
    assert size <= reader.copied <= 2 * size  # every byte joined once (plus a little)
    assert reader.joins <= 4
