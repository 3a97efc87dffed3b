"""The health subscription port: an independent stream of later health events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from taktora_connector.domain import HealthEvent


class HealthSubscription(Protocol):
    """Sees every health event after it was created, in order, none replayed.

    Iteration ends once the subscription (or its connector) is closed and the
    events queued before that were consumed.
    """

    def try_next(self) -> HealthEvent | None:
        """The next queued event, or ``None`` at once."""
        ...

    def next(self, timeout: float | None = None) -> HealthEvent | None:
        """The next event, waiting up to ``timeout`` s; ``None`` on timeout or when closed."""
        ...

    def __iter__(self) -> Iterator[HealthEvent]: ...

    def close(self) -> None: ...
