"""An asyncio stream of one connector's health events.

Rules of this module:
- it is one ordinary health subscription of the connector (it sees every event
  after it was created, in order, none replayed); the thread that takes a health
  step wakes the loop with ``call_soon_threadsafe``;
- iteration ends once the stream or its connector is closed and the events
  queued before that were consumed.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from taktora_connector.adapters.health import QueueHealthSubscription
from taktora_connector.adapters.timeouts import wait_seconds
from taktora_connector.domain import ConfigurationError, HealthEvent

from .wakeups import threadsafe_caller


class AsyncHealthEvents:
    """``async for event in connector.health_events(): ...``"""

    def __init__(self, subscription: QueueHealthSubscription) -> None:
        self._subscription = subscription
        self._pushed = asyncio.Event()
        subscription.on_push = threadsafe_caller(asyncio.get_running_loop(), self._pushed.set)

    async def next(self, timeout: float | None = None) -> HealthEvent | None:
        """The next event, waiting up to ``timeout`` s (None or math.inf: no deadline);
        ``None`` on timeout or once ended. A bad timeout raises ``ConfigurationError``."""
        seconds = wait_seconds(timeout)
        if isinstance(seconds, ConfigurationError):
            raise seconds
        try:
            async with asyncio.timeout(seconds):
                while True:
                    event = self._subscription.try_next()
                    if event is not None or self._subscription.ended:
                        return event
                    self._pushed.clear()
                    # An event pushed between the look above and the clear is seen here.
                    event = self._subscription.try_next()
                    if event is not None or self._subscription.ended:
                        return event
                    await self._pushed.wait()
        except TimeoutError:
            return None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> HealthEvent:
        event = await self.next()
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self._subscription.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
