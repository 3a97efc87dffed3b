"""What application threads ask of the sidecar's life: stop (with a flush time),
abandon (stop at once), restart after giving up.

Rules of this module:
- it never imports paho and never blocks: an application thread writes a few
  fields (whole-object stores, atomic under the GIL) and then wakes the sidecar;
- the sidecar only reads them, except ``flushed``, which it sets when it exits with
  nothing left to flush, and ``restart``, which it clears when it acts on it;
- a stop ends the sidecar once nothing is left to flush, or at the deadline, or
  at once if it gave up (no connection will come to flush into).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from threading import TIMEOUT_MAX


class Requests:
    __slots__ = ("abandoned", "deadline", "flushed", "restart", "stop")

    def __init__(self) -> None:
        self.stop = False
        self.deadline = 0.0  # monotonic; when the stop ends the flush
        self.flushed = False  # the sidecar exited with nothing left to flush
        self.abandoned: str | None = None  # the connector was dropped unclosed
        self.restart = False

    def ask_stop(self, timeout: float | None, connect_timeout: float) -> float | None:
        """Stop, flushing for up to ``timeout`` s (None: no deadline); how long to wait
        for the sidecar's thread (None: for ever)."""
        if timeout is None:
            self.deadline = math.inf
            bound = None
        else:
            self.deadline = time.monotonic() + max(timeout, 0.0)
            bound = min(max(timeout, 0.0) + connect_timeout + 5.0, TIMEOUT_MAX)
        self.stop = True
        return bound

    def abandon(self) -> None:
        """Stop without waiting to flush."""
        self.deadline = 0.0
        self.stop = True

    def stop_at(self) -> float | None:
        """The stop's deadline once a stop was asked for, else None."""
        return self.deadline if self.stop else None

    def should_exit(self, nothing_to_flush: Callable[[], bool], gave_up: bool) -> bool:
        if not self.stop:
            return False
        if nothing_to_flush():
            self.flushed = True
            return True
        return time.monotonic() >= self.deadline or gave_up
