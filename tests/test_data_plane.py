"""The data plane without a broker: bytes in, batches to readers, PUBACKs and PUBLISHes out."""

from __future__ import annotations

import socket
from collections.abc import Hashable
from typing import Any

import pytest
from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt.bridge import OutboundBridge
from taktora_connector.adapters.mqtt.delivery import Delivery
from taktora_connector.adapters.mqtt.protocol.packet_ids import PacketIds
from taktora_connector.adapters.mqtt.protocol.packets import (
    NeedData,
    PacketReader,
    PacketType,
    ProtocolViolation,
    PubAck,
    Publish,
    SubAck,
    encode,
    encode_publish,
)
from taktora_connector.adapters.mqtt.records import Inbound, Outbound
from taktora_connector.adapters.mqtt.sidecar.buffered_socket import BufferedSocket
from taktora_connector.adapters.mqtt.sidecar.data_plane import DataPlane
from taktora_connector.domain import ConnectorDown, ConnectorError


class FakeReader:
    def __init__(self, room: int = 1_000) -> None:
        self.batches: list[list[Inbound]] = []
        self.room = room

    def deliver_many(self, items: list[Inbound]) -> int:
        kept = items[: self.room]
        self.room -= len(kept)
        self.batches.append(kept)
        return len(items) - len(kept)

    def fail(self, error: ConnectorError) -> None:  # pragma: no cover - not used here
        raise AssertionError(error)

    def settle_drop(self) -> None:
        self.settled = True


class Drops:
    def __init__(self) -> None:
        self.counted: list[tuple[Hashable, int]] = []

    def inbound_dropped(self, reader: Hashable, count: int = 1) -> None:
        self.counted.append((reader, count))


def plane_with(
    readers: dict[str, list[Any]], max_inflight: int = 100
) -> tuple[DataPlane, BufferedSocket, socket.socket, Drops]:
    left, right = socket.socketpair()
    left.setblocking(False)
    wire = BufferedSocket(left)
    drops = Drops()
    plane = DataPlane(
        lambda topic: readers.get(topic, []),
        drops,
        PacketIds(),
        max_inflight,
        lambda *message: None,
    )
    plane.attach(wire)
    plane.session.received(PacketType.CONNACK)  # connected, as after the broker's CONNACK
    return plane, wire, right, drops


def sent_packets(wire: BufferedSocket, peer: socket.socket) -> list[Any]:
    wire.flush()
    peer.setblocking(False)
    data = b""
    try:
        while chunk := peer.recv(65536):
            data += chunk
    except BlockingIOError:
        pass
    reader = PacketReader()
    reader.receive_data(data)
    found = []
    while not isinstance(packet := reader.next_event(), NeedData):
        found.append(packet)
    return found


def test_inbound_messages_reach_readers_in_batches_and_control_packets_go_whole_in_order() -> None:
    reader = FakeReader()
    plane, wire, peer, _ = plane_with({"a/b": [reader]})
    suback = encode(SubAck(7, [1]))
    stream = (
        encode_publish(b"a/b", b"1", 0)
        + encode_publish(b"a/b", b"2", 1, False, 11)
        + suback
        + encode_publish(b"a/b", b"3", 1, True, 12)
        + encode_publish(b"nobody/here", b"4", 1, False, 13)
    )
    handed: list[tuple[bytes, int]] = []

    def to_session(packet: bytes) -> bool:
        handed.append((packet, sum(len(b) for b in reader.batches)))
        return True

    for cut in (5, 40):  # in pieces: partial packets wait for their rest
        plane.receive(stream[:cut] if cut == 5 else stream[5:cut], to_session)
    plane.receive(stream[40:], to_session)
    # The SUBACK went to paho whole, after the two messages before it reached the reader.
    assert handed == [(suback, 2)]
    assert [item[0] for batch in reader.batches for item in batch] == [b"1", b"2", b"3"]
    assert [item[2:4] for batch in reader.batches for item in batch] == [
        (0, False),
        (1, False),
        (1, True),
    ]
    # Every QoS 1 message is acknowledged, also the one nobody reads, in order.
    assert sent_packets(wire, peer) == [PubAck(11), PubAck(12), PubAck(13)]
    assert plane.packets_received == 5


def test_one_lock_per_reader_per_read_not_per_message() -> None:
    reader = FakeReader()
    plane, _, _, _ = plane_with({"t": [reader]})
    plane.receive(b"".join(encode_publish(b"t", b"x", 0) for _ in range(500)), lambda p: True)
    assert [len(batch) for batch in reader.batches] == [500]


def test_drops_are_counted_per_batch() -> None:
    reader = FakeReader(room=3)
    plane, _, _, drops = plane_with({"t": [reader]})
    plane.receive(b"".join(encode_publish(b"t", b"x", 0) for _ in range(10)), lambda p: True)
    assert drops.counted == [(reader, 7)]


@pytest.mark.parametrize(
    ("topic", "statement"),
    [
        (b"\xff\xfe", "MQTT-1.5.3-1"),
        (b"t/+", "MQTT-3.3.2-2"),
        (b"t/#", "MQTT-3.3.2-2"),
        (b"", "MQTT-4.7.3-1"),
        (b"t\x00u", "MQTT-1.5.3-2"),
    ],
)
def test_what_is_no_topic_name_is_a_violation_counted_and_never_acknowledged(
    topic: bytes, statement: str
) -> None:
    """MQTT-4.8.0-1: the connection closes (the gateway does it on the violation); what
    came before is delivered and acknowledged, the bad one neither."""
    reader = FakeReader()
    plane, wire, peer, _ = plane_with({"t": [reader]})
    data = encode_publish(b"t", b"ok", 1, False, 4) + encode_publish(topic, b"bad", 1, False, 5)
    with pytest.raises(ProtocolViolation, match=statement):
        plane.receive(data, lambda p: True)
    assert plane.rejected_inbound == 1
    assert [item[0] for item in reader.batches[0]] == [b"ok"]
    assert sent_packets(wire, peer) == [PubAck(4)]


