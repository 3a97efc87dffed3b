"""The MQTT channel handles: a writer publishes, a reader receives.

Rules of this module:
- work that can fail for the caller's input happens on the caller's thread,
  before anything is queued: encoding, the payload limit, the correlation id;
- ``send`` never blocks and never drops: a message is either accepted (and then
  completes its delivery handle, delivered or failed) or refused with a typed
  ``Failure``;
- a writer's sequence numbers are assigned under its lock together with the
  enqueue, so they strictly increase in bridge order and a refused send uses none;
- payloads are decoded on the reader's thread; a payload that does not decode
  is a ``Failure(CodecError)`` carrying the raw bytes, and the reader carries on;
- a persistent session's QoS 1 message is acknowledged once the application is done
  with it: when it next asks this reader for a message (``recv``, ``try_recv``, the
  next step of an iteration) or closes the reader; what it never took stays
  unacknowledged, and the broker sends it again (``inbound_acks``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt.inbound_acks import AckToken, InboundAcks
from taktora_connector.adapters.payloads import codec_broke
from taktora_connector.adapters.queue_channels import BridgeWriter
from taktora_connector.adapters.timeouts import wait_seconds
from taktora_connector.domain import (
    ZERO_CORRELATION_ID,
    ChannelDescriptor,
    CodecError,
    ConfigurationError,
    ConnectorDown,
    ConnectorError,
    PayloadOverflow,
    RecvEnvelope,
    ok,
    recv_envelope,
)
from taktora_connector.ports import PayloadCodec

from .bridge import InboundQueue, OutboundBridge
from .health_control import HealthController
from .records import Inbound, Outbound, Queued, new
from .routing import MqttRouting

T = TypeVar("T")

log = logging.getLogger("taktora_connector.mqtt")

#: How many queued messages an iteration takes at once.
_ITER_BATCH = 64

#: How many distinct received routings a reader keeps for reuse.
_ROUTING_CACHE = 1024

#: How many retained topics a reader remembers to recognise retained copies it had
#: (beyond that, a re-sent retained message may reach it twice).
_RETAINED_MEMORY = 100_000

#: A message as the asyncio reader takes it: the envelope or the error in its place,
#: and the acknowledgement to hand over with it (``hold_taken``).
Ready = tuple[RecvEnvelope[T, MqttRouting] | ConnectorError, AckToken | None]


class MqttWriter(BridgeWriter[T]):
    """Publishes the values of one channel to ``descriptor.routing.topic``: the
    toolkit's ``BridgeWriter`` (send rules, BackPressure, sequence numbers, flush),
    plus the connector's bookkeeping on close and the asyncio writer's wait for room."""

    def __init__(
        self,
        descriptor: ChannelDescriptor[MqttRouting],
        codec: PayloadCodec[T],
        bridge: OutboundBridge[Outbound],
        controller: HealthController,
        on_close: Callable[[MqttWriter[T]], None],
    ) -> None:
        super().__init__(descriptor, codec, bridge, controller)
        self._on_close = on_close

    def when_room(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` once (on the sidecar) when the bridge has room again;
        ``False``, and no call, when it has room now. For callers that wait."""
        return self._bridge.when_room(callback)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MqttWriter {self._descriptor.name!r} topic={self._topic!r} {state}>"


