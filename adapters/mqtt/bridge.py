"""The bounded bridges between application threads and the sidecar (REQ_0259).

Rules of this module:
- both directions are bounded by a capacity from the options; nothing here ever
  blocks the sidecar;
- outbound: ``offer`` refuses when full (the writer turns that into
  ``BackPressure``, REQ_0260); the sidecar ``take``s in batches; a caller that
  wants to wait for room (the asyncio writer) registers a one-shot callback with
  ``when_room``, called on the sidecar once the bridge is at most half full
  (or closed), so a waiting sender wakes once per half a bridge, not per message;
- inbound: one queue per reader; when full the *new* message is dropped and
  counted, and ``offer`` returns ``Dropped(count)`` with the running total
  (REQ_0261); the reader is told when its queue drains after a drop;
- a reader's queue can expose a file descriptor that is readable exactly while
  a message waits; the pipe behind it is only made when asked for;
- items the queue lets go of without handing them out (dropped when full, offered
  once closed, cleared by ``close``) go to its ``on_discard`` hook, if any, outside
  its lock (a persistent session releases their acknowledgements there).
"""

from __future__ import annotations

import _thread
import enum
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from taktora_connector.domain import SENT, Dropped, InboundOutcome

T = TypeVar("T")


class Offer(enum.Enum):
    """What the outbound bridge did with an offered message."""

    ACCEPTED = "accepted"
    FULL = "full"
    CLOSED = "closed"


