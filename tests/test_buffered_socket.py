"""The buffered socket under paho, and the paho internals it relies on."""

from __future__ import annotations

import socket
from importlib import metadata
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from taktora_connector.adapters.mqtt.buffered_socket import BufferedSocket
from taktora_connector.adapters.mqtt.gateway import _install_buffer
from taktora_connector.conformance.brokers import EmbeddedBroker

from .conftest import ConnectFn


def pair() -> tuple[BufferedSocket, socket.socket]:
    left, right = socket.socketpair()
    left.setblocking(False)
    return BufferedSocket(left), right


def test_small_reads_are_served_from_one_recv() -> None:
    wire, peer = pair()
    peer.sendall(b"\x30\x05hello\x40\x02\x00\x01")
    assert wire.recv(1) == b"\x30"
    assert wire.buffered == 10
    assert wire.recv(1) == b"\x05"
    assert wire.recv(5) == b"hello"
    assert wire.recv(100) == b"\x40\x02\x00\x01"  # never more than what was read
    assert wire.pending() == 0
    with pytest.raises(BlockingIOError):
        wire.recv(1)
    peer.close()
    assert wire.recv(1) == b""  # the peer closed


def test_writes_collect_until_flushed() -> None:
    wire, peer = pair()
    assert wire.send(b"abc") == 3
    assert wire.send(memoryview(b"def")) == 3
    assert wire.unflushed == 6
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(10)  # nothing reached the kernel yet
    assert wire.flush() is True
    assert peer.recv(10) == b"abcdef"
    assert wire.unflushed == 0


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
    """Fails loudly when a paho release moves what ``_install_buffer`` replaces."""
    version = tuple(int(p) for p in metadata.version("paho-mqtt").split(".")[:2])
    assert (2, 1) <= version < (2, 3), "re-check the buffered socket against this paho release"
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="internals")
    client.on_socket_register_write = lambda *a: None
    client.connect("127.0.0.1", amqtt_broker.port)
    raw: Any = client.socket()
    wire = _install_buffer(client)
    assert client.socket() is wire
    assert wire.raw is raw
    connected: list[Any] = []
    client.on_connect = lambda *a: connected.append(a[3])
    for _ in range(100):  # paho's own loop now reads and writes through the wrapper
        client.loop_write()
        wire.flush()
        client.loop_read()
        if connected:
            break
        import time

        time.sleep(0.01)
    assert connected
    assert not connected[0].is_failure
    client.disconnect()
    client.loop_write()


def test_the_connector_runs_on_the_buffered_socket(
    amqtt_broker: EmbeddedBroker, connect: ConnectFn
) -> None:
    conn = connect(amqtt_broker.port)
    gateway: Any = conn._gateway
    assert isinstance(gateway._client.socket(), BufferedSocket)
