"""Thread-safe health state with fan-out to independent subscriptions.

Rules of this module:
- the domain's table decides legality; this module only holds the current state,
  applies legal steps under one lock and queues each event to every live
  subscription, in the order the steps were taken;
- a subscription sees only events after it was created; none are replayed,
  except that one taken after ``close_all`` gets the last event (the final
  state) and then ends;
- a subscription holds at most ``MAX_QUEUED_EVENTS`` unread events: beyond
  that the oldest are dropped and counted (``missed``), so a subscriber that
  never reads costs bounded memory and still finds the latest state;
- waits accept any timeout: ``math.inf`` or huge is no deadline, NaN or a
  negative is no wait at all;
- an illegal step raises ``IllegalTransition`` and changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Self

from taktora_connector.domain import ConnectorHealth, HealthEvent, HealthKind, transition

from .timeouts import wait_seconds

#: Unread events one subscription keeps; older ones are dropped (and counted).
MAX_QUEUED_EVENTS = 1024


class HealthBroadcaster:
    """Owns one connector's current health and its subscriptions."""

    def __init__(self, initial: ConnectorHealth) -> None:
        self._lock = threading.Lock()
        self._state: ConnectorHealth = initial
        self._subscriptions: list[QueueHealthSubscription] = []
        self._closed = False
        self._last: HealthEvent | None = None
        #: Transitions taken, by the kind of state they went to.
        self.transitions: dict[HealthKind, int] = {}

    @property
    def state(self) -> ConnectorHealth:
        return self._state

    def subscribe(self) -> QueueHealthSubscription:
        sub = QueueHealthSubscription(self._forget)
        with self._lock:
            if not self._closed:
                self._subscriptions.append(sub)
                return sub
            last = self._last
        if last is not None:  # closed: the final state, then the end
            sub.push(last)
        sub.end()
        return sub

    def move(self, target: ConnectorHealth) -> HealthEvent:
        """Take one legal step to ``target`` and broadcast its event."""
        with self._lock:
            event = transition(self._state, target, time.monotonic_ns())
            self._state = target
            self._last = event
            kind = target.kind
            self.transitions[kind] = self.transitions.get(kind, 0) + 1
            for sub in self._subscriptions:
                sub.push(event)
            return event

    def close_all(self) -> None:
        """End every subscription (after the events already queued)."""
        with self._lock:
            self._closed = True
            subs, self._subscriptions = self._subscriptions, []
        for sub in subs:
            sub.end()

    def _forget(self, sub: QueueHealthSubscription) -> None:
        with self._lock:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)


class QueueHealthSubscription:
    """One independent, unbounded stream of health events (they are rare)."""

    def __init__(self, forget: Callable[[QueueHealthSubscription], None]) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._events: deque[HealthEvent] = deque()
        #: Events dropped because this subscription held ``MAX_QUEUED_EVENTS`` unread.
        self.missed = 0
        self._ended = False
        self._forget = forget
        #: Called after each event and at the end, on the thread that caused them
        #: (how an asyncio stream of this subscription wakes its event loop).
        self.on_push: Callable[[], None] | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def push(self, event: HealthEvent) -> None:
        with self._cond:
            if not self._ended:
                if len(self._events) >= MAX_QUEUED_EVENTS:
                    self._events.popleft()
                    self.missed += 1
                self._events.append(event)
                self._cond.notify_all()
        on_push = self.on_push
        if on_push is not None:
            on_push()

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        on_push = self.on_push
        if on_push is not None:
            on_push()

    def try_next(self) -> HealthEvent | None:
        with self._cond:
            return self._events.popleft() if self._events else None

    def next(self, timeout: float | None = None) -> HealthEvent | None:
        seconds = wait_seconds(timeout)
        if not isinstance(seconds, float | None):
            seconds = 0.0  # NaN or negative: do not wait
        with self._cond:
            self._cond.wait_for(lambda: self._events or self._ended, seconds)
            return self._events.popleft() if self._events else None

    def __iter__(self) -> Iterator[HealthEvent]:
        while True:
            event = self.next()
            if event is None:
                return
            yield event

    def close(self) -> None:
        self._forget(self)
        self.end()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
