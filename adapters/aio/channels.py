"""Asyncio handles over the MQTT connector's writers and readers.

Rules of this module:
- no second protocol engine: every message goes through the same ``MqttWriter``
  and ``MqttReader`` the thread API uses, and the same sidecar;
- a reader waits with ``loop.add_reader(reader.fileno())`` (one registration per
  reader, made only while a coroutine waits, since the descriptor stays readable
  while messages wait, or once the reader failed); room in the outbound bridge
  and a completed delivery wake the loop with ``call_soon_threadsafe`` from the sidecar;
- cancellation safe: a message is taken from a reader, or accepted by a writer,
  in one synchronous call with no ``await`` in between; a cancelled or timed out
  ``recv`` or ``send`` has taken or accepted nothing, a finished one exactly one;
  a reader takes what waits in batches into a buffer of its own (up to ``_BATCH``
  messages beyond its queue's capacity), which the next ``recv`` serves first;
- a persistent session acknowledges as the thread API does: a message taken into the
  buffer is not yet the application's; it is handed over by ``recv`` (or ``async for``)
  and acknowledged when the coroutine comes back for the next one or closes the reader;
- every operation that can fail returns a ``Result``, as in the thread API;
- a reader waits on the loop that awaits it (one loop at a time: a second loop waiting
  while the first does gets ``Failure(ConfigurationError)``); a writer's waits and a
  delivery's use the running loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from taktora_connector.adapters.mqtt import MqttRouting
from taktora_connector.adapters.mqtt.channels import MqttReader, MqttWriter, Ready
from taktora_connector.adapters.mqtt.delivery import Delivery
from taktora_connector.adapters.timeouts import shown, wait_seconds
from taktora_connector.domain import (
    BackPressure,
    ChannelDescriptor,
    ConfigurationError,
    ConnectorDown,
    ConnectorError,
    ConnectorHealth,
    ConnectorTimeout,
    Down,
    RecvEnvelope,
    SendOutcome,
    ok,
)

from .wakeups import resolve, threadsafe_resolver

T = TypeVar("T")

#: How many waiting messages a reader takes from the sidecar's queue at once.
_BATCH = 64


class AsyncDelivery:
    """The delivery handle of one sent message, awaitable.

    ``await delivery`` (or ``await delivery.delivered(timeout)``) returns
    ``Success(None)`` on PUBACK (QoS 1) or once written (QoS 0), or the
    ``Failure`` that ended it. ``done``, ``result`` and the blocking ``wait``
    are those of the thread API's handle.
    """

    __slots__ = ("_delivery",)

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery

    @property
    def done(self) -> bool:
        return self._delivery.done

    @property
    def result(self) -> Result[None, ConnectorError] | None:
        return self._delivery.result

    def wait(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        """Block the calling thread (not for coroutines: await the handle instead)."""
        return self._delivery.wait(timeout)

    async def delivered(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        """Wait until delivered or failed; ``ConnectorTimeout`` after ``timeout`` s."""
        seconds = wait_seconds(timeout)
        if isinstance(seconds, ConfigurationError):
            return Failure(seconds)
        result = self._delivery.result
        if result is not None:
            return result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._delivery.on_done(threadsafe_resolver(loop, future))
        try:
            async with asyncio.timeout(seconds):
                await future
        except TimeoutError:
            return Failure(ConnectorTimeout("delivery wait", shown(seconds)))
        result = self._delivery.result
        assert result is not None  # the future resolves only on completion
        return result

    def __await__(self) -> Generator[Any, None, Result[None, ConnectorError]]:
        return self.delivered().__await__()

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the handle completes (at once if it has; else on the
        connector's sidecar thread, so it must be quick and must not touch the loop)."""
        self._delivery.on_done(callback)

    def __repr__(self) -> str:
        return f"<AsyncDelivery {self._delivery!r}>"


@dataclass(frozen=True, slots=True)
class AsyncSendOutcome:
    """What a successful asyncio ``send`` returns: ``SendOutcome`` with an awaitable delivery."""

    sequence_number: int
    timestamp_ns: int
    bytes_written: int
    delivery: AsyncDelivery


def _outcome(
    result: Result[SendOutcome, ConnectorError],
) -> Result[AsyncSendOutcome, ConnectorError]:
    if not is_successful(result):
        return Failure(result.failure())
    sent = result.unwrap()
    delivery = sent.delivery
    assert isinstance(delivery, Delivery)  # MqttWriter hands out its own handles
    return Success(
        AsyncSendOutcome(
            sent.sequence_number, sent.timestamp_ns, sent.bytes_written, AsyncDelivery(delivery)
        )
    )


