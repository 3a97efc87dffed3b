"""A ChannelWriter and a ChannelReader for a connector of your own, over the bounded
bridges (``taktora_connector.adapters.toolkit``).

Rules of this module:
- no I/O and no MQTT library: the connector's own I/O thread takes what a
  ``BridgeWriter`` offered from the ``OutboundBridge`` and completes its
  ``Delivery``; it hands what arrived to ``QueueReader.deliver``;
- the send rules are ``encode_payload``'s; a full bridge is ``BackPressure`` and
  trips the health controller's outbound latch (REQ_0260);
- a full reader queue drops the newest message, counts it (``dropped``) and tells the
  controller, which turns health ``Degraded`` once at the threshold and re-arms when
  the queue has drained (REQ_0261);
- a codec that raises or answers out of its contract is a ``CodecError``, never an
  exception out of ``recv``;
- every wait takes any timeout (``wait_seconds``); a reader's iteration ends once it
  is closed; ``fileno()`` is readable exactly while a message (or a failure) waits.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from returns.result import Failure, Result, Success

from taktora_connector.adapters.mqtt.bridge import InboundQueue, Offer, OutboundBridge
from taktora_connector.adapters.mqtt.delivery import Delivery
from taktora_connector.adapters.mqtt.health_control import HealthController
from taktora_connector.adapters.mqtt.records import Outbound, new
from taktora_connector.adapters.mqtt.routing import MqttRouting
from taktora_connector.adapters.timeouts import shown, wait_seconds
from taktora_connector.domain import (
    SENT,
    ZERO_CORRELATION_ID,
    BackPressure,
    ChannelDescriptor,
    CodecError,
    ConfigurationError,
    ConnectorDown,
    ConnectorError,
    ConnectorTimeout,
    RecvEnvelope,
    SendOutcome,
    ok,
    send_outcome,
)
from taktora_connector.ports import PayloadCodec

from .payloads import codec_broke, encode_payload, payload_limit

T = TypeVar("T")


#: One accepted message on its way out (``topic``, ``payload``, ``qos``, ``retain``,
#: ``delivery``): what the I/O thread publishes, and the handle it completes
#: (``delivery.succeed()`` or ``delivery.fail(error)``). A ``NamedTuple``.
Outgoing = Outbound


class BridgeWriter(Generic[T]):
    """The ``ChannelWriter`` port for one channel, over an ``OutboundBridge`` of
    ``Outgoing`` messages (deliveries must complete in the order they were accepted,
    as MQTT's PUBACKs come, for ``flush``)."""

    def __init__(
        self,
        descriptor: ChannelDescriptor[MqttRouting],
        codec: PayloadCodec[T],
        bridge: OutboundBridge[Outgoing],
        controller: HealthController,
    ) -> None:
        routing = descriptor.routing
        if routing.topic is None:
            raise ConfigurationError("a writer needs a topic; a filter is only for reading")
        self._descriptor, self._codec = descriptor, codec
        self._bridge, self._controller = bridge, controller
        self._topic, self._qos, self._retain = routing.topic, int(routing.qos), routing.retained
        self._limit = payload_limit(descriptor.max_payload_size, self._topic, self._qos)
        self._lock = threading.Lock()
        self._sequence = 0
        self._last: Delivery | None = None
        self._closed = False

    @property
    def descriptor(self) -> ChannelDescriptor[MqttRouting]:
        return self._descriptor

    def send(
        self, value: T, *, correlation_id: bytes | None = None
    ) -> Result[SendOutcome, ConnectorError]:
        if self._closed:
            return Failure(ConnectorDown(f"writer {self._descriptor.name!r} is closed"))
        payload = encode_payload(self._codec, value, correlation_id, self._limit)
        if not isinstance(payload, bytes):
            return Failure(payload)
        size = len(payload)
        delivery = Delivery()
        with self._lock:  # a refused send takes no sequence number
            offered = self._bridge.offer(
                new(Outbound, (self._topic, payload, self._qos, self._retain, delivery))
            )
            if offered is Offer.ACCEPTED:
                sequence = self._sequence
                self._sequence = sequence + 1
                self._last = delivery
        if offered is Offer.FULL:
            self._controller.trip_outbound()
            return Failure(BackPressure(self._bridge.capacity))
        if offered is Offer.CLOSED:
            return Failure(ConnectorDown(self._bridge.closed_reason))
        return ok(send_outcome(sequence, time.time_ns(), size, delivery))

    def flush(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        """Wait until every accepted message is delivered or failed: the last one's
        delivery, since they complete in the order they were accepted. The result is
        the last one's."""
        limit = wait_seconds(timeout, "flush timeout")
        if isinstance(limit, ConfigurationError):
            return Failure(limit)
        last = self._last
        if last is None:
            return Success(None)
        result = last.wait(limit)
        return result if last.done else Failure(ConnectorTimeout("flush", shown(limit)))

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Refuse every later send (``ConnectorDown``); what was accepted still goes."""
        self._closed = True


class QueueReader(Generic[T]):
    """The ``ChannelReader`` port for one channel, over its own ``InboundQueue``."""

    def __init__(
        self,
        descriptor: ChannelDescriptor[MqttRouting],
        codec: PayloadCodec[T],
        capacity: int,
        controller: HealthController,
        on_close: Callable[[QueueReader[T]], None] = lambda reader: None,
    ) -> None:
        self._descriptor, self._codec, self._controller = descriptor, codec, controller
        self._queue: InboundQueue[tuple[str, bytes, int, bool, int]] = InboundQueue(
            capacity, lambda: controller.inbound_drained(self)
        )
        self._on_close = on_close
        self._sequence = itertools.count()
        self._error: ConnectorError | None = None

    @property
    def descriptor(self) -> ChannelDescriptor[MqttRouting]:
        return self._descriptor

    @property
    def dropped(self) -> int:
        """Messages this reader dropped for a full queue."""
        return self._queue.dropped

    @property
    def taken(self) -> int:
        """Messages the application took from this reader."""
        return self._queue.taken

    def deliver(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """(The I/O thread) a message for this reader; dropped and counted when full."""
        if self._queue.offer((topic, payload, qos, retain, time.time_ns())) is not SENT:
            self._controller.inbound_dropped(self)
            if self._queue.drained_since_overflow():  # emptied before the drop was counted
                self._controller.inbound_drained(self)

    def fail(self, error: ConnectorError) -> None:
        """The reader failed for good (a refused subscription): what waits is still
        handed out, then every receive answers ``error`` (the first one, if failed twice)."""
        if self._error is None:
            self._error = error
        self._queue.fail()

    def try_recv(self) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        return self._receive(0)

    def recv(
        self, timeout: float | None = None
    ) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        limit = wait_seconds(timeout, "recv timeout")
        return Failure(limit) if isinstance(limit, ConfigurationError) else self._receive(limit)

    def _receive(
        self, timeout: float | None
    ) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        item = self._queue.take(timeout)
        if item is None:
            if self._error is not None:
                return Failure(self._error)
            if self._queue.closed:
                return Failure(ConnectorDown(f"reader {self._descriptor.name!r} is closed"))
            return Success(None)
        topic, payload, qos, retain, stamp = item
        try:
            decoded: Any = self._codec.decode(payload)  # a Result, checked: a codec may break that
        except Exception as err:
            return Failure(codec_broke(self._codec, f"decode raised {err!r}", payload))
        if not isinstance(decoded, Success):
            failure: Any = decoded.failure() if isinstance(decoded, Failure) else None
            if isinstance(failure, CodecError):
                return Failure(CodecError(failure.format, failure.cause, payload))
            return Failure(codec_broke(self._codec, f"decode returned {decoded!r}", payload))
        routing = MqttRouting.delivered(topic, qos, retain)
        return Success(
            RecvEnvelope(
                decoded.unwrap(), payload, next(self._sequence), stamp, ZERO_CORRELATION_ID, routing
            )
        )

    def __iter__(self) -> Iterator[RecvEnvelope[T, MqttRouting]]:
        """Every message, waiting for each; ends once the reader is closed."""
        while True:
            result = self._receive(None)
            if isinstance(result, Failure):
                if isinstance(result.failure(), ConnectorDown):
                    return
                raise result.failure()
            envelope = result.unwrap()
            if envelope is not None:
                yield envelope

    def fileno(self) -> int:
        return self._queue.fileno()

    @property
    def closed(self) -> bool:
        return self._queue.closed

    def close(self) -> None:
        """Discard what waits; iteration and waits end."""
        if not self._queue.closed:
            self._queue.close()
            self._on_close(self)
            self._controller.inbound_drained(self)
