"""Deliberately faulty connectors: each breaks one requirement, so the kit must fail it.

Each factory has the kit's factory signature ``(options, codec) -> Connector``.
They wrap or adjust the reference connector; ``BROKEN`` says which requirement
each one breaks. Tests may use adapter internals here; the kit may not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import socket
import threading
import time
from typing import Any

from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
    ConnectorDown,
    ConnectorError,
    ConnectorTimeout,
    Degraded,
    HealthEvent,
    HealthKind,
    RecvEnvelope,
    SendOutcome,
    StackError,
    Up,
)
from taktora_connector.ports import PayloadCodec


class Wrapper:
    """Delegates the Connector port to a reference connector."""

    def __init__(self, inner: MqttConnector[Any]) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    def health(self) -> Any:
        return self.inner.health()

    def subscribe_health(self) -> Any:
        return self.inner.subscribe_health()

    def start(self) -> Result[None, ConnectorError]:
        return self.inner.start()

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor)

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor)

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        return self.inner.close(timeout)

    def __enter__(self) -> Wrapper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChannelWrapper:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __iter__(self) -> Any:
        return iter(self.inner)


# REQ_0250 -------------------------------------------------------------------------------


class LazyWith(Wrapper):
    """``with`` neither starts nor closes the connector (TEST_2505)."""

    def __enter__(self) -> LazyWith:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def lazy_with(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> LazyWith:
    return LazyWith(MqttConnector(options, codec))


class ImmortalWriter(ChannelWrapper):
    def close(self) -> None:
        pass  # the writer goes on accepting


class WriterCloseIgnored(Wrapper):
    """A writer's ``close()`` does nothing (TEST_2506)."""

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(ImmortalWriter)