class MqttReader(Generic[T]):
    """Receives the values of one channel from its topic or filter."""

    def __init__(
        self,
        descriptor: ChannelDescriptor[MqttRouting],
        codec: PayloadCodec[T],
        capacity: int,
        controller: HealthController,
        on_close: Callable[[MqttReader[T]], None],
        *,
        acks: InboundAcks | None = None,
    ) -> None:
        self._descriptor = descriptor
        self._codec = codec
        # The built-in bytes codec decodes to the payload itself, always successfully:
        # its readers skip the call and the Result it would build (a third of the
        # per-message cost of a reader loop, measured).
        codec_class: Any = type(codec)
        self._identity = codec_class is BytesCodec
        self._controller = controller
        self._on_close = on_close
        self.topic_filter = descriptor.routing.broker_filter()
        # A persistent session: acknowledgements wait for the application (module rules).
        self._acks = acks
        self._taken_lock = threading.Lock()
        self._taken: list[AckToken] = []  # handed out, the application not back yet
        self._lost_warned = False
        self._queue: InboundQueue[Queued] = InboundQueue(
            capacity, self._drained, self._discarded if acks is not None else None
        )
        self._next_sequence = 0  # written by the sidecar only
        self._error: ConnectorError | None = None
        self._closed = False
        #: Taken by the asyncio reader in a batch and not handed out yet (it writes this).
        self.ahead = 0
        # Received routings are immutable values: reuse them per (topic, QoS, retain).
        self._routings: dict[tuple[str, int, bool], MqttRouting] = {}
        #: Payloads that did not decode, so far.
        self.decode_failures = 0
        #: Messages above ``max_payload_size``: not queued, each one a ``PayloadOverflow``.
        self.oversized = 0
        #: Errors handed out in a message's place (an overflow, a payload that did not
        #: decode), counted as handed out: ``consumed`` leaves them out. The asyncio
        #: reader counts its own here too.
        self.errors_handed = 0
        self._max_payload = descriptor.max_payload_size
        #: Retained messages skipped because this reader had received the same one before.
        self.retained_duplicates = 0
        self._retained_seen: dict[str, int] = {}  # topic -> hash of the retained payload

    @property
    def descriptor(self) -> ChannelDescriptor[MqttRouting]:
        return self._descriptor

    @property
    def max_payload_size(self) -> int:
        """Payloads above this are not queued (reported as ``PayloadOverflow``)."""
        return self._max_payload

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    @property
    def queued(self) -> int:
        """Messages waiting in this reader's queue now (and taken by its asyncio reader
        in a batch, not yet handed out)."""
        return len(self._queue) + self.ahead

    @property
    def consumed(self) -> int:
        """Messages this reader handed to the application as envelopes (``recv``,
        ``try_recv``, iteration, the asyncio reader); a ``PayloadOverflow`` or a
        ``CodecError`` handed out in a message's place is not counted, nor what a
        stopped iteration put back."""
        return self._queue.taken - self.ahead - self.errors_handed

    def discard_ahead(self) -> None:
        """The asyncio reader discards what it took ahead and did not hand out."""
        ahead, self.ahead = self.ahead, 0
        if ahead:
            self._queue.untake(ahead)

    @property
    def closed(self) -> bool:
        return self._closed

    def deliver_many(self, items: list[Inbound]) -> int:
        """Sidecar side: queue (payload, topic, qos, retain, timestamp_ns, token) items in
        order, under one lock; return how many were dropped. Dropped ones use a sequence
        number too, so a gap in a reader's sequence numbers shows where messages were
        dropped."""
        sequence = self._next_sequence
        batch: list[Queued] = []
        append = batch.append
        limit = self._max_payload
        for payload, topic, qos, retain, timestamp_ns, token in items:
            if retain:
                # Retained copies come in answer to every SUBSCRIBE of a matching filter,
                # also those made for another reader: skip one this reader already has.
                seen = self._retained_seen
                digest = hash(payload)
                if seen.get(topic) == digest:
                    self.retained_duplicates += 1
                    if token is not None and self._acks is not None:
                        self._acks.release((token,))
                    continue
                if len(seen) < _RETAINED_MEMORY or topic in seen:
                    seen[topic] = digest
            if len(payload) > limit:
                # Above this channel's limit: not queued; reported in its place, in order.
                self.oversized += 1
                overflow = PayloadOverflow(len(payload), limit)
                append(new(Queued, (overflow, topic, qos, retain, timestamp_ns, sequence, token)))
            else:
                append(new(Queued, (payload, topic, qos, retain, timestamp_ns, sequence, token)))
            sequence += 1
        self._next_sequence = sequence
        return self._queue.offer_many(batch) if batch else 0

    def after_fork(self) -> None:
        self._queue.after_fork()
        self._taken_lock = threading.Lock()

    def fail(self, error: ConnectorError) -> None:
        """Sidecar side: this reader failed for good (a refused subscription, a stopped
        sidecar). Blocked ``recv`` calls and selectors on ``fileno()`` wake at once; what
        was queued before is still received, then every call returns ``Failure(error)``."""
        if self._error is None:
            self._error = error
        self._queue.fail()

    def try_recv(self) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        return self._receive(0)

    def recv(
        self, timeout: float | None = None
    ) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        seconds = wait_seconds(timeout)
        if isinstance(seconds, ConfigurationError):
            return Failure(seconds)
        return self._receive(seconds)

    def _receive(
        self, timeout: float | None
    ) -> Result[RecvEnvelope[T, MqttRouting] | None, ConnectorError]:
        if self._closed:
            return Failure(self._closed_error())
        if self._acks is not None:
            self.release_taken()  # the application is back: done with what it took
        item = self._queue.take(timeout)
        if item is None:
            if self._queue.closed:  # closed while we waited
                return Failure(self._closed_error())
            error = self._error
            if error is not None:  # sticky: never followed by a silent None
                return Failure(error)
            return Success(None)
        payload, topic, qos, retain, timestamp_ns, sequence, token = item
        if token is not None:
            with self._taken_lock:
                self._taken.append(token)  # the application has it now
        if self._identity and payload.__class__ is bytes:
            # The common case inline (bytes in, bytes out): one call less per message.
            routing = self._routings.get((topic, qos, retain))
            if routing is None:
                routing = self._routing(topic, qos, retain)
            value: Any = payload
            return ok(
                recv_envelope(value, payload, sequence, timestamp_ns, ZERO_CORRELATION_ID, routing)
            )
        envelope = self._envelope(item)
        if isinstance(envelope, RecvEnvelope):
            return ok(envelope)
        self.errors_handed += 1
        return Failure(envelope)

    def _envelope(self, item: Queued) -> RecvEnvelope[T, MqttRouting] | ConnectorError:
        """One queued item as the caller gets it: an envelope, or the error in its place."""
        payload, topic, qos, retain, timestamp_ns, sequence, _ = item
        if isinstance(payload, PayloadOverflow):
            return payload
        if self._identity:
            same: Any = payload  # what BytesCodec.decode would give
            routing = self._routing(topic, qos, retain)
            zero = ZERO_CORRELATION_ID
            return recv_envelope(same, payload, sequence, timestamp_ns, zero, routing)
        try:
            decoded = self._codec.decode(payload)
        except Exception as err:  # a codec that breaks its contract: still a Result
            decoded = Failure(codec_broke(self._codec, f"decode raised {err!r}", payload))
        if not isinstance(decoded, Success | Failure):
            found = f"decode returned {decoded!r}"
            decoded = Failure(codec_broke(self._codec, found, payload))
        if not is_successful(decoded):
            self.decode_failures += 1
            failure = decoded.failure()
            if failure.payload is None:
                failure = CodecError(failure.format, failure.cause, payload)
            return failure
        value: Any = decoded.unwrap()
        routing = self._routing(topic, qos, retain)
        return recv_envelope(value, payload, sequence, timestamp_ns, ZERO_CORRELATION_ID, routing)

    def _routing(self, topic: str, qos: int, retain: bool) -> MqttRouting:
        """Received routings are immutable values: one per (topic, QoS, retain), reused."""
        key = (topic, qos, retain)
        routing = self._routings.get(key)
        if routing is None:
            if len(self._routings) >= _ROUTING_CACHE:
                self._routings.clear()
            routing = self._routings[key] = MqttRouting.delivered(topic, qos, retain)
        return routing

    def take_ready(self, limit: int) -> list[Ready[T]]:
        """Up to ``limit`` of the messages waiting now, under one lock, each as an envelope
        or the error in its place, with its acknowledgement; ``[]`` when none waits
        (``try_recv`` then tells why). For callers that keep what they took (the asyncio
        reader): taken is taken, and such a caller calls ``hold_taken`` as it hands a
        message out and ``release_taken`` when its caller is back for more."""
        if self._closed:
            return []
        envelope = self._envelope
        return [(envelope(item), item.token) for item in self._queue.take_many(limit, 0)]

    @property
    def acknowledges_when_done(self) -> bool:
        """True for a persistent session's reader: its QoS 1 messages are acknowledged once
        the application is done with them (module rules), not on arrival."""
        return self._acks is not None

    def hold_taken(self, token: AckToken | None) -> None:
        """The application has this message now; acknowledged at ``release_taken``."""
        if token is not None:
            with self._taken_lock:
                self._taken.append(token)

    def release_taken(self) -> None:
        """The application is done with what it took (it came back, or closed the reader)."""
        if not self._taken or self._acks is None:
            return
        with self._taken_lock:
            taken, self._taken = self._taken, []
        self._acks.release(taken)

    def release(self, tokens: list[AckToken]) -> None:
        """Acknowledge messages taken from this reader that nobody will hand out (the
        asyncio reader closing with some it had taken)."""
        if tokens and self._acks is not None:
            self._acks.release(tokens)

    def _discarded(self, items: list[Queued]) -> None:
        """The queue let these go. Closed: they owe this reader nothing. Dropped when
        full: their acknowledgement is withheld, and the broker sends them again once
        this reader has drained (``inbound_acks``: nothing is lost)."""
        acks = self._acks
        assert acks is not None
        tokens = [item.token for item in items if item.token is not None]
        if not tokens:
            return
        if self._queue.closed:
            acks.release(tokens)
            return
        acks.withhold(self, tokens)
        if not len(self._queue):  # drained already, before this was counted
            acks.drained(self)
        if not self._lost_warned and not acks.broker_resends:
            self._lost_warned = True  # once per overflow episode
            log.warning(
                "reader %r of a persistent session dropped %d QoS 1 message(s) for a full "
                "queue (inbound_capacity=%d): lost (this broker does not send "
                "unacknowledged messages again, see unresent_inbound)",
                self._descriptor.name,
                len(tokens),
                self._queue.capacity,
            )
        elif not self._lost_warned:
            self._lost_warned = True  # once per overflow episode
            log.warning(
                "reader %r of a persistent session dropped %d QoS 1 message(s) for a full "
                "queue (inbound_capacity=%d): not acknowledged; once the reader has "
                "drained, the session is resumed (one reconnect) and the broker sends "
                "them again",
                self._descriptor.name,
                len(tokens),
                self._queue.capacity,
            )

    def __iter__(self) -> Iterator[RecvEnvelope[T, MqttRouting]]:
        """Envelopes until the reader or its connector closes; other errors are raised.

        Takes what waits in batches (one lock per batch, not per message); if the
        loop stops early, the envelopes taken and not yet handed out go back to
        the front of the queue, so leaving an iteration never loses a message.
        Closing the reader, also in the loop's body, ends the iteration at once."""
        queue = self._queue
        identity, routings, zero = self._identity, self._routings, ZERO_CORRELATION_ID
        while True:
            if self._closed:
                return
            if self._acks is not None:
                self.release_taken()  # e.g. what a recv before the loop handed out
            batch = queue.take_many(_ITER_BATCH, None)
            if not batch:
                error = self._error
                if queue.closed or self._closed or isinstance(error, ConnectorDown):
                    return
                if error is not None:
                    raise error
                continue
            handed = 0
            try:
                for item in batch:
                    handed += 1
                    token = item.token
                    if token is not None:
                        # Held where close() sees it: closing counts as done with it.
                        self.hold_taken(token)
                    payload = item.payload
                    if identity and payload.__class__ is bytes:  # the common case inline
                        routing = routings.get((item.topic, item.qos, item.retain))
                        if routing is None:
                            routing = self._routing(item.topic, item.qos, item.retain)
                        same: Any = payload
                        yield recv_envelope(
                            same, payload, item.sequence, item.timestamp_ns, zero, routing
                        )
                    else:
                        envelope = self._envelope(item)
                        if not isinstance(envelope, RecvEnvelope):
                            self.errors_handed += 1
                            raise envelope
                        yield envelope
                    if self.closed:  # the property: mypy would narrow the field
                        # Closed in the loop's body: iteration ends here (issue 16
                        # point 9); the rest of the batch goes back to the closed queue,
                        # which discards and releases it (``InboundQueue.unget``).
                        return
                    if token is not None:
                        self.release_taken()  # the loop came back: done with this one
            finally:
                if handed < len(batch):
                    queue.unget(batch[handed:])

    def fileno(self) -> int:
        return self._queue.fileno()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        self.release_taken()
        self._queue.close()  # what waits is discarded (and released, see _discarded)
        if self._acks is not None:
            self._acks.reader_closed(self)  # and what it dropped owes it nothing
        self._controller.inbound_drained(self)

    def settle_drop(self) -> None:
        """(The sidecar, after counting this reader's drop.) The application may have
        emptied the queue between the drop and its count: the drained signal then came
        before the drop was known, and is given again, or health would stay Degraded
        (and a persistent session unresumed) with nothing left to drain."""
        if self._queue.drained_since_overflow():
            self._drained()

    def _drained(self) -> None:
        self._lost_warned = False  # a new overflow episode warns again
        self._controller.inbound_drained(self)
        if self._acks is not None:
            self._acks.drained(self)  # what it dropped may come again now

    def _closed_error(self) -> ConnectorDown:
        return ConnectorDown(f"reader {self._descriptor.name!r} is closed")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MqttReader {self._descriptor.name!r} filter={self.topic_filter!r} {state}>"
