"""The data plane: PUBLISH in both directions and PUBACK, off paho's per-message path.

paho stays the session engine (CONNECT/CONNACK, keep-alive, SUBSCRIBE and
UNSUBSCRIBE, DISCONNECT); the messages themselves are encoded and decoded here
with the project's own codec (``packets``), in batches.

Rules of this module:
- it never imports paho and runs on the sidecar thread only; the gateway hands
  it each new connection's socket (``attach``) and the bytes it reads (``receive``);
- inbound: the bytes are split into packets; PUBLISH and PUBACK are handled
  here, every other packet goes whole, and in stream order, to the session
  engine through the ``to_session`` callback, which answers whether the
  connection is still the same afterwards;
- a complete packet is the liveness signal: ``packets_received`` counts them
  (partial bytes never count);
- readers get messages in batches: one queue lock per reader per read, never one
  per message; a QoS 1 PUBLISH of a clean session is acknowledged once it was
  offered to its readers (queued, or dropped and counted); one of a persistent
  session once the application is done with it (``inbound_acks``); either way
  PUBACKs leave in the order the PUBLISHes came (MQTT-4.6.0-2); a QoS 2 PUBLISH breaks
  MQTT-3.8.4-6 (the connector never subscribes above QoS 1) and ends the connection;
- outbound: messages are taken from the bridge in batches and encoded straight
  into the socket's write buffer: QoS 1 while fewer than ``max_inflight`` are
  not completed (unacknowledged, or acknowledged ahead of an older one: a broker
  that holds one PUBACK stalls the window, so sends get BackPressure), QoS 0
  while less than ``WRITE_HIGH_WATER`` bytes wait to be flushed, so a stalled
  broker fills the bridge (BackPressure), not memory;
- deliveries complete in order: QoS 0 once its bytes reached the kernel, QoS 1
  on PUBACK, in the order sent (a broker acknowledges in the order it received,
  MQTT-4.6.0-2; one acknowledged early waits for the older ones and keeps its
  packet identifier until it completes);
  unacknowledged QoS 1 messages go again, DUP set and same identifier, on the
  next connection (``resend``);
- every packet identifier comes from the connection's one ``PacketIds``
  (MQTT-2.3.1-2), shared with the session engine's SUBSCRIBE and UNSUBSCRIBE.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Final, Protocol, cast

from taktora_connector.adapters.mqtt.bridge import OutboundBridge
from taktora_connector.adapters.mqtt.delivery import Delivery
from taktora_connector.adapters.mqtt.inbound_acks import AckToken, InboundAcks
from taktora_connector.adapters.mqtt.protocol.broker_check import topic_name_flaw
from taktora_connector.adapters.mqtt.protocol.packet_ids import LARGEST, PacketIds
from taktora_connector.adapters.mqtt.protocol.packets import (
    MAX_REMAINING,
    NeedData,
    PacketReader,
    PacketType,
    ProtocolViolation,
    PubAck,
    Publish,
    SkippedPublish,
    encode_publish,
)
from taktora_connector.adapters.mqtt.protocol.session import ClientSession
from taktora_connector.adapters.mqtt.records import Inbound, InFlight, Outbound, Written, new
from taktora_connector.domain import (
    ConnectorDown,
    ConnectorError,
    StackError,
)

from .buffered_socket import BufferedSocket, Traffic

log = logging.getLogger("taktora_connector.mqtt")

#: Messages taken from the bridge at once, and at most per pass of the loop.
TAKE_BATCH: Final = 256
PUMP_LIMIT: Final = 1024
#: QoS 0 messages are encoded only while fewer unflushed bytes wait than this.
WRITE_HIGH_WATER: Final = 256 * 1024
#: Identifiers kept free for the session engine's SUBSCRIBE and UNSUBSCRIBE.
SESSION_IDS: Final = 1024


class InboundSink(Hashable, Protocol):
    """What the data plane needs of a reader."""

    def deliver_many(self, items: list[Inbound]) -> int:
        """Queue ``items`` in order under one lock; return how many were dropped."""
        ...

    def fail(self, error: ConnectorError) -> None: ...

    def settle_drop(self) -> None:
        """After its drop was counted: if its queue emptied meanwhile, drained again."""
        ...


class DropCounter(Protocol):
    def inbound_dropped(self, reader: Hashable, count: int = 1) -> None: ...


Match = Callable[[str], list[InboundSink]]
#: Called for a message no reader matches: (payload, topic, qos, retain, timestamp_ns).
Unrouted = Callable[[bytes, str, int, bool, int], None]
#: None: the topic is not UTF-8; else the topic and each matching reader's batch
#: (None when no reader matches).
_Route = tuple[str, list[list[Inbound]] | None]


class Skipped(bytes):
    """Stands in for a payload that was skipped in the stream: empty, with the length
    the payload had (readers compare lengths with their limit and report the overflow;
    the unrouted hold counts it and never keeps it)."""

    size: int

    def __new__(cls, size: int) -> Skipped:
        stand_in = super().__new__(cls)
        stand_in.size = size
        return stand_in

    def __len__(self) -> int:
        return self.size


class _Pass:
    """What one ``receive`` call carries from packet to packet: whether the session is
    connected, the arrival time, the topics already routed, each reader's batch and
    the PUBACKs due (written once, at the end)."""

    __slots__ = ("acks", "batches", "connected", "now", "routes")

    def __init__(self, connected: bool, now: int) -> None:
        self.connected = connected  # else the next PUBLISH or PUBACK is a violation
        self.now = now
        self.routes: dict[bytes, _Route] = {}
        self.batches: dict[InboundSink, list[Inbound]] = {}
        self.acks: list[bytes] = []


class DataPlane:
    def __init__(
        self,
        match: Match,
        drops: DropCounter,
        ids: PacketIds,
        max_inflight: int,
        unrouted: Unrouted,
        *,
        acks: InboundAcks | None = None,
        held_unrouted_limit: int = 0,
    ) -> None:
        self._match = match
        #: The largest payload of a message no reader matches that is kept whole (for
        #: the persistent session's hold, ``unrouted``); 0: none is (a clean session
        #: only counts them), so each is skipped in the stream as it arrives.
        self._held_unrouted_limit = held_unrouted_limit
        self._acks = acks  # None: a clean session, acknowledged on arrival
        self._unrouted = unrouted
        self._drops = drops
        self._ids = ids
        self._max_inflight = min(max_inflight, LARGEST - SESSION_IDS)
        self._reader = self._new_reader()
        #: What the broker may send now (``session``): every packet read is checked there.
        self.session = ClientSession()
        self._wire: BufferedSocket | None = None
        self._qos0: deque[Written] = deque()
        self._inflight: dict[int, InFlight] = {}  # unacknowledged QoS 1
        self._order: deque[int] = deque()  # QoS 1 identifiers in the order sent
        self._acked_early: dict[int, Delivery] = {}  # acknowledged before an older one
        self._topics: dict[str, bytes] = {}
        #: Inbound messages dropped because their topic is not UTF-8.
        self.rejected_inbound = 0
        #: Complete packets received (the liveness signal; partial bytes never count).
        self.packets_received = 0
        #: For ``metrics()``: counted per read, per run, per pump (``metrics`` module).
        self.bytes_received = 0
        self.publishes_received = 0
        self.oversized_inbound = 0
        self.messages_sent = 0
        self.messages_delivered = 0
        #: Deliveries that failed (lost with a connection, not encodable, or failed when
        #: the sidecar stopped); ``Waiters`` adds those failed in the bridge.
        self.deliveries_failed = 0
        #: Every byte written through a connection's buffer (``BufferedSocket``).
        self.traffic = Traffic()
        #: One handler per packet type the data plane acts on (``receive``).
        #: (PUBLISH is read in runs, ``_on_publishes``.)
        self._handlers: dict[type, Callable[[Any, _Pass], None]] = {
            SkippedPublish: self._on_skipped,
            PubAck: self._on_puback,
        }

    # -- the connection -----------------------------------------------------------------------

    def _new_reader(self) -> PacketReader:
        reader = PacketReader()
        reader.payload_limit = self._payload_limit
        return reader

    def attach(self, wire: BufferedSocket) -> None:
        """A new connection: a fresh packet reader over its socket."""
        self._wire = wire
        self._reader = self._new_reader()
        self.session.connection_opened()

    def connection_lost(self) -> None:
        """QoS 0 messages whose bytes did not reach the kernel fail; QoS 1 ones wait.
        Inbound ones not acknowledged come again from the broker."""
        self.session.connection_closed()
        if self._acks is not None:
            self._acks.connection_lost()
        self.settle_qos0()
        lost = ConnectorDown("connection lost before the message was written")
        while self._qos0:
            self._qos0.popleft().delivery.fail(lost)
            self.deliveries_failed += 1
        self._wire = None

    def resend(self) -> None:
        """After CONNACK: every unacknowledged QoS 1 message again, DUP set (MQTT-4.4.0-1)."""
        wire = self._wire
        if wire is None or not self._inflight:
            return
        packets = self._inflight
        again = [
            bytes((packets[pid].packet[0] | 0x08,)) + packets[pid].packet[1:]
            for pid in self._order
            if pid in packets
        ]
        wire.write(b"".join(again))
        self.messages_sent += len(again)

    # -- inbound --------------------------------------------------------------------------------

    def receive(self, data: bytes, to_session: Callable[[bytes], bool]) -> None:
        """Handle every whole packet in ``data`` (and what was left over before it):
        the session (``session.received``) says whether the broker may send it now,
        then its type's one handler acts on it (``_on_publishes`` for each run of
        PUBLISHes, ``_on_skipped``, ``_on_puback``; every other packet goes whole to
        ``to_session`` through ``_on_control``).

        Raises ``ProtocolViolation`` for bytes that are not MQTT 3.1.1; the
        messages before them are still delivered.
        """
        reader = self._reader
        reader.receive_data(data)
        self.bytes_received += len(data)
        next_run = reader.next_run
        wire = self._wire
        step = _Pass(self.session.connected, time.time_ns())
        handlers = self._handlers
        count = published = 0
        publishes: list[Publish] = []  # a run of PUBLISHes, handled together
        try:
            while True:
                packet = next_run(publishes)  # the PUBLISHes up to the next other event
                if publishes:
                    count += len(publishes)
                    published += len(publishes)
                    self._on_publishes(publishes, step)  # and empties the run
                kind = type(packet)
                handler = handlers.get(kind)
                if handler is not None:
                    count += 1
                    handler(packet, step)
                elif kind is NeedData:
                    return
                else:
                    count += 1
                    if not self._on_control(reader.last_raw(), step, to_session):
                        return  # the connection ended or changed under the session engine
        finally:
            try:
                if publishes:  # bytes that are no packet ended the stream after a run
                    count += len(publishes)
                    published += len(publishes)
                    self._on_publishes(publishes, step)
            finally:
                self.packets_received += count
                self.publishes_received += published
                self._deliver(step.batches)
                acks = step.acks
                if self._acks is not None:
                    acks.append(self._acks.due())
                if acks and wire is not None and self._wire is wire:
                    wire.write(b"".join(acks))

    def _on_publishes(self, publishes: list[Publish], step: _Pass) -> None:
        """PUBLISHes, in stream order: each one's QoS checked, its acknowledgement owed
        or withheld (``inbound_acks``), and its message added to each matching reader's
        batch. A run at a time: the per-message path is this loop, not a call. The run
        is emptied, also when one of it breaks the protocol (those before it stand)."""
        try:
            self._publishes(publishes, step)
        finally:
            publishes.clear()

    def _publishes(self, publishes: list[Publish], step: _Pass) -> None:
        if not step.connected:
            self.session.received(PacketType.PUBLISH)  # raises: before CONNACK
        ledger = self._acks
        acks = step.acks
        routes = step.routes
        batches = step.batches
        now = step.now
        for packet in publishes:
            qos = packet.qos
            if qos == 2:
                raise ProtocolViolation(
                    "QoS 2 PUBLISH on a subscription of QoS 1 at most (MQTT-3.8.4-6)"
                )
            topic_raw = packet.topic
            route = routes.get(topic_raw)
            if route is None:  # raises for what is no topic name: before it is acknowledged
                route = routes[topic_raw] = self._route(topic_raw, batches)
            token: AckToken | None = None
            if qos:
                packet_id = packet.packet_id
                assert packet_id is not None
                if ledger is None:
                    acks.append(b"\x40\x02" + packet_id.to_bytes(2, "big"))
                else:
                    token = ledger.expect(packet_id, packet.topic, packet.payload, packet.dup)
                    if token is None:  # a resend of one the readers already have,
                        if ledger.again is not None:  # bar those that dropped it
                            self._again(ledger, packet, batches, now)
                        continue
            batches_of = route[1]
            if batches_of is None:
                self._unrouted(packet.payload, route[0], qos, packet.retain, now)
                continue
            item = new(Inbound, (packet.payload, route[0], qos, packet.retain, now, token))
            if token is not None:
                token.owed = len(batches_of)
            for batch in batches_of:
                batch.append(item)

    def _on_skipped(self, packet: SkippedPublish, step: _Pass) -> None:
        """A PUBLISH above every matching reader's limit, its payload skipped in the
        stream: its header is checked like any other's, each reader is told in order,
        and its acknowledgement goes in turn."""
        if not step.connected:
            self.session.received(PacketType.PUBLISH)  # raises: before CONNACK
        if packet.qos == 2:
            raise ProtocolViolation(
                "QoS 2 PUBLISH on a subscription of QoS 1 at most (MQTT-3.8.4-6)"
            )
        self._skipped(packet, step.batches, step.now)
        self.oversized_inbound += 1
        self.publishes_received += 1
        if packet.packet_id is not None:
            if self._acks is None:
                step.acks.append(b"\x40\x02" + packet.packet_id.to_bytes(2, "big"))
            else:  # refused by every reader: owes nothing, acknowledged in turn
                # (its DUP flag as sent: a resend does not end a resumed
                # session's wait for the withheld messages)
                self._acks.expect(packet.packet_id, packet.topic, b"", packet.dup)

    def _on_puback(self, packet: PubAck, step: _Pass) -> None:
        """A PUBACK: the delivery of that packet identifier completes, in send order."""
        if not step.connected:
            self.session.received(PacketType.PUBACK)  # raises: before CONNACK
        self._acknowledged(packet.packet_id)

    def _on_control(self, raw: bytes, step: _Pass, to_session: Callable[[bytes], bool]) -> bool:
        """Any other packet: allowed in this state or a violation (``session``), then
        whole to the session engine, after the messages read before it reached their
        readers. False: the connection ended or changed under the session engine."""
        session = self.session
        session.received(raw[0] >> 4)
        step.connected = session.connected
        self._deliver(step.batches)
        step.routes.clear()
        return to_session(raw)

    def write_due_acks(self) -> None:
        """A persistent session: write the PUBACKs that became due since the last read."""
        if self._acks is None or self._wire is None:
            return
        due = self._acks.due()
        if due:
            self._wire.write(due)

    def _payload_limit(self, topic_raw: bytes) -> int:
        """The largest payload wanted for this topic: a larger one is skipped in the
        stream as it arrives, never buffered whole (point 11 of issue 9, point 5 of
        issue 16). For matching readers, the largest of their ``max_payload_size``; for a
        topic that is not a topic name (not UTF-8, a wildcard, U+0000, empty), 0: it is
        rejected whatever its size; for one no reader matches, what the unrouted hold
        keeps whole (0 for a clean session, which only counts them)."""
        if topic_name_flaw(topic_raw) is not None:
            return 0
        topic = topic_raw.decode("utf-8")
        readers = self._match(topic)
        if not readers:
            return self._held_unrouted_limit
        return max(getattr(reader, "max_payload_size", MAX_REMAINING) for reader in readers)

    def _skipped(
        self, packet: SkippedPublish, batches: dict[InboundSink, list[Inbound]], now: int
    ) -> None:
        """Report a skipped message to the readers it was for, in order with the rest:
        a stand-in payload of the right length, which each reader turns into its
        ``PayloadOverflow`` (it is above every one's limit, so nobody queues it)."""
        route = self._route(packet.topic, batches)  # raises for one that is no topic name
        if route[1] is None:  # no reader: counted (its payload is gone, so never held)
            self._unrouted(Skipped(packet.size), route[0], packet.qos, packet.retain, now)
            return
        item = new(Inbound, (Skipped(packet.size), route[0], packet.qos, packet.retain, now, None))
        for batch in route[1]:
            batch.append(item)

    def _route(self, topic_raw: bytes, batches: dict[InboundSink, list[Inbound]]) -> _Route:
        """Where a PUBLISH goes: every inbound PUBLISH, skipped or not, passes here, so
        this is where its topic name is checked. One that is not a topic name is a
        protocol violation (MQTT-4.8.0-1: the connection closes, nothing of it is
        delivered or acknowledged); it is counted in ``rejected_inbound``."""
        if (flaw := topic_name_flaw(topic_raw)) is not None:
            self.rejected_inbound += 1
            raise ProtocolViolation(f"PUBLISH with {flaw}")
        topic = topic_raw.decode("utf-8")
        readers = self._match(topic)
        if not readers:
            return topic, None
        return topic, [batches.setdefault(reader, []) for reader in readers]

    def _again(
        self,
        ledger: InboundAcks,
        packet: Publish,
        batches: dict[InboundSink, list[Inbound]],
        now: int,
    ) -> None:
        """The broker sent a withheld message again (``inbound_acks``): a copy to each
        reader whose full queue dropped it, and to no other. Its topic was checked
        when it first came; the token still owes those readers their release."""
        assert ledger.again is not None
        token, readers = ledger.again
        ledger.again = None
        topic = packet.topic.decode("utf-8")
        item = new(Inbound, (packet.payload, topic, packet.qos, packet.retain, now, token))
        for reader in readers:
            batches.setdefault(cast("InboundSink", reader), []).append(item)

    def _deliver(self, batches: dict[InboundSink, list[Inbound]]) -> None:
        for reader, items in batches.items():
            if items:
                dropped = reader.deliver_many(items)
                if dropped:
                    self._drops.inbound_dropped(reader, dropped)
                    reader.settle_drop()
        batches.clear()

    def _acknowledged(self, packet_id: int) -> None:
        entry = self._inflight.pop(packet_id, None)
        if entry is None:
            log.debug("PUBACK for packet %d, which is not in flight", packet_id)
            return
        order = self._order
        if order[0] != packet_id:
            # Acknowledged before an older one: it completes in turn. Its identifier
            # stays taken until then, so no new message can reuse it while it waits
            # in ``_order`` (issue 16 point 7: a reused id overwrote this entry and a
            # stale one stayed at the head, and every later delivery hung).
            self._acked_early[packet_id] = entry.delivery
            return
        release = self._ids.release
        order.popleft()
        release(packet_id)
        entry.delivery.succeed()
        self.messages_delivered += 1
        early = self._acked_early
        while early and order and order[0] in early:
            done = order.popleft()
            release(done)
            early.pop(done).succeed()
            self.messages_delivered += 1

    # -- outbound -------------------------------------------------------------------------------

    def can_pump(self, bridge: OutboundBridge[Outbound]) -> bool:
        item = bridge.peek()
        if item is None or self._wire is None:
            return False
        if item.qos:
            return len(self._order) < self._max_inflight
        return self._wire.unflushed < WRITE_HIGH_WATER

    def pump(self, bridge: OutboundBridge[Outbound]) -> None:
        """Encode queued messages into the write buffer while the window and buffer allow.

        Only what can be sent now leaves the bridge, so the bridge and the
        in-flight window are the whole outbound bound (a stalled broker means
        BackPressure after ``outbound_capacity + max_inflight`` messages)."""
        wire = self._wire
        if wire is None:
            return
        # The window is every QoS 1 message not yet completed, acknowledged early or not.
        slots = self._max_inflight - len(self._order)
        budget = WRITE_HIGH_WATER - wire.unflushed

        def admit(item: Outbound) -> bool:
            nonlocal slots, budget
            if item.qos:
                slots -= 1
                return slots >= 0
            if budget <= 0:
                return False
            budget -= len(item.payload) + len(item.topic) + 5
            return True

        inflight = self._inflight
        order = self._order
        qos0 = self._qos0
        topics = self._topics
        take_id = self._ids.take
        out: list[bytes] = []
        queued = wire.queued_total
        for _ in range(PUMP_LIMIT // TAKE_BATCH):
            batch = bridge.take(TAKE_BATCH, admit)
            for topic, payload, qos, retain, delivery in batch:
                raw_topic = topics.get(topic)
                if raw_topic is None:
                    if len(topics) >= 1024:
                        topics.clear()
                    raw_topic = topics[topic] = topic.encode("utf-8")
                try:
                    if qos:
                        packet_id = take_id()
                        try:
                            packet = encode_publish(raw_topic, payload, 1, retain, packet_id)
                        except ProtocolViolation:
                            self._ids.release(packet_id)
                            raise
                        inflight[packet_id] = new(InFlight, (packet, delivery))
                        order.append(packet_id)
                    else:
                        packet = encode_publish(raw_topic, payload, 0, retain)
                        qos0.append(new(Written, (queued + len(packet), delivery)))
                except ProtocolViolation as err:
                    delivery.fail(StackError(f"cannot encode the message: {err}"))
                    self.deliveries_failed += 1
                    continue
                out.append(packet)
                queued += len(packet)
            if len(batch) < TAKE_BATCH:
                break
        if out:
            wire.write(b"".join(out))
            self.messages_sent += len(out)

    def settle_qos0(self) -> None:
        """Complete the QoS 0 deliveries whose bytes reached the kernel."""
        wire = self._wire
        queue = self._qos0
        if wire is None or not queue:
            return
        flushed = wire.flushed_total
        waiting = len(queue)
        while queue and queue[0].end <= flushed:
            queue.popleft().delivery.succeed()
        self.messages_delivered += waiting - len(queue)

    @property
    def idle(self) -> bool:
        """Nothing taken from the bridge is unflushed or unacknowledged."""
        return not (self._qos0 or self._inflight or self._acked_early)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def fail_all(self, error: ConnectorError) -> None:
        """Fail every message taken from the bridge and not delivered (in order)."""
        while self._qos0:
            self._qos0.popleft().delivery.fail(error)
            self.deliveries_failed += 1
        early = self._acked_early
        for packet_id in self._order:
            entry = self._inflight.pop(packet_id, None)
            if entry is not None:
                self._ids.release(packet_id)
                entry.delivery.fail(error)
                self.deliveries_failed += 1
            elif packet_id in early:
                self._ids.release(packet_id)
                early.pop(packet_id).succeed()
        self._order.clear()