def writer_close_ignored(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return WriterCloseIgnored(MqttConnector(options, codec))


class Nameless(Wrapper):
    @property
    def name(self) -> str:
        return ""


def nameless(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Nameless:
    return Nameless(MqttConnector(options, codec))


def never_reconnects(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Gives up on the first failed reconnect attempt (TEST_2502, TEST_2503)."""
    return MqttConnector(options.replace(reconnect_attempt_ceiling=0), codec)


class CloseWithoutFlush(Wrapper):
    """close() disconnects at once, whatever waits to be delivered (TEST_2522)."""

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        self.inner.close(0.0)
        return Success(None)


def close_without_flush(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return CloseWithoutFlush(MqttConnector(options, codec))


class _HangingDelivery:
    """A delivery that, once its connector went down, never completes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def _down(self) -> bool:
        if not self.inner.done:
            return False
        result = self.inner.wait(0)
        return not is_successful(result) and isinstance(result.failure(), ConnectorDown)

    @property
    def done(self) -> bool:
        return bool(self.inner.done) and not self._down()

    def wait(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        result: Result[None, ConnectorError] = self.inner.wait(timeout)
        if self._down():
            time.sleep(timeout or 0.0)
            return Failure(ConnectorTimeout("wait", timeout or 0.0))
        return result


class HangingDeliveryWriter(ChannelWrapper):
    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        return result.map(
            lambda o: SendOutcome(
                o.sequence_number, o.timestamp_ns, o.bytes_written, _HangingDelivery(o.delivery)
            )
        )


class PendingForeverAfterClose(Wrapper):
    """What close() could not deliver stays pending for ever (TEST_2523)."""

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(HangingDeliveryWriter)


def pending_forever_after_close(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return PendingForeverAfterClose(MqttConnector(options, codec))


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


def fileno_never_readable(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return FilenoNeverReadable(MqttConnector(options, codec))


# REQ_0251 -------------------------------------------------------------------------------


class QosForgettingReader(ChannelWrapper):
    """Reports every received message as QoS 0, whatever it arrived with."""

    def recv(self, timeout: float | None = None) -> Any:
        return self.inner.recv(timeout).map(self._fix)

    def try_recv(self) -> Any:
        return self.inner.try_recv().map(self._fix)

    @staticmethod
    def _fix(envelope: RecvEnvelope[Any, MqttRouting] | None) -> Any:
        if envelope is None:
            return None
        routing = MqttRouting.delivered(envelope.routing.topic or "", 0, envelope.routing.retained)
        return dataclasses.replace(envelope, routing=routing)


class ForgetsReceivedQos(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(QosForgettingReader)


def forgets_received_qos(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return ForgetsReceivedQos(MqttConnector(options, codec))


# REQ_0252 -------------------------------------------------------------------------------


class _Done:
    done = True

    def wait(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        return Success(None)


class EarlyDeliveryWriter(ChannelWrapper):
    """Reports every send delivered at once, before any PUBACK."""

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        return result.map(
            lambda o: SendOutcome(o.sequence_number, o.timestamp_ns, o.bytes_written, _Done())
        )


class EarlyDelivery(Wrapper):
    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(EarlyDeliveryWriter)


def early_delivery(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return EarlyDelivery(MqttConnector(options, codec))


def no_persistent_session(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Always asks for a clean session, so the broker keeps nothing (TEST_2521)."""
    return MqttConnector(options.replace(clean_session=True), codec)


# REQ_0253 -------------------------------------------------------------------------------


class IgnoresRetained(Wrapper):
    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        routing = dataclasses.replace(descriptor.routing, retained=False)
        return self.inner.create_writer(dataclasses.replace(descriptor, routing=routing))


def ignores_retained(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return IgnoresRetained(MqttConnector(options, codec))


class RetainedBlindReader(ChannelWrapper):
    """Never yields a retained message."""

    def _keep(self, result: Any) -> Any:
        envelope = result.unwrap() if is_successful(result) else None
        if envelope is not None and envelope.routing.retained:
            return Success(None)
        return result

    def recv(self, timeout: float | None = None) -> Any:
        return self._keep(self.inner.recv(timeout))

    def try_recv(self) -> Any:
        return self._keep(self.inner.try_recv())


class SecondRetainedReaderStarved(Wrapper):
    """A later reader of a filter this connector already reads never sees the retained
    message, as a connector that does not re-subscribe would (TEST_2531)."""

    def __init__(self, inner: MqttConnector[Any]) -> None:
        super().__init__(inner)
        self.filters: set[str] = set()

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        filt = descriptor.routing.subscription_filter()
        later = filt in self.filters
        self.filters.add(filt)
        result = self.inner.create_reader(descriptor)
        return result.map(RetainedBlindReader) if later else result


def second_retained_reader_starved(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return SecondRetainedReaderStarved(MqttConnector(options, codec))


# REQ_0254 -------------------------------------------------------------------------------


class ExactOnlyReader(ChannelWrapper):
    """Delivers only messages whose topic equals the reader's filter, as a naive demux would."""

    def _keep(self, result: Any) -> Any:
        envelope = result.unwrap() if is_successful(result) else None
        wanted = self.inner.descriptor.routing.subscription_filter()
        if envelope is not None and envelope.routing.topic != wanted:
            return Success(None)
        return result

    def recv(self, timeout: float | None = None) -> Any:
        return self._keep(self.inner.recv(timeout))

    def try_recv(self) -> Any:
        return self._keep(self.inner.try_recv())


class ExactMatchOnly(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(ExactOnlyReader)


def exact_match_only(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return ExactMatchOnly(MqttConnector(options, codec))


class RefusalSwallowingReader(ChannelWrapper):
    """Turns a failed subscription into silence: recv just times out."""

    def _swallow(self, result: Any) -> Any:
        if not is_successful(result) and isinstance(result.failure(), StackError):
            return Success(None)
        return result

    def recv(self, timeout: float | None = None) -> Any:
        result = self._swallow(self.inner.recv(timeout))
        if is_successful(result) and result.unwrap() is None and timeout:
            time.sleep(timeout)  # as if nothing came
        return result

    def try_recv(self) -> Any:
        return self._swallow(self.inner.try_recv())


class SwallowsRefusedSubscription(Wrapper):
    """A subscription the broker refuses never reaches the reader (TEST_2543)."""

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(RefusalSwallowingReader)


def swallows_refused_subscription(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return SwallowsRefusedSubscription(MqttConnector(options, codec))


# REQ_0255 -------------------------------------------------------------------------------


def drops_credentials(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    return MqttConnector(options.replace(credentials=None), codec)


# REQ_0256 -------------------------------------------------------------------------------


def ignores_tls(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    return MqttConnector(options.replace(tls=None), codec)


# REQ_0257 -------------------------------------------------------------------------------


def speaks_mqtt31(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """MQTT 3.1 instead of 3.1.1 (amqtt refuses it; mosquitto accepts it)."""
    import paho.mqtt.client as paho

    connector: MqttConnector[Any] = MqttConnector(options, codec)
    gateway: Any = connector._gateway  # tests may reach inside; the kit may not
    make = gateway._make_client

    def make_v31() -> Any:
        client = make()
        client._protocol = paho.MQTTv31
        return client

    gateway._make_client = make_v31
    return connector


# REQ_0258 -------------------------------------------------------------------------------


class LeaksThread(Wrapper):
    def start(self) -> Result[None, ConnectorError]:
        threading.Thread(target=time.sleep, args=(30,), name="leaky-worker", daemon=True).start()
        return self.inner.start()


def leaks_thread(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return LeaksThread(MqttConnector(options, codec))


class CallerThreadIoWriter(ChannelWrapper):
    """After each send, writes a PINGREQ to the broker from the caller's thread."""

    def __init__(self, inner: Any, side: SideConnection) -> None:
        super().__init__(inner)
        self.side = side

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        self.side.ping()
        return result


class SideConnection:
    """An MQTT connection of its own, opened and used on whatever thread calls it."""

    PINGREQ = b"\xc0\x00"

    def __init__(self, options: MqttConnectorOptions) -> None:
        self.options = options
        self.sock: socket.socket | None = None

    def ping(self) -> None:
        try:
            self._ping()
        except OSError:  # the broker went away: connect again next time
            self.close()
            self.sock = None

    def _ping(self) -> None:
        if self.sock is None:
            self.sock = socket.create_connection((self.options.host, self.options.port), 5)
            client_id = f"{self.options.client_id}-side".encode()
            variable = b"\x00\x04MQTT\x04\x02\x00\x00"  # level 4, clean session, no keep-alive
            body = variable + len(client_id).to_bytes(2, "big") + client_id
            self.sock.sendall(bytes([0x10, len(body)]) + body)
        self.sock.sendall(self.PINGREQ)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


class IoOnCallerThread(Wrapper):
    def __init__(self, inner: MqttConnector[Any], options: MqttConnectorOptions) -> None:
        super().__init__(inner)
        self.side = SideConnection(options)

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(
            lambda w: CallerThreadIoWriter(w, self.side)
        )

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        self.side.close()
        return self.inner.close(timeout)


def io_on_caller_thread(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return IoOnCallerThread(MqttConnector(options, codec), options)


# REQ_0259 -------------------------------------------------------------------------------


def outbound_off_by_one(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    return MqttConnector(options.replace(outbound_capacity=options.outbound_capacity + 1), codec)


# REQ_0260 -------------------------------------------------------------------------------


class QuietSubscription:
    """Hides backpressure Degraded events (the transition is never broadcast)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def _visible(self, event: Any) -> bool:
        return not (isinstance(event.to, Degraded) and "backpressure" in event.to.reason)

    def try_next(self) -> Any:
        while (event := self.inner.try_next()) is not None:
            if self._visible(event):
                return event
        return None

    def next(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            event = self.inner.next(left)
            if event is None or self._visible(event):
                return event

    def __iter__(self) -> Any:
        return (e for e in self.inner if self._visible(e))

    def close(self) -> None:
        self.inner.close()


class SilentBackpressure(Wrapper):
    def subscribe_health(self) -> Any:
        return QuietSubscription(self.inner.subscribe_health())


def silent_backpressure(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return SilentBackpressure(MqttConnector(options, codec))


# REQ_0261 -------------------------------------------------------------------------------


class DropBlindReader(ChannelWrapper):
    @property
    def dropped(self) -> int:
        return 0


class NeverReportsDrops(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(DropBlindReader)


def never_reports_drops(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return NeverReportsDrops(MqttConnector(options, codec))


# Iterating readers, closed readers (REQ_0250, TEST_2507 and TEST_2508) -----------------


def _poll(reader: Any) -> Any:
    """One short wait on ``reader``: the envelope, or None (after a pause on a Failure)."""
    result = reader.recv(0.05)
    if not is_successful(result):
        time.sleep(0.05)
        return None
    return result.unwrap()


class ClosedFlagWrapper(Wrapper):
    """Knows whether its connector was closed."""

    def __init__(self, inner: MqttConnector[Any]) -> None:
        super().__init__(inner)
        self.closed = False

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        self.closed = True
        return self.inner.close(timeout)


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


def reader_answers_after_connector_close(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return ReaderAnswersAfterConnectorClose(MqttConnector(options, codec))


# Health subscriptions (REQ_0250, TEST_2509) ------------------------------------------


class ImpatientSubscription:
    """``next(timeout)`` never waits: it is ``try_next``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def try_next(self) -> Any:
        return self.inner.try_next()

    def next(self, timeout: float | None = None) -> Any:
        return self.inner.try_next()

    def __iter__(self) -> Any:
        return iter(self.inner)

    def close(self) -> None:
        self.inner.close()


class HealthNextIgnoresTimeout(Wrapper):
    def subscribe_health(self) -> Any:
        return ImpatientSubscription(self.inner.subscribe_health())


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


def closed_health_next_waits(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return ClosedHealthNextWaits(MqttConnector(options, codec))


# Correlation ids over MQTT 3.1.1 (REQ_0257, TEST_2571) -------------------------------

#: What the in-band connector puts before the codec's bytes, then the 32-byte id.
IN_BAND_MARK = b"\x00cid"


class _Framed:
    """Bytes to publish as they are (the in-band codec passes them through)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class InBandCodec:
    """The connector's codec: passes framed bytes through, and takes the frame off
    what it decodes."""

    def __init__(self, inner: PayloadCodec[Any]) -> None:
        self.inner = inner

    @property
    def format_name(self) -> str:
        return self.inner.format_name

    def encode(self, value: Any) -> Result[bytes, Any]:
        if isinstance(value, _Framed):
            return Success(value.data)
        return self.inner.encode(value)

    def decode(self, data: bytes) -> Result[Any, Any]:
        if data.startswith(IN_BAND_MARK):
            data = data[len(IN_BAND_MARK) + 32 :]
        return self.inner.decode(data)


class InBandWriter(ChannelWrapper):
    def __init__(self, inner: Any, codec: PayloadCodec[Any]) -> None:
        super().__init__(inner)
        self.codec = codec

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        if correlation_id is None:
            return self.inner.send(value)
        encoded = self.codec.encode(value)
        if not is_successful(encoded):
            return encoded
        return self.inner.send(_Framed(IN_BAND_MARK + correlation_id + encoded.unwrap()))


class UnframingReader(ChannelWrapper):
    """Envelopes with the frame taken off the payload (the id itself is not kept)."""

    def _fix(self, envelope: RecvEnvelope[Any, MqttRouting] | None) -> Any:
        if envelope is None or not envelope.payload.startswith(IN_BAND_MARK):
            return envelope
        return dataclasses.replace(envelope, payload=envelope.payload[len(IN_BAND_MARK) + 32 :])

    def recv(self, timeout: float | None = None) -> Any:
        return self.inner.recv(timeout).map(self._fix)

    def try_recv(self) -> Any:
        return self.inner.try_recv().map(self._fix)


class CorrelationIdOnTheWire(Wrapper):
    """Carries correlation ids in-band, in front of the payload (TEST_2571): its own
    readers take them off again, but any other MQTT client gets altered payloads."""

    def __init__(self, inner: MqttConnector[Any], codec: PayloadCodec[Any]) -> None:
        super().__init__(inner)
        self.codec = codec

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(lambda w: InBandWriter(w, self.codec))

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(UnframingReader)


def correlation_id_on_the_wire(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return CorrelationIdOnTheWire(MqttConnector(options, InBandCodec(codec)), codec)


class PayloadHashIdReader(ChannelWrapper):
    """Gives every envelope a correlation id made from its payload, not zeros."""

    @staticmethod
    def _fix(envelope: RecvEnvelope[Any, MqttRouting] | None) -> Any:
        if envelope is None:
            return None
        made = hashlib.sha256(envelope.payload).digest()
        return dataclasses.replace(envelope, correlation_id=made)

    def recv(self, timeout: float | None = None) -> Any:
        return self.inner.recv(timeout).map(self._fix)

    def try_recv(self) -> Any:
        return self.inner.try_recv().map(self._fix)


class InventsCorrelationIds(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(PayloadHashIdReader)


def invents_correlation_ids(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return InventsCorrelationIds(MqttConnector(options, codec))


# Closing while Degraded (REQ_0260, TEST_2600) -----------------------------------------


class UpBeforeDownSubscription(ImpatientSubscription):
    """Reports Degraded -> Down as Degraded -> Up, then Up -> Down: as a connector
    that counts the messages close() failed as drained would."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.pending: list[HealthEvent] = []

    def _split(self, event: HealthEvent | None) -> HealthEvent | None:
        if event is None or not (
            event.from_.kind is HealthKind.DEGRADED and event.to.kind is HealthKind.DOWN
        ):
            return event
        self.pending.append(HealthEvent(Up(), event.to, event.at))
        return HealthEvent(event.from_, Up(), event.at)

    def try_next(self) -> Any:
        if self.pending:
            return self.pending.pop(0)
        return self._split(self.inner.try_next())

    def next(self, timeout: float | None = None) -> Any:
        if self.pending:
            return self.pending.pop(0)
        return self._split(self.inner.next(timeout))

    def __iter__(self) -> Any:
        while (event := self.next()) is not None:
            yield event


class CloseGoesThroughUp(Wrapper):
    def subscribe_health(self) -> Any:
        return UpBeforeDownSubscription(self.inner.subscribe_health())


def close_goes_through_up(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return CloseGoesThroughUp(MqttConnector(options, codec))


#: factory name -> the one requirement it breaks
BROKEN: dict[str, str] = {
    "nameless": "REQ_0250",
    "lazy_with": "REQ_0250",
    "writer_close_ignored": "REQ_0250",
    "never_reconnects": "REQ_0250",
    "fileno_never_readable": "REQ_0250",
    "forgets_received_qos": "REQ_0251",
    "early_delivery": "REQ_0252",
    "no_persistent_session": "REQ_0252",
    "close_without_flush": "REQ_0252",
    "pending_forever_after_close": "REQ_0252",
    "ignores_retained": "REQ_0253",
    "second_retained_reader_starved": "REQ_0253",
    "exact_match_only": "REQ_0254",
    "swallows_refused_subscription": "REQ_0254",
    "drops_credentials": "REQ_0255",
    "ignores_tls": "REQ_0256",
    "speaks_mqtt31": "REQ_0257",
    "leaks_thread": "REQ_0258",
    "io_on_caller_thread": "REQ_0258",
    "outbound_off_by_one": "REQ_0259",
    "silent_backpressure": "REQ_0260",
    "never_reports_drops": "REQ_0261",
    "iteration_outlives_reader_close": "REQ_0250",
    "iteration_outlives_connector_close": "REQ_0250",
    "closed_reader_answers_none": "REQ_0250",
    "reader_close_unsubscribes_filter": "REQ_0250",
    "health_next_ignores_timeout": "REQ_0250",
    "health_iteration_never_ends": "REQ_0250",
    "reader_answers_after_connector_close": "REQ_0250",
    "closed_health_next_waits": "REQ_0250",
    "correlation_id_on_the_wire": "REQ_0257",
    "invents_correlation_ids": "REQ_0257",
    "close_goes_through_up": "REQ_0260",
}


# Fair connectors: unusual but correct, so the kit must pass them --------------------


class LoopWakingWriter(ChannelWrapper):
    """Wakes an asyncio loop from the caller's thread on every send, as a connector
    built on an asyncio stack does (``call_soon_threadsafe`` writes a byte to the
    loop's own socket pair: not protocol I/O)."""

    def __init__(self, inner: Any, loop: asyncio.AbstractEventLoop, woken: list[int]) -> None:
        super().__init__(inner)
        self.loop = loop
        self.woken = woken

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        if not self.loop.is_closed():  # after close() the loop is gone, the send refused
            self.loop.call_soon_threadsafe(self.woken.append, 1)
        return result


class WakesAsyncioLoop(Wrapper):
    def __init__(self, inner: MqttConnector[Any]) -> None:
        super().__init__(inner)
        self.loop = asyncio.new_event_loop()
        self.woken: list[int] = []
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="fair-asyncio-loop", daemon=True
        )
        self.thread.start()

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(
            lambda w: LoopWakingWriter(w, self.loop, self.woken)
        )

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        result = self.inner.close(timeout)
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
            self.loop.close()
        return result


def wakes_asyncio_loop(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return WakesAsyncioLoop(MqttConnector(options, codec))


#: faulty factory name -> the scenario (test id) written to catch it
CAUGHT_BY: dict[str, str] = {
    "lazy_with": "TEST_2505",
    "writer_close_ignored": "TEST_2506",
    "never_reconnects": "TEST_2502",
    "close_without_flush": "TEST_2522",
    "pending_forever_after_close": "TEST_2523",
    "fileno_never_readable": "TEST_2504",
    "no_persistent_session": "TEST_2521",
    "second_retained_reader_starved": "TEST_2531",
    "swallows_refused_subscription": "TEST_2543",
    "io_on_caller_thread": "TEST_2580",
    "leaks_thread": "TEST_2582",
    "iteration_outlives_reader_close": "TEST_2507",
    "iteration_outlives_connector_close": "TEST_2508",
    "closed_reader_answers_none": "TEST_2507",
    "reader_close_unsubscribes_filter": "TEST_2507",
    "health_next_ignores_timeout": "TEST_2509",
    "health_iteration_never_ends": "TEST_2509",
    "reader_answers_after_connector_close": "TEST_2508",
    "closed_health_next_waits": "TEST_2509",
    "correlation_id_on_the_wire": "TEST_2571",
    "invents_correlation_ids": "TEST_2571",
    "close_goes_through_up": "TEST_2600",
}

#: faulty factories whose CAUGHT_BY scenario is the only one they fail
CAUGHT_ONLY_BY: frozenset[str] = frozenset(
    {
        "iteration_outlives_reader_close",
        "iteration_outlives_connector_close",
        "closed_reader_answers_none",
        "reader_close_unsubscribes_filter",
        "health_next_ignores_timeout",
        "health_iteration_never_ends",
        "closed_health_next_waits",
        "correlation_id_on_the_wire",
        "invents_correlation_ids",
        "close_goes_through_up",
    }
)

#: fair factory name -> the requirement (selected with -m) it must pass
FAIR: dict[str, str] = {
    "wakes_asyncio_loop": "REQ_0258",
}


# Shared subscriptions (REQ_0254 on a broker that has them; not in BROKEN, whose runs use amqtt)


class IgnoresShareGroup(Wrapper):
    """Subscribes the plain filter: every member gets every message."""

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        routing = descriptor.routing
        plain = MqttRouting(topic=routing.topic, filter=routing.filter, qos=routing.qos)
        return self.inner.create_reader(ChannelDescriptor(descriptor.name, plain))


def ignores_share_group(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return IgnoresShareGroup(MqttConnector(options, codec))


class ShareGroupRefusingReader(ChannelWrapper):
    """Answers every read with the StackError a broker's refusal would bring."""

    def _refused(self) -> Any:
        return Failure(StackError("share groups are not supported by this connector"))

    def recv(self, timeout: float | None = None) -> Any:
        return self._refused()

    def try_recv(self) -> Any:
        return self._refused()


class RefusesShareGroupsItself(Wrapper):
    """Fails shared readers on its own, with no refusal from the broker: the kit must
    not take that for a broker without shared subscriptions (NOT RUN), it FAILs."""

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        result = self.inner.create_reader(descriptor)
        if descriptor.routing.share_group is None:
            return result
        return result.map(ShareGroupRefusingReader)


def refuses_share_groups_itself(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return RefusesShareGroupsItself(MqttConnector(options, codec))


# send must never block (checked in every scenario that sends; not in BROKEN: a
# blocking send breaks the scenarios of several requirements at once)


class DeliveryWaitingWriter(ChannelWrapper):
    """Waits up to 1 s for the delivery before returning: a 'synchronous' send."""

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        if is_successful(result):
            result.unwrap().delivery.wait(1.0)
        return result


class SendWaitsForDelivery(Wrapper):
    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(DeliveryWaitingWriter)


def send_waits_for_delivery(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return SendWaitsForDelivery(MqttConnector(options, codec))