def test_a_protocol_violation_raises_after_the_messages_before_it_were_delivered() -> None:
    reader = FakeReader()
    plane, _, _, _ = plane_with({"t": [reader]})
    with pytest.raises(ProtocolViolation, match="QoS 2"):
        plane.receive(
            encode_publish(b"t", b"first", 0) + encode_publish(b"t", b"qos2", 2, False, 9),
            lambda p: True,
        )
    assert [item[0] for item in reader.batches[0]] == [b"first"]


def test_a_run_of_publishes_cut_short_by_bytes_that_are_no_packet_is_handled_once() -> None:
    """PUBLISHes are handled a run at a time (``_on_publishes``): a run the stream's
    end interrupts (here a packet of the reserved type 15) still reaches the reader,
    once, is counted as received and acknowledged in order; the bytes then end it."""
    reader = FakeReader()
    plane, wire, peer, _ = plane_with({"t": [reader]})
    stream = encode_publish(b"t", b"a", 1, False, 1) + encode_publish(b"t", b"b", 1, False, 2)
    with pytest.raises(ProtocolViolation):
        plane.receive(stream + b"\xf0\x00", lambda p: True)
    assert [item.payload for batch in reader.batches for item in batch] == [b"a", b"b"]
    assert plane.packets_received == 2
    assert [packet.packet_id for packet in sent_packets(wire, peer)] == [1, 2]


def outbound(bridge: OutboundBridge[Outbound], qos: int, n: int) -> list[Delivery]:
    deliveries = []
    for i in range(n):
        delivery = Delivery()
        bridge.offer(Outbound("out/t", str(i).encode(), qos, False, delivery))
        deliveries.append(delivery)
    return deliveries


def test_qos1_window_out_of_order_acks_complete_in_order_and_resend_sets_dup() -> None:
    plane, wire, peer, _ = plane_with({}, max_inflight=2)
    bridge: OutboundBridge[Outbound] = OutboundBridge(10, lambda: None)
    first, second, third = outbound(bridge, 1, 3)
    plane.pump(bridge)
    assert len(bridge) == 1  # the window holds two; the third stays in the bridge
    sent = sent_packets(wire, peer)
    assert sent == [
        Publish(b"out/t", b"0", 1, False, False, 1),
        Publish(b"out/t", b"1", 1, False, False, 2),
    ]
    plane.receive(encode(PubAck(2)), lambda p: True)
    assert second.result is None  # acknowledged, but completes after the older one
    plane.resend()  # as after a reconnect: only the unacknowledged one, DUP set
    assert sent_packets(wire, peer) == [Publish(b"out/t", b"0", 1, False, True, 1)]
    plane.receive(encode(PubAck(1)), lambda p: True)
    assert is_successful(first.wait(0)) and is_successful(second.wait(0))
    plane.pump(bridge)
    assert sent_packets(wire, peer) == [Publish(b"out/t", b"2", 1, False, False, 3)]
    assert not third.done
    assert not plane.idle


def test_an_early_acknowledgement_keeps_the_window_and_its_identifier_until_it_completes() -> None:
    """Issue 16 point 7: an identifier acknowledged ahead of an older one was released
    at once; a new message took it while the old entry still waited in the order, and
    once the identifiers wrapped every later delivery hung."""
    plane, wire, peer, _ = plane_with({}, max_inflight=2)
    bridge: OutboundBridge[Outbound] = OutboundBridge(10, lambda: None)
    plane._ids._last = 65_534  # the next identifiers are 65535, then 1: across the wrap
    first, second, third = outbound(bridge, 1, 3)
    plane.pump(bridge)
    assert [p.packet_id for p in sent_packets(wire, peer)] == [65_535, 1]
    plane.receive(encode(PubAck(1)), lambda p: True)
    assert not second.done
    assert plane._ids.in_use(1)  # not free while its message waits for the older one
    assert not plane.can_pump(bridge)  # the window still holds two
    plane.pump(bridge)
    assert sent_packets(wire, peer) == []
    plane.receive(encode(PubAck(1)), lambda p: True)  # a duplicate: changes nothing
    assert not second.done
    plane.receive(encode(PubAck(65_535)), lambda p: True)
    assert is_successful(first.wait(0)) and is_successful(second.wait(0))
    assert not plane._ids.in_use(1) and not plane._ids.in_use(65_535)
    plane.pump(bridge)
    assert [p.packet_id for p in sent_packets(wire, peer)] == [2]
    plane.receive(encode(PubAck(2)), lambda p: True)
    assert is_successful(third.wait(0))
    assert plane.idle


def test_qos0_completes_once_its_bytes_reached_the_kernel_and_fails_if_lost() -> None:
    plane, wire, peer, _ = plane_with({})
    bridge: OutboundBridge[Outbound] = OutboundBridge(10, lambda: None)
    written = outbound(bridge, 0, 2)
    plane.pump(bridge)
    plane.settle_qos0()
    assert not any(d.done for d in written)  # in our buffer, not in the kernel yet
    wire.flush()
    plane.settle_qos0()
    assert all(d.done and is_successful(d.wait(0)) for d in written)
    lost = outbound(bridge, 0, 1)
    plane.pump(bridge)
    plane.connection_lost()
    assert isinstance(lost[0].wait(0).failure(), ConnectorDown)
    peer.close()
