"""The buffered socket under paho, and the paho internals it relies on."""

from __future__ import annotations

import socket
import time
from importlib import metadata
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from taktora_connector.adapters.mqtt.protocol.packet_ids import PacketIds, PacketIdsExhausted
from taktora_connector.adapters.mqtt.sidecar.buffered_socket import BufferedSocket
from taktora_connector.adapters.mqtt.sidecar.paho_contact import (
    install_buffer,
    install_ids,
    install_tcp_connect,
)
from taktora_connector.conformance.brokers import EmbeddedBroker

from .conftest import ConnectFn


def pair() -> tuple[BufferedSocket, socket.socket]:
    left, right = socket.socketpair()
    left.setblocking(False)
    return BufferedSocket(left), right


def test_the_data_plane_reads_the_socket_and_paho_reads_only_what_it_is_handed() -> None:
    wire, peer = pair()
    assert wire.receive() is None  # nothing waits
    peer.sendall(b"\x30\x05hello\x90\x03\x00\x01\x00")
    assert wire.receive() == b"\x30\x05hello\x90\x03\x00\x01\x00"
    with pytest.raises(BlockingIOError):
        wire.recv(1)  # paho sees nothing it was not handed
    wire.to_session(b"\x90\x03\x00\x01\x00")
    assert wire.recv(1) == b"\x90"
    assert wire.recv(100) == b"\x03\x00\x01\x00"  # never more than the packet
    with pytest.raises(BlockingIOError):
        wire.recv(1)
    peer.close()
    assert wire.receive() == b""  # the peer closed ...
    assert wire.recv(1) == b""  # ... and paho is told so on its next read


def test_both_planes_write_into_one_buffer_in_order() -> None:
    wire, peer = pair()
    wire.send(b"\x82")  # paho's bytes
    wire.write(b"\x30")  # the data plane's
    assert wire.unflushed == 2
    assert wire.queued_total == 2
    assert wire.flushed_total == 0
    assert wire.flush() is True
    assert peer.recv(10) == b"\x82\x30"
    assert wire.flushed_total == 2


def test_a_full_kernel_buffer_leaves_the_rest_for_later() -> None:
    wire, peer = pair()
    big = b"x" * (8 * 1024 * 1024)
    wire.send(big)
    assert wire.flush() is False
    assert 0 < wire.unflushed < len(big)
    received = 0
    peer.setblocking(False)
    while wire.unflushed or received < len(big):
        wire.flush()
        try:
            received += len(peer.recv(1 << 20))
        except BlockingIOError:
            pass
    assert received == len(big)


def test_close_tries_once_and_counts_what_was_lost() -> None:
    wire, peer = pair()
    wire.send(b"\xe0\x00")  # a DISCONNECT paho queued right before closing
    wire.close()
    assert peer.recv(10) == b"\xe0\x00"
    assert wire.lost_on_close == 0


def test_paho_internals_the_gateway_relies_on(amqtt_broker: EmbeddedBroker) -> None:
    """Fails loudly when a paho release moves what ``paho_contact`` replaces: the
    private ``_sock`` (``install_buffer``), ``_mid_generate`` (``install_ids``) and
    ``_create_socket_connection`` (``install_tcp_connect``)."""
    version = tuple(int(p) for p in metadata.version("paho-mqtt").split(".")[:2])
    assert (2, 1) <= version < (2, 3), "re-check the buffered socket against this paho release"
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="internals")
    client.on_socket_register_write = lambda *a: None
    # The gateway's interruptible TCP connect stands in for this one (issue 9 point 14).
    opened: list[Any] = []
    original = client._create_socket_connection

    def opening() -> Any:
        opened.append(1)
        return original()

    install_tcp_connect(client, opening)
    ids = PacketIds()
    in_flight = {ids.take() for _ in range(5)}  # e.g. QoS 1 PUBLISHes of the data plane
    install_ids(client, ids.take)
    client.connect("127.0.0.1", amqtt_broker.port)
    raw: Any = client.socket()
    assert opened == [1]  # paho's connect went through the replaceable method
    wire = install_buffer(client)
    assert client.socket() is wire
    assert wire.raw is raw
    connected: list[Any] = []
    client.on_connect = lambda *a: connected.append(a[3])
    for _ in range(100):  # paho reads what it is handed and writes through the wrapper
        client.loop_write()
        wire.flush()
        data = wire.receive()
        if data:
            wire.to_session(data)  # the CONNACK, whole
            client.loop_read()
        if connected:
            break
        time.sleep(0.01)
    assert connected
    assert not connected[0].is_failure
    _, sub_id = client.subscribe("a/b", 1)
    _, unsub_id = client.unsubscribe("a/b")
    # paho's identifiers came from the shared allocator: none collides (MQTT-2.3.1-2).
    assert sub_id is not None and unsub_id is not None
    assert ids.in_use(sub_id) and ids.in_use(unsub_id)
    assert len({sub_id, unsub_id} | in_flight) == 7
    client.disconnect()
    client.loop_write()


def test_packet_ids_skip_those_in_flight_never_0_and_cycle() -> None:
    ids = PacketIds()
    assert [ids.take() for _ in range(3)] == [1, 2, 3]
    ids.release(2)
    assert ids.take() == 4  # a freed identifier is not reused at once
    for _ in range(65_535 - 4):
        ids.take()
    assert len(ids) == 65_534
    assert ids.take() == 2  # after the wrap, the only free one; never 0
    with pytest.raises(PacketIdsExhausted):
        ids.take()
    ids.release(40_000)
    assert ids.take() == 40_000


def test_the_connector_runs_on_the_buffered_socket(
    amqtt_broker: EmbeddedBroker, connect: ConnectFn
) -> None:
    conn = connect(amqtt_broker.port)
    gateway: Any = conn._gateway
    assert isinstance(gateway._client.socket(), BufferedSocket)
