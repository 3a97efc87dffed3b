"""How the sidecar thread wakes an event loop, and how a coroutine waits for it.

Rules of this module:
- nothing polls and nothing sleeps: a coroutine waits on a future that a
  callback resolves; a callback from another thread reaches the loop only
  through ``loop.call_soon_threadsafe``;
- a callback that outlives its loop (the loop closed while the sidecar still
  completes deliveries) does nothing instead of raising on the sidecar;
- resolving a future twice, or one that was cancelled, is harmless, since
  ``Delivery.on_done`` may call a callback twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def resolve(future: asyncio.Future[None]) -> None:
    """Complete ``future`` unless it is done already (cancelled or resolved)."""
    if not future.done():
        future.set_result(None)


def threadsafe_resolver(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]
) -> Callable[[], None]:
    """A callback for any thread that resolves ``future`` on ``loop``."""

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(resolve, future)
        except RuntimeError:  # the loop is closed: nobody is left to wake
            pass

    return wake


def threadsafe_caller(
    loop: asyncio.AbstractEventLoop, function: Callable[[], None]
) -> Callable[[], None]:
    """A callback for any thread that runs ``function`` on ``loop``."""

    def call() -> None:
        try:
            loop.call_soon_threadsafe(function)
        except RuntimeError:  # the loop is closed
            pass

    return call
