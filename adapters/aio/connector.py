"""The asyncio connector facade: an ``MqttConnector`` whose waits are awaitable.

Rules of this module:
- it owns one ``MqttConnector`` (sidecar thread, bridges, subscriptions) and
  adds no protocol work of its own; ``connector.threaded`` is that same
  connector for code that wants the thread API;
- nothing here blocks the event loop: ``close`` (which flushes and joins the
  sidecar) runs on a worker thread, shielded, so cancelling it does not leave
  the connector half closed;
- before the readers' descriptors close, every asyncio reader leaves the loop.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Generic, Self, TypeVar

from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from taktora_connector.adapters.health import QueueHealthSubscription
from taktora_connector.adapters.mqtt import (
    ConnectorMetrics,
    MqttConnector,
    MqttConnectorOptions,
    MqttRouting,
)
from taktora_connector.adapters.mqtt.connector import DEFAULT_CLOSE_TIMEOUT
from taktora_connector.adapters.timeouts import wait_seconds
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
    ConnectorError,
    ConnectorHealth,
    Down,
)
from taktora_connector.ports import PayloadCodec

from .channels import AsyncReader, AsyncWriter
from .health import AsyncHealthEvents
from .wakeups import threadsafe_caller

T = TypeVar("T")


class AsyncMqttConnector(Generic[T]):
    """The reference MQTT connector for asyncio code.

    ``async with AsyncMqttConnector(options) as connector:`` starts it and
    closes it (flushing) on exit.
    """

    #: As the thread API's (``MqttConnector.capabilities``): shared subscriptions.
    capabilities: frozenset[str] = frozenset({"shared-subscriptions"})

    def __init__(
        self,
        options: MqttConnectorOptions | None = None,
        codec: PayloadCodec[T] | None = None,
    ) -> None:
        self._connector: MqttConnector[T] = MqttConnector(options, codec)
        self._readers: list[AsyncReader[T]] = []
        self._writers: list[AsyncWriter[T]] = []
        # Made with the first writer: wakes writers waiting for room when health turns Down.
        self._watch: QueueHealthSubscription | None = None

    @property
    def threaded(self) -> MqttConnector[T]:
        """The same connector with the thread API."""
        return self._connector

    @property
    def name(self) -> str:
        return self._connector.name

    @property
    def options(self) -> MqttConnectorOptions:
        return self._connector.options

    @property
    def last_error(self) -> str | None:
        return self._connector.last_error

    def metrics(self) -> ConnectorMetrics:
        """The same snapshot as the thread API's ``metrics()`` (cheap, never blocks)."""
        return self._connector.metrics()

    @property
    def server(self) -> str | None:
        """The server connected to now (``mqtt[s]://host:port``), else None."""
        return self._connector.server

    def health(self) -> ConnectorHealth:
        return self._connector.health()

    def health_events(self) -> AsyncHealthEvents:
        """Every health event from now on: ``async for event in connector.health_events()``."""
        return AsyncHealthEvents(self._connector.subscribe_health())

    async def start(self) -> Result[None, ConnectorError]:
        """Start the sidecar and connect (returns at once; health tells when it is ``Up``)."""
        return self._connector.start()

    async def create_writer(
        self, descriptor: ChannelDescriptor[MqttRouting]
    ) -> Result[AsyncWriter[T], ConnectorError]:
        created = self._connector.create_writer(descriptor)
        if not is_successful(created):
            return Failure(created.failure())
        writer = AsyncWriter(created.unwrap(), self._connector.health)
        if self._watch is None:
            self._watch = self._connector.subscribe_health()
            self._watch.on_push = threadsafe_caller(asyncio.get_running_loop(), self._health_moved)
        self._writers = [w for w in self._writers if not w.closed]
        self._writers.append(writer)
        return Success(writer)

    def _health_moved(self) -> None:
        watch = self._watch
        if watch is None:
            return
        while watch.try_next() is not None:
            pass
        if isinstance(self._connector.health(), Down):
            for writer in self._writers:
                writer.wake_waiters()

    async def create_reader(
        self, descriptor: ChannelDescriptor[MqttRouting]
    ) -> Result[AsyncReader[T], ConnectorError]:
        created = self._connector.create_reader(descriptor)
        if not is_successful(created):
            return Failure(created.failure())
        reader = AsyncReader(created.unwrap(), asyncio.get_running_loop())
        self._readers = [r for r in self._readers if not r.closed]
        self._readers.append(reader)
        return Success(reader)

    async def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> Result[None, ConnectorError]:
        """Flush what was accepted (up to ``timeout`` s), disconnect, stop the sidecar.

        As the thread API's ``close``: idempotent; ``Failure(ConnectorTimeout)`` when
        messages were still undelivered at the deadline (``math.inf``: no deadline); a bad
        timeout is a ``Failure(ConfigurationError)`` and closes nothing."""
        checked = wait_seconds(timeout, "close timeout")
        if isinstance(checked, ConfigurationError):
            return Failure(checked)
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.detach()
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        closing = asyncio.ensure_future(asyncio.to_thread(self._connector.close, timeout))
        return await asyncio.shield(closing)

    async def __aenter__(self) -> Self:
        started = await self.start()
        if not is_successful(started):
            raise started.failure()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncMqttConnector of {self._connector!r}>"
