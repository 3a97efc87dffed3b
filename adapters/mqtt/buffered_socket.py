"""A socket wrapper that turns many small reads and writes into few system calls.

paho reads each packet with several small ``recv`` calls (one byte of type,
one per byte of length, then the rest) and writes each packet with its own
``send``. Wrapped in this, reads are served from one large ``recv`` and writes
collect in a buffer that the gateway flushes once per pass of its loop.

Rules of this module:
- ``send`` always takes every byte (paho then sees each packet as written);
  what has really reached the kernel is only known after ``flush``, so the
  gateway completes QoS 0 deliveries and gates new QoS 0 messages on
  ``unflushed``, not on paho's view;
- ``recv`` raises what the socket raises (``BlockingIOError``, TLS want-read
  errors), which paho already handles; an empty read means the peer closed;
- everything else (``fileno``, ``setblocking``, TLS details) is the socket's.
"""

from __future__ import annotations

import ssl
from typing import Any, Final

READ_CHUNK: Final = 65_536


class BufferedSocket:
    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._read = bytearray()
        self._write = bytearray()
        #: Bytes that were still unwritten when the socket closed (lost with it).
        self.lost_on_close = 0

    @property
    def raw(self) -> Any:
        return self._sock

    @property
    def unflushed(self) -> int:
        """Bytes taken by ``send`` that have not reached the kernel yet."""
        return len(self._write)

    @property
    def buffered(self) -> int:
        """Bytes read from the socket that paho has not consumed yet."""
        return len(self._read)

    def recv(self, size: int) -> bytes:
        buffer = self._read
        if not buffer:
            data = self._sock.recv(READ_CHUNK)
            if not data:
                return b""
            if len(data) <= size:
                return bytes(data)
            buffer += data
        chunk = bytes(buffer[:size])
        del buffer[:size]  # deleting from the front of a bytearray is amortised O(1)
        return chunk

    def send(self, data: bytes | bytearray | memoryview) -> int:
        self._write += data
        return len(data)

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
        return True

    def pending(self) -> int:
        """Bytes readable without touching the network (for TLS, its own buffer too)."""
        inner = getattr(self._sock, "pending", None)
        return len(self._read) + (inner() if inner is not None else 0)

    def close(self) -> None:
        if self._write:  # e.g. a DISCONNECT paho queued just before closing: one try
            try:
                del self._write[: self._sock.send(self._write)]
            except OSError:
                pass
            self.lost_on_close = len(self._write)
            self._write.clear()
        self._read.clear()
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
