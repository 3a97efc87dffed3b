"""The delivery handle of one sent message.

Rules of this module:
- completed exactly once, by the sidecar: on PUBACK (QoS 1), once the bytes
  were handed to the socket (QoS 0), or with the error that ended it;
- cheap on the hot path: no lock or event exists until somebody waits;
- ``on_done`` callbacks run on the completing thread (the sidecar); one added
  while the handle completes may run twice, so they must be idempotent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from returns.result import Failure, Result, Success

from taktora_connector.adapters.timeouts import shown, wait_seconds
from taktora_connector.domain import ConfigurationError, ConnectorError, ConnectorTimeout

_DELIVERED: Final[Result[None, ConnectorError]] = Success(None)
# One lock for creating events on demand: waiting is rare next to sending.
_EVENT_LOCK = threading.Lock()


class Delivery:
    """Implements the domain's ``DeliveryHandle``."""

    __slots__ = ("_callbacks", "_event", "_result")

    def __init__(self) -> None:
        self._result: Result[None, ConnectorError] | None = None
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[], None]] | None = None

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> Result[None, ConnectorError] | None:
        """The outcome, or ``None`` while pending."""
        return self._result

    def wait(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        result = self._result
        seconds = wait_seconds(timeout)
        if isinstance(seconds, ConfigurationError):
            return Failure(seconds)
        if result is not None:
            return result
        with _EVENT_LOCK:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        # Completion stores the result before it looks for an event, so a
        # result set while we created one is seen here.
        if self._result is None:
            event.wait(seconds)
        result = self._result
        if result is None:
            return Failure(ConnectorTimeout("delivery wait", shown(seconds)))
        return result

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the handle completes (at once if it has)."""
        if self._result is None:
            with _EVENT_LOCK:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
            if self._result is None:
                return
        # Completed before or while we registered: completion may have missed us.
        callback()

    def succeed(self) -> None:
        self._complete(_DELIVERED)

    def fail(self, error: ConnectorError) -> None:
        self._complete(Failure(error))

    def _complete(self, result: Result[None, ConnectorError]) -> None:
        if self._result is not None:
            return
        self._result = result
        event = self._event
        if event is not None:
            event.set()
        callbacks = self._callbacks
        if callbacks is not None:
            for callback in callbacks:
                callback()

    def __repr__(self) -> str:
        state = "pending" if self._result is None else repr(self._result)
        return f"<Delivery {state}>"
