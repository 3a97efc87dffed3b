"""REQ_0250, the Connector port: lifecycle, channels, readers and health subscriptions."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Any

from returns.result import Success

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
)
from taktora_connector.ports import PayloadCodec

from .base import ChannelWrapper, ClosedFlagWrapper, ImpatientSubscription, Wrapper, _poll
from .registry import breaks


class LazyWith(Wrapper):
    """``with`` neither starts nor closes the connector (TEST_2505)."""

    def __enter__(self) -> LazyWith:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@breaks("REQ_0250", caught_by="TEST_2505")
def lazy_with(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> LazyWith:
    return LazyWith(MqttConnector(options, codec))


class ImmortalWriter(ChannelWrapper):
    def close(self) -> None:
        pass  # the writer goes on accepting


class WriterCloseIgnored(Wrapper):
    """A writer's ``close()`` does nothing (TEST_2506)."""

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(ImmortalWriter)


@breaks("REQ_0250", caught_by="TEST_2506")
def writer_close_ignored(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return WriterCloseIgnored(MqttConnector(options, codec))


class Nameless(Wrapper):
    @property
    def name(self) -> str:
        return ""


@breaks("REQ_0250", caught_by="TEST_2500")
def nameless(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Nameless:
    return Nameless(MqttConnector(options, codec))


@breaks("REQ_0250", caught_by=("TEST_2502", "TEST_2503", "TEST_2610"))
def never_reconnects(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Gives up on the first failed reconnect attempt (TEST_2502, TEST_2503, TEST_2610)."""
    return MqttConnector(options.replace(reconnect_attempt_ceiling=0), codec)


class DeafFilenoReader(ChannelWrapper):
    """fileno() is a pipe nobody writes to: never readable (TEST_2504)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self._read_end, self._write_end = os.pipe()

    def fileno(self) -> int:
        return self._read_end

    def close(self) -> None:
        self.inner.close()
        for fd in (self._read_end, self._write_end):
            with contextlib.suppress(OSError):
                os.close(fd)


class FilenoNeverReadable(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(DeafFilenoReader)


@breaks("REQ_0250", caught_by="TEST_2504")
def fileno_never_readable(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return FilenoNeverReadable(MqttConnector(options, codec))


class ConnectorBoundIterator(ChannelWrapper):
    """Iterates by polling ``recv`` until the connector closes; a closed reader's
    iteration goes on waiting."""

    def __init__(self, inner: Any, owner: ClosedFlagWrapper) -> None:
        super().__init__(inner)
        self.owner = owner

    def __iter__(self) -> Any:
        while not self.owner.closed:
            envelope = _poll(self.inner)
            if envelope is not None:
                yield envelope


class IterationOutlivesReaderClose(ClosedFlagWrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(lambda r: ConnectorBoundIterator(r, self))


@breaks("REQ_0250", caught_by="TEST_2507")
def iteration_outlives_reader_close(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return IterationOutlivesReaderClose(MqttConnector(options, codec))


class ReaderBoundIterator(ChannelWrapper):
    """Iterates by polling ``recv`` until this reader is closed; closing the connector
    leaves the loop waiting."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.closed = False

    def __iter__(self) -> Any:
        while not self.closed:
            envelope = _poll(self.inner)
            if envelope is not None:
                yield envelope

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class IterationOutlivesConnectorClose(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(ReaderBoundIterator)


@breaks("REQ_0250", caught_by="TEST_2508")
def iteration_outlives_connector_close(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return IterationOutlivesConnectorClose(MqttConnector(options, codec))


class QuietWhenClosedReader(ChannelWrapper):
    """Once closed, ``recv`` and ``try_recv`` say "nothing waits" instead of
    ``ConnectorDown`` (closing the connector still refuses: the inner reader answers)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.closed = False

    def recv(self, timeout: float | None = None) -> Any:
        if self.closed:
            time.sleep(min(timeout or 0.0, 1.0))
            return Success(None)
        return self.inner.recv(timeout)

    def try_recv(self) -> Any:
        return Success(None) if self.closed else self.inner.try_recv()

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class ClosedReaderAnswersNone(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(QuietWhenClosedReader)


@breaks("REQ_0250", caught_by="TEST_2507")
def closed_reader_answers_none(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return ClosedReaderAnswersNone(MqttConnector(options, codec))


class DeafenableReader(ChannelWrapper):
    """Receives nothing more once ``deafen`` was called, as a reader whose filter was
    unsubscribed at the broker would."""

    def __init__(self, inner: Any, owner: ReaderCloseUnsubscribesFilter) -> None:
        super().__init__(inner)
        self.owner = owner
        self.deaf = False

    def recv(self, timeout: float | None = None) -> Any:
        if self.deaf:
            time.sleep(min(timeout or 0.0, 10.0))
            return Success(None)
        return self.inner.recv(timeout)

    def try_recv(self) -> Any:
        return Success(None) if self.deaf else self.inner.try_recv()

    def close(self) -> None:
        self.owner.closing(self)
        self.inner.close()


class ReaderCloseUnsubscribesFilter(Wrapper):
    """Closing a reader unsubscribes its filter though another reader of this
    connector still reads it: that reader goes deaf (TEST_2507)."""

    def __init__(self, inner: MqttConnector[Any]) -> None:
        super().__init__(inner)
        self.readers: list[DeafenableReader] = []

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        def wrap(reader: Any) -> DeafenableReader:
            wrapped = DeafenableReader(reader, self)
            self.readers.append(wrapped)
            return wrapped

        return self.inner.create_reader(descriptor).map(wrap)

    def closing(self, reader: DeafenableReader) -> None:
        gone = reader.descriptor.routing.subscription_filter()
        for other in self.readers:
            if other is not reader and other.descriptor.routing.subscription_filter() == gone:
                other.deaf = True


@breaks("REQ_0250", caught_by="TEST_2507")
def reader_close_unsubscribes_filter(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return ReaderCloseUnsubscribesFilter(MqttConnector(options, codec))


class AnswersAfterConnectorClose(ChannelWrapper):
    """Once its connector was closed, ``recv`` and ``try_recv`` say "nothing waits"
    instead of ``ConnectorDown``."""

    def __init__(self, inner: Any, owner: ClosedFlagWrapper) -> None:
        super().__init__(inner)
        self.owner = owner

    def recv(self, timeout: float | None = None) -> Any:
        if self.owner.closed:
            time.sleep(min(timeout or 0.0, 1.0))
            return Success(None)
        return self.inner.recv(timeout)

    def try_recv(self) -> Any:
        return Success(None) if self.owner.closed else self.inner.try_recv()


class ReaderAnswersAfterConnectorClose(ClosedFlagWrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(
            lambda r: AnswersAfterConnectorClose(r, self)
        )


@breaks("REQ_0250", caught_by=("TEST_2508", "TEST_2500", "TEST_2505"))
def reader_answers_after_connector_close(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return ReaderAnswersAfterConnectorClose(MqttConnector(options, codec))


class HealthNextIgnoresTimeout(Wrapper):
    def subscribe_health(self) -> Any:
        return ImpatientSubscription(self.inner.subscribe_health())


@breaks("REQ_0250", caught_by="TEST_2509")
def health_next_ignores_timeout(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return HealthNextIgnoresTimeout(MqttConnector(options, codec))


class EndlessSubscription(ImpatientSubscription):
    """Iterating polls for events for ever: closing ends nothing."""

    def next(self, timeout: float | None = None) -> Any:
        return self.inner.next(timeout)

    def __iter__(self) -> Any:
        while True:
            event = self.inner.next(0.05)
            if event is None:
                time.sleep(0.05)
            else:
                yield event


class HealthIterationNeverEnds(Wrapper):
    def subscribe_health(self) -> Any:
        return EndlessSubscription(self.inner.subscribe_health())


@breaks("REQ_0250", caught_by="TEST_2509")
def health_iteration_never_ends(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return HealthIterationNeverEnds(MqttConnector(options, codec))


class SlowWhenClosedSubscription(ImpatientSubscription):
    """Once closed, ``next(timeout)`` waits out its whole timeout before its ``None``."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.closed = False

    def next(self, timeout: float | None = None) -> Any:
        if self.closed:
            time.sleep(min(timeout or 0.0, 60.0))
            return None
        return self.inner.next(timeout)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class ClosedHealthNextWaits(Wrapper):
    def subscribe_health(self) -> Any:
        return SlowWhenClosedSubscription(self.inner.subscribe_health())


@breaks("REQ_0250", caught_by="TEST_2509")
def closed_health_next_waits(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return ClosedHealthNextWaits(MqttConnector(options, codec))


@breaks("REQ_0250", caught_by="TEST_2610")
def gives_up_one_attempt_early(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> MqttConnector[Any]:
    """Down after ``reconnect_attempt_ceiling`` failed attempts instead of one more:
    an off-by-one of the ceiling (at ceiling 1, Down after 1 attempt)."""
    ceiling = options.reconnect_attempt_ceiling
    early = dataclasses.replace(
        options, reconnect_attempt_ceiling=None if ceiling is None else max(0, ceiling - 1)
    )
    return MqttConnector(early, codec)