class OutboundBridge(Generic[T]):
    """Application threads -> sidecar, bounded by ``capacity``.

    Once closed it accepts nothing, so no message can be accepted after the
    sidecar took its last look (accepted-then-lost is impossible).
    """

    def __init__(self, capacity: int, wake: Callable[[], None]) -> None:
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._wake = wake
        self._closed = False
        #: What a refused offer tells the writer once closed.
        self.closed_reason = "connector is closed"
        self._low = capacity // 2
        self._room_waiters: list[Callable[[], None]] = []

    def offer(self, item: T) -> Offer:
        """Queue ``item`` unless the bridge is full or closed; never blocks."""
        with self._lock:
            if self._closed:
                return Offer.CLOSED
            if len(self._items) >= self.capacity:
                return Offer.FULL
            self._items.append(item)
        self._wake()
        return Offer.ACCEPTED

    def peek(self) -> T | None:
        items = self._items
        return items[0] if items else None

    def pop(self) -> T:
        with self._lock:
            item = self._items.popleft()
            if not self._room_waiters or len(self._items) > self._low:
                return item
            waiters, self._room_waiters = self._room_waiters, []
        for callback in waiters:
            callback()
        return item

    def take(self, limit: int, admit: Callable[[T], bool]) -> list[T]:
        """Remove and return up to ``limit`` items, oldest first, under one lock,
        stopping at the first one ``admit`` refuses (it stays queued)."""
        taken: list[T] = []
        with self._lock:
            items = self._items
            while items and len(taken) < limit and admit(items[0]):
                taken.append(items.popleft())
            if not self._room_waiters or len(items) > self._low:
                return taken
            waiters, self._room_waiters = self._room_waiters, []
        for callback in waiters:
            callback()
        return taken

    def when_room(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` once (from the sidecar) when the bridge is at most half
        full or closed; ``False``, and no call, when that is already so."""
        with self._lock:
            if self._closed or len(self._items) <= self._low:
                return False
            self._room_waiters.append(callback)
            return True

    def close(self) -> list[T]:
        """Accept nothing more; remove and return everything still queued."""
        with self._lock:
            self._closed = True
            items = list(self._items)
            self._items.clear()
            waiters, self._room_waiters = self._room_waiters, []
        for callback in waiters:
            callback()
        return items

    def __len__(self) -> int:
        return len(self._items)


class InboundQueue(Generic[T]):
    """Sidecar -> one reader, bounded by ``capacity``; drops the newest when full.

    Waiting readers park on a lock of their own that ``offer`` releases: the
    same idea as ``threading.Condition``, without its per-notify bookkeeping,
    since a reader that keeps up is woken for nearly every message.
    """

    def __init__(
        self,
        capacity: int,
        on_drained: Callable[[], None],
        on_discard: Callable[[list[T]], None] | None = None,
    ) -> None:
        self.capacity = capacity
        self._on_discard = on_discard
        self.dropped = 0
        #: Items handed out by ``take`` and ``take_many`` (those put back not counted).
        self.taken = 0
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._waiters: deque[_thread.LockType] = deque()
        self._closed = False
        self._kicks = 0  # bumped by interrupt(): waiters return to look at the reader's error
        self._overflowed = False
        self._failed = False  # set by fail(): waiters return at once, the descriptor stays readable
        self._on_drained = on_drained
        self._pipe: tuple[int, int] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, item: T) -> InboundOutcome:
        """Queue one item: ``SENT``, or ``Dropped`` with the running total."""
        return Dropped(self.dropped) if self.offer_many([item]) else SENT

    def offer_many(self, batch: list[T]) -> int:
        """Queue ``batch`` in order under one lock; return how many were dropped (the
        newest ones, beyond the capacity)."""
        discarded: list[T] | None = None
        with self._lock:
            if self._closed:
                discarded = batch
                dropped = 0  # the reader is gone; nobody is left to count this for
            else:
                dropped = self._queue_batch(batch)
                if dropped and self._on_discard is not None:
                    discarded = batch[len(batch) - dropped :]
        if discarded and self._on_discard is not None:
            self._on_discard(discarded)
        return dropped

    def _queue_batch(self, batch: list[T]) -> int:
        """``offer_many`` with the lock held, the queue open: how many were dropped."""
        items = self._items
        was_empty = not items
        room = self.capacity - len(items)
        if room >= len(batch):
            items.extend(batch)
            dropped = 0
        else:
            room = max(room, 0)
            if room:
                items.extend(batch[:room])
            dropped = len(batch) - room
            self.dropped += dropped
            self._overflowed = True
        if items:
            if was_empty and self._pipe is not None:
                os.write(self._pipe[1], b"\x01")
            waiters = self._waiters
            for _ in range(min(len(waiters), len(items))):
                waiters.popleft().release()
        return dropped

    def take(self, timeout: float | None) -> T | None:
        """The oldest item; wait up to ``timeout`` (0: not at all, None: forever).

        Returns ``None`` on timeout, when interrupted, or once closed with nothing left.
        """
        lock = self._lock
        lock.acquire()
        try:
            items = self._items
            if not items and timeout != 0:
                self._wait_for_item(timeout)
            if not items:
                return None
            item = items.popleft()
            self.taken += 1
            drained = not items and self._emptied()
        finally:
            lock.release()
        if drained:
            self._on_drained()
        return item

    def _emptied(self) -> bool:
        """The queue just became empty (lock held): clear the pipe's readable byte;
        True when it had overflowed, so the drop latch may re-arm."""
        if self._pipe is not None:
            os.read(self._pipe[0], 1)
        overflowed = self._overflowed
        self._overflowed = False
        return overflowed

    def after_fork(self) -> None:
        """In a forked child: a lock a parent thread held at the fork would stay held, and
        the messages waiting are the parent's to hand out, not the child's (discarded
        here without ``on_discard``: the child acknowledges nothing)."""
        self._lock = threading.Lock()
        self._waiters.clear()
        self._items.clear()

    def take_many(self, limit: int, timeout: float | None) -> list[T]:
        """Up to ``limit`` of the oldest items under one lock, waiting as ``take`` does
        for the first; an empty list on timeout, interrupt, or once closed and empty."""
        lock = self._lock
        lock.acquire()
        try:
            items = self._items
            if not items and timeout != 0:
                self._wait_for_item(timeout)
            if not items:
                return []
            if len(items) <= limit:
                taken = list(items)
                items.clear()
            else:
                taken = [items.popleft() for _ in range(limit)]
            self.taken += len(taken)
            drained = not items and self._emptied()
        finally:
            lock.release()
        if drained:
            self._on_drained()
        return taken

    def drained_since_overflow(self) -> bool:
        """After a drop: whether the queue has emptied since (its drained callback then
        ran, maybe before the drop was recorded elsewhere: the caller calls it again)."""
        with self._lock:
            return not self._overflowed

    def untake(self, count: int) -> None:
        """``count`` items taken were discarded by their taker without being handed out
        (not counted in ``taken``)."""
        with self._lock:
            self.taken -= count

    def unget(self, batch: list[T]) -> None:
        """Put items taken and not used back at the front, in order (an iteration that
        stopped early). They may take the queue past its capacity by at most the batch.
        Once the queue is closed they are discarded like what waited in it: through
        ``on_discard`` (issue 16 point 8: dropped without it, a persistent session's
        acknowledgements of them were never released, and every later PUBACK on the
        connection stalled behind them)."""
        if not batch:
            return
        with self._lock:
            self.taken -= len(batch)
            closed = self._closed
            if not closed:
                items = self._items
                if not items and self._pipe is not None:
                    os.write(self._pipe[1], b"\x01")
                items.extendleft(reversed(batch))
                if self._waiters:
                    self._waiters.popleft().release()
        if closed and self._on_discard is not None:
            self._on_discard(batch)

    def _wait_for_item(self, timeout: float | None) -> None:
        """Park until an item comes, the queue closes or fails, an interrupt, or the
        deadline (called and returning with the lock held)."""
        lock = self._lock
        items = self._items
        kicks = self._kicks
        deadline = None if timeout is None else time.monotonic() + timeout
        while not items and not self._closed and not self._failed and self._kicks == kicks:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            parked = _thread.allocate_lock()
            parked.acquire()
            self._waiters.append(parked)
            lock.release()
            try:
                if left is None:
                    parked.acquire()
                else:
                    parked.acquire(timeout=left)
            finally:
                lock.acquire()
                if parked in self._waiters:  # timed out: nobody released it
                    self._waiters.remove(parked)

    def fail(self) -> None:
        """The reader has failed for good: wake every waiter now and every later one at once,
        and keep the descriptor readable (one byte for the failure, beside the items' byte)."""
        with self._lock:
            if self._failed or self._closed:
                return
            self._failed = True
            if self._pipe is not None:
                os.write(self._pipe[1], b"\x01")
            self._wake_all()

    def interrupt(self) -> None:
        """Wake every waiter without an item (the reader has an error to report)."""
        with self._lock:
            self._kicks += 1
            self._wake_all()

    def _wake_all(self) -> None:
        waiters = self._waiters
        while waiters:
            waiters.popleft().release()

    def __len__(self) -> int:
        return len(self._items)

    def fileno(self) -> int:
        """A descriptor readable exactly while an item waits (made on first use)."""
        with self._lock:
            if self._pipe is None:
                if self._closed:
                    raise ValueError("fileno() of a closed reader")
                read_fd, write_fd = os.pipe()
                os.set_blocking(read_fd, False)
                self._pipe = (read_fd, write_fd)
                if self._items:
                    os.write(write_fd, b"\x01")
                if self._failed:
                    os.write(write_fd, b"\x01")
            return self._pipe[0]

    def close(self) -> None:
        """Discard what waits, wake every waiter, release the descriptor."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            discarded = list(self._items)
            self._items.clear()
            self._wake_all()
            pipe, self._pipe = self._pipe, None
        if discarded and self._on_discard is not None:
            self._on_discard(discarded)
        if pipe is not None:
            os.close(pipe[0])
            os.close(pipe[1])