class AsyncWriter(Generic[T]):
    """Publishes the values of one channel; ``send`` waits for room, ``send_nowait`` does not.

    A connector that is ``Down`` (it gave up connecting) drains nothing until it is
    started again, so ``send`` does not wait for room then: ``Failure(ConnectorDown)``.
    """

    def __init__(
        self, writer: MqttWriter[T], health: Callable[[], ConnectorHealth] | None = None
    ) -> None:
        self._writer = writer
        self._health = health
        self._last: Delivery | None = None
        self._waiting: set[asyncio.Future[None]] = set()

    @property
    def descriptor(self) -> ChannelDescriptor[MqttRouting]:
        return self._writer.descriptor

    @property
    def closed(self) -> bool:
        return self._writer.closed

    def send_nowait(
        self, value: T, *, correlation_id: bytes | None = None
    ) -> Result[AsyncSendOutcome, ConnectorError]:
        """Accept ``value`` or refuse it at once (``BackPressure`` when the bridge is full)."""
        result = self._writer.send(value, correlation_id=correlation_id)
        if is_successful(result):
            delivery = result.unwrap().delivery
            assert isinstance(delivery, Delivery)
            self._last = delivery
        return _outcome(result)

    async def send(
        self, value: T, *, timeout: float | None = None, correlation_id: bytes | None = None
    ) -> Result[AsyncSendOutcome, ConnectorError]:
        """Accept ``value``, waiting up to ``timeout`` s (None: as long as it takes) for
        room in the outbound bridge; ``Failure(ConnectorTimeout)`` if none came, and
        then nothing was accepted. Every other failure comes back at once."""
        seconds = wait_seconds(timeout)
        if isinstance(seconds, ConfigurationError):
            return Failure(seconds)
        result = self.send_nowait(value, correlation_id=correlation_id)
        if not _is_full(result):
            return result
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                while True:
                    down = self._down()
                    if down is not None:
                        return Failure(down)
                    future: asyncio.Future[None] = loop.create_future()
                    if self._writer.when_room(threadsafe_resolver(loop, future)):
                        self._waiting.add(future)
                        try:
                            await future
                        finally:
                            self._waiting.discard(future)
                    result = self.send_nowait(value, correlation_id=correlation_id)
                    if not _is_full(result):
                        return result
        except TimeoutError:
            return Failure(
                ConnectorTimeout("send (waiting for room in the outbound bridge)", shown(seconds))
            )

    def wake_waiters(self) -> None:
        """Loop side: make every ``send`` waiting for room look again (the connector
        calls this when it turns ``Down``)."""
        for future in list(self._waiting):
            resolve(future)

    def _down(self) -> ConnectorDown | None:
        health = self._health() if self._health is not None else None
        if isinstance(health, Down):
            return ConnectorDown(
                f"connector is down ({health.reason}); nothing drains the outbound bridge "
                "until it is started again"
            )
        return None

    async def flush(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        """Wait until every message this writer accepted is delivered or failed
        (they complete in order: the last one's result)."""
        seconds = wait_seconds(timeout)
        if isinstance(seconds, ConfigurationError):
            return Failure(seconds)
        last = self._last
        if last is None:
            return Success(None)
        result = await AsyncDelivery(last).delivered(seconds)
        if not last.done:
            return Failure(ConnectorTimeout("flush", shown(seconds)))
        return result

    def close(self) -> None:
        """Stop accepting messages; those already accepted still go out."""
        self._writer.close()

    def __repr__(self) -> str:
        return f"<AsyncWriter of {self._writer!r}>"


def _is_full(result: Result[AsyncSendOutcome, ConnectorError]) -> bool:
    return not is_successful(result) and isinstance(result.failure(), BackPressure)


class AsyncReader(Generic[T]):
    """Receives the values of one channel: ``await recv(timeout)`` or ``async for``."""

    def __init__(self, reader: MqttReader[T], loop: asyncio.AbstractEventLoop) -> None:
        self._reader = reader
        self._loop = loop
        self._fd = reader.fileno()
        self._waiters: list[asyncio.Future[None]] = []
        self._registered = False
        self._detached = False
        self._acking = reader.acknowledges_when_done  # else nothing to hold or release
        # Taken from the reader in one batch and not yet handed out; it belongs to the
        # reader, not to a coroutine, so a cancelled recv leaves it for the next one.
        # Each with its acknowledgement, handed to the reader as the message is handed out.
        self._ready: deque[Ready[T]] = deque()

    @property
    def descriptor(self) -> ChannelDescriptor[MqttRouting]:
        return self._reader.descriptor

    @property
    def dropped(self) -> int:
        return self._reader.dropped

    @property
    def decode_failures(self) -> int:
        return self._reader.decode_failures

    @property
    def closed(self) -> bool:
        return self._detached or self._reader.closed

    def try_recv(self) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        """The next waiting envelope, or ``None`` at once."""
        if self._detached:
            return Failure(self._closed_error())
        reader = self._reader
        if self._acking:
            # The caller is back: done with what it took before. The thread reader keeps
            # the books of what was handed out (one owner for both interfaces).
            reader.release_taken()
        ready = self._ready
        if not ready:
            ready.extend(reader.take_ready(_BATCH))
            if not ready:
                return reader.try_recv()  # nothing waits: None, or why not
        taken, token = ready.popleft()
        reader.ahead = len(ready)  # for metrics(): queued, not yet consumed
        if token is not None:
            reader.hold_taken(token)
        if isinstance(taken, RecvEnvelope):
            return ok(taken)
        reader.errors_handed += 1  # handed out in a message's place: not consumed
        return Failure(taken)

    async def recv(
        self, timeout: float | None = None
    ) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        """The next envelope, waiting up to ``timeout`` s (``Success(None)`` on timeout)."""
        seconds = wait_seconds(timeout)
        if isinstance(seconds, ConfigurationError):
            return Failure(seconds)
        result = self.try_recv()
        if not is_successful(result) or result.unwrap() is not None:
            return result
        if seconds is None:
            return await self._next()
        try:
            async with asyncio.timeout(seconds):
                return await self._next()
        except TimeoutError:
            return Success(None)

    async def _next(self) -> Result[RecvEnvelope[T, MqttRouting], ConnectorError]:
        """Wait for the next envelope or failure (the caller bounds the time)."""
        while True:
            elsewhere = self._follow_running_loop()
            if elsewhere is not None:
                return Failure(elsewhere)
            await self._readable()
            result = self.try_recv()
            if not is_successful(result):
                return Failure(result.failure())
            envelope = result.unwrap()
            if envelope is not None:
                return ok(envelope)

    def __aiter__(self) -> AsyncReader[T]:
        return self

    async def __anext__(self) -> RecvEnvelope[T, MqttRouting]:
        """The next envelope; ends when the reader or its connector closes. A payload
        that does not decode raises its ``CodecError`` (the reader stays usable)."""
        result = self.try_recv()
        if is_successful(result):
            envelope = result.unwrap()
            if envelope is not None:
                return envelope
            waited = await self._next()
            if is_successful(waited):
                return waited.unwrap()
            error = waited.failure()
        else:
            error = result.failure()
        if isinstance(error, ConnectorDown):
            raise StopAsyncIteration
        raise error

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Close the reader; coroutines waiting in ``recv`` get ``Failure(ConnectorDown)``.
        Like the thread API's ``close``, what was taken and not handed out is discarded."""
        self._reader.release([token for _, token in self._ready if token is not None])
        self.detach()
        self._reader.close()

    def detach(self) -> None:
        """Leave the event loop (before the descriptor closes): waiters wake and see
        the reader closed. The connector calls this before it closes its readers."""
        if self._detached:
            return
        self._detached = True
        self._ready.clear()  # as closing a reader discards what waits in its queue
        self._reader.discard_ahead()
        self._unregister()
        self._wake_all()

    def _follow_running_loop(self) -> ConfigurationError | None:
        """Wait on the loop that awaits now (a reader made under one ``asyncio.run`` may be
        read under the next); refused while a coroutine of another loop waits on it."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return None
        if self._waiters:
            return ConfigurationError(
                "this reader is being waited on by another event loop; wait on a reader "
                "from one loop at a time"
            )
        self._unregister()
        self._loop = loop
        return None

    async def _readable(self) -> None:
        """Wait until the reader's descriptor is readable, an error came, or it closed."""
        if self._detached:
            return
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(future)
        if not self._registered:
            self._loop.add_reader(self._fd, self._wake_all)
            self._registered = True
        try:
            await future
        finally:
            if future in self._waiters:  # cancelled or timed out
                self._waiters.remove(future)
                if not self._waiters:
                    self._unregister()

    def _wake_all(self) -> None:
        self._unregister()  # level-triggered: re-armed by the next waiter only
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            resolve(future)

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            self._loop.remove_reader(self._fd)

    def _closed_error(self) -> ConnectorDown:
        return ConnectorDown(f"reader {self.descriptor.name!r} is closed")

    def __repr__(self) -> str:
        return f"<AsyncReader of {self._reader!r}>"
