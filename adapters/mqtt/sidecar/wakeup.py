"""The sidecar's sleep: one selector over the broker socket and a wake pipe.

Application threads never touch the socket; to get the sidecar's attention they
call ``wake``, which writes one byte to a pipe the selector watches.

Rules of this module:
- it never imports paho and never blocks an application thread: ``wake`` is one
  non-blocking write, and only while the sidecar sleeps (or when forced);
- a full pipe means a wake-up is pending anyway, so ``wake`` never fails;
- ``select`` drains the pipe itself and reports only whether the socket is readable;
- a socket closed under it is not an error here: the next read reports the loss.
"""

from __future__ import annotations

import os
import select
import selectors
from collections.abc import Callable
from typing import Any


class Wakeup:
    def __init__(self) -> None:
        self.fd, self._write_fd = os.pipe()  # fd: the end to watch
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)
        self._sleeping = False
        self._pending = False
        self._selector = selectors.DefaultSelector()
        self._registered: tuple[Any, int] | None = None
        self._peek: tuple[Any, select.poll] | None = None

    def wake(self, force: bool = False) -> None:
        """Interrupt the sidecar's sleep (cheap when it is awake already)."""
        if (self._sleeping or force) and not self._pending:
            self._pending = True
            try:
                os.write(self._write_fd, b"\x01")
            except (BlockingIOError, OSError):  # full pipe: a wake-up is pending anyway
                pass

    def drain(self) -> None:
        self._pending = False
        try:
            while os.read(self.fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def watch(self, sock: Any, want_write: bool) -> None:
        """Watch ``sock`` (None: no socket) for reading, and for writing if asked."""
        selector = self._selector
        if not selector.get_map():
            selector.register(self.fd, selectors.EVENT_READ)
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
        wanted = (sock, events) if sock is not None else None
        if wanted == self._registered:
            return
        if self._registered is not None:
            old_sock = self._registered[0]
            try:
                if sock is old_sock and sock is not None:
                    selector.modify(sock, events)
                    self._registered = wanted
                    return
                selector.unregister(old_sock)
            except (KeyError, ValueError, OSError):
                pass
        self._registered = None
        if sock is not None:
            try:
                selector.register(sock, events)
                self._registered = wanted
            except (ValueError, OSError):  # closed under us: the next read reports the loss
                self._registered = None

    def select(self, timeout: float, work_waits: Callable[[], bool]) -> int:
        """Sleep until the watched socket is ready, a wake-up, or ``timeout`` s (not at
        all if ``work_waits()``, asked once ``wake`` writes again: no wake-up is lost
        between the question and the sleep); the socket's readable events (0 or 1)."""
        self._sleeping = True
        if work_waits():
            timeout = 0.0
        try:
            events = self._selector.select(timeout)
        finally:
            self._sleeping = False
        readable = 0
        for key, mask in events:
            if key.fileobj == self.fd:
                self.drain()
            elif mask & selectors.EVENT_READ:
                readable += 1
        return readable

    def readable_now(self, sock: Any) -> bool:
        """Whether more bytes wait on ``sock`` (poll, which has no descriptor limit)."""
        peek = self._peek
        if peek is None or peek[0] is not sock:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            peek = self._peek = (sock, poller)
        try:
            return bool(peek[1].poll(0))
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        try:
            self._selector.close()
        except (OSError, ValueError):  # pragma: no cover
            pass
        for fd in (self.fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.fd = self._write_fd = -1


def has_buffered_input(sock: Any) -> bool:
    """Bytes readable without the selector seeing them (TLS keeps a buffer of its own)."""
    pending = getattr(sock, "pending", None)
    return bool(pending and pending())
