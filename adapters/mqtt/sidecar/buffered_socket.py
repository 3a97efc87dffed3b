"""The connection's socket as both planes see it: few system calls, one byte order.

The data plane reads the socket itself (``receive``: one large ``recv``),
splits the bytes into packets and hands the control packets, whole, to paho
(``to_session``); paho, which believes this object is its socket, reads them
back with ``recv``. Both planes write into one buffer (paho through ``send``,
the data plane through ``write``) in the order they made their packets, and the
gateway flushes it once per pass of its loop.

Rules of this module:
- ``send`` and ``write`` always take every byte; what has reached the kernel is
  only known after ``flush``: ``flushed_total`` counts those bytes, so a QoS 0
  delivery completes once the flushed count passes the end of its packet;
- paho's ``recv`` only ever sees whole packets, then ``BlockingIOError`` (none
  waiting), or ``b""`` once the peer closed;
- ``receive`` returns ``None`` when nothing waits (TLS want-read included) and
  raises other socket errors to the gateway, which treats them as a lost connection;
- everything else (``fileno``, ``setblocking``, TLS details) is the socket's.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Final

READ_CHUNK: Final = 65_536
_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_INET: Final = (socket.AF_INET, socket.AF_INET6)

_NOTHING_NOW: Final = (
    BlockingIOError,
    InterruptedError,
    ssl.SSLWantReadError,
    ssl.SSLWantWriteError,
)


class Traffic:
    """Bytes written through every connection's buffer, for ``metrics()``."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = 0


class BufferedSocket:
    def __init__(self, sock: Any, traffic: Traffic | None = None) -> None:
        self._sock = sock
        self._traffic = traffic if traffic is not None else Traffic()
        self._session = bytearray()  # whole control packets waiting for paho
        self._write = bytearray()
        self._peer_closed = False
        self._quickack = _QUICKACK is not None and getattr(sock, "family", None) in _INET
        #: Bytes ever taken by ``send``/``write``, and those of them that reached the kernel.
        self.queued_total = 0
        self.flushed_total = 0
        #: Bytes that were still unwritten when the socket closed (lost with it).
        self.lost_on_close = 0

    @property
    def raw(self) -> Any:
        return self._sock

    @property
    def unflushed(self) -> int:
        """Bytes taken by ``send`` or ``write`` that have not reached the kernel yet."""
        return len(self._write)

    # -- reading: the data plane reads, paho gets the control packets ------------------------

    def receive(self) -> bytes | None:
        """One read from the socket: bytes, ``b""`` once the peer closed, ``None`` for none now."""
        try:
            data: bytes = self._sock.recv(READ_CHUNK)
        except _NOTHING_NOW:
            return None
        if not data:
            self._peer_closed = True
        elif self._quickack:
            # Acknowledge at once: a broker that batches its PUBACKs (Nagle) would
            # otherwise wait for our delayed ACK while our in-flight window is full.
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                self._quickack = False
        return data

    def to_session(self, packet: bytes) -> None:
        """Queue one whole control packet for paho's next ``recv`` calls."""
        self._session += packet

    def recv(self, size: int) -> bytes:
        """paho's read: the control packets handed over, then nothing (or the close)."""
        buffer = self._session
        if not buffer:
            if self._peer_closed:
                return b""
            raise BlockingIOError
        chunk = bytes(buffer[:size])
        del buffer[:size]  # deleting from the front of a bytearray is amortised O(1)
        return chunk

    def pending(self) -> int:
        """Bytes readable without touching the network (TLS keeps a buffer of its own)."""
        inner = getattr(self._sock, "pending", None)
        return inner() if inner is not None else 0

    # -- writing: both planes, one buffer -------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data)
        self._write += data
        self.queued_total += size
        self._traffic.sent += size
        return size

    write = send

    def flush(self) -> bool:
        """Write what the kernel takes now; True when nothing is left."""
        buffer = self._write
        while buffer:
            try:
                sent = self._sock.send(buffer)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as err:  # TLS want-write errors are OSErrors too
                if _would_block(err):
                    return False
                raise
            if not sent:
                return False
            del buffer[:sent]
            self.flushed_total += sent
        return True

    def close(self) -> None:
        if self._write:  # e.g. a DISCONNECT paho queued just before closing: one try
            try:
                sent = self._sock.send(self._write)
                del self._write[:sent]
                self.flushed_total += sent
            except OSError:
                pass
            self.lost_on_close = len(self._write)
            self._write.clear()
        self._session.clear()
        self._peer_closed = True  # paho's next read sees the end and tears the session down
        self._sock.close()

    def fileno(self) -> int:
        fd: int = self._sock.fileno()
        return fd

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _would_block(err: OSError) -> bool:
    return isinstance(err, ssl.SSLWantWriteError | ssl.SSLWantReadError)
