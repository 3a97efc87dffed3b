"""Every private part of paho-mqtt the sidecar touches, in one place.

paho is the session engine (CONNECT/CONNACK, keep-alive, SUBSCRIBE, DISCONNECT),
but three of its internals must be replaced for the rules to have one owner, and
paho has no public hook for any of them. Each is replaced here, and nowhere else;
``tests/test_buffered_socket.py::test_paho_internals_the_gateway_relies_on`` drives
a real paho client through all three against a broker, and checks the paho release
is one they were verified on (2.1 and 2.2, the pinned range), so a paho that moves
one fails loudly there, not in production:

- ``_sock``: the connected socket paho reads and writes. ``install_buffer`` puts a
  ``BufferedSocket`` in its place, so the data plane reads the socket first and
  hands paho only whole control packets, and both write into one buffer in order.
  paho uses it through ``recv``, ``send``, ``close``, ``fileno``, ``setblocking``
  and ``pending`` only;
- ``_mid_generate``: where paho takes the packet identifier of each SUBSCRIBE and
  UNSUBSCRIBE. ``install_ids`` makes it take them from the connector's one pool,
  so none collides with a QoS 1 PUBLISH in flight (MQTT-2.3.1-2);
- ``_create_socket_connection``: paho's TCP connect, which blocks for up to
  ``connect_timeout``. ``install_tcp_connect`` replaces it with one that the
  connector's ``close()`` interrupts (``connecting.open_tcp``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import paho.mqtt.client as paho

from .buffered_socket import BufferedSocket, Traffic


def install_buffer(client: paho.Client, traffic: Traffic | None = None) -> BufferedSocket:
    """Put a ``BufferedSocket`` between paho and the socket its ``connect`` just made
    (its writes counted in ``traffic``)."""
    raw = client.socket()
    if raw is None or isinstance(raw, BufferedSocket):
        raise RuntimeError("paho has no fresh socket to buffer")
    wire = BufferedSocket(raw, traffic)
    client._sock = wire  # paho's private socket (module docstring)
    return wire


def install_ids(client: paho.Client, take: Callable[[], int]) -> None:
    """Make paho take its SUBSCRIBE and UNSUBSCRIBE identifiers from ``take``."""
    client._mid_generate = take  # type: ignore[method-assign]  # (module docstring)


def install_tcp_connect(client: paho.Client, open_tcp: Callable[[], socket.socket]) -> None:
    """Make paho's ``connect`` open its TCP connection with ``open_tcp``."""
    client._create_socket_connection = open_tcp  # type: ignore[method-assign]
