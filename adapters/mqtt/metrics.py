"""One connector's counters and gauges at one moment: ``MqttConnector.metrics()``.

Rules of this module:
- a frozen value, made on the caller's thread from counters the sidecar keeps as
  plain integers (one writer, so no lock on the hot path; a snapshot may be a few
  messages behind the sidecar, never torn within one counter);
- counters only grow for the connector's life; gauges are what is there now;
- counted in batches where the sidecar works in batches (a read, a run of
  PUBLISHes, a pump), so counting costs a few additions per batch, not per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taktora_connector.domain import HealthKind


@dataclass(frozen=True, slots=True)
class ReaderMetrics:
    """One open reader: its name, its filter, what waits in its queue, what it dropped."""

    name: str
    topic_filter: str
    queued: int
    dropped: int
    #: Messages it handed to the application as envelopes.
    consumed: int = 0
    #: Messages above its ``max_payload_size`` (a ``PayloadOverflow`` in their place).
    oversized: int = 0
    #: Payloads its codec could not decode (a ``CodecError`` in their place).
    decode_failures: int = 0


@dataclass(frozen=True, slots=True)
class ConnectorMetrics:
    """Counters since the connector was made, and gauges of now."""

    #: ``options.client_id``: tells two connectors' figures apart in one process.
    client_id: str = ""
    #: PUBLISH packets written to the broker (resends included).
    messages_sent: int = 0
    #: Every byte written to the broker (CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ,
    #: DISCONNECT); ``bytes_received`` is every byte read (CONNACK included).
    bytes_sent: int = 0
    #: Deliveries completed: QoS 0 once written to the kernel, QoS 1 at PUBACK.
    messages_delivered: int = 0
    #: Deliveries that failed (``delivery.wait()`` answers ``Failure``): lost with a
    #: connection (QoS 0), not encodable, or failed when the connector closed or went Down.
    deliveries_failed: int = 0
    #: ``send`` calls refused with ``BackPressure`` (the outbound bridge was full).
    sends_refused: int = 0
    #: PUBLISH packets received (also those no reader took).
    messages_received: int = 0
    bytes_received: int = 0
    #: Messages readers handed to the application as envelopes (``recv``, ``try_recv``,
    #: iteration, the asyncio reader; a message two readers match counts twice; a
    #: ``PayloadOverflow`` or ``CodecError`` in a message's place does not count). What
    #: OpenTelemetry calls consumed.
    messages_consumed: int = 0
    #: Payloads a reader's codec could not decode (the readers closed since included).
    decode_failures: int = 0
    #: Inbound messages dropped by full reader queues (``reader.dropped`` summed, the
    #: readers closed since included).
    dropped_inbound: int = 0
    unrouted_inbound: int = 0
    rejected_inbound: int = 0
    #: PUBLISHes skipped in the stream unread: over every matching reader's
    #: ``max_payload_size`` and still arriving (above 16 KiB), so never buffered whole.
    #: Each reader a message is too big for, skipped or read, counts it in
    #: ``ReaderMetrics.oversized`` and gets a ``PayloadOverflow`` in its place.
    oversized_inbound: int = 0
    #: Connections made after the first, and connection attempts that failed.
    reconnects: int = 0
    failed_attempts: int = 0
    #: Persistent session: reconnects made on purpose to get dropped QoS 1 messages
    #: again (``connector.session_resumes``), and those the broker did not send again
    #: (``connector.unresent_inbound``).
    session_resumes: int = 0
    unresent_inbound: int = 0
    #: Health transitions by the state they went to.
    health_transitions: dict[HealthKind, int] = field(default_factory=dict)
    # -- gauges --------------------------------------------------------------------
    #: Messages accepted by writers and not yet taken by the sidecar.
    outbound_queued: int = 0
    #: QoS 1 messages written and waiting for PUBACK.
    inflight: int = 0
    #: Persistent session: QoS 1 messages received and not yet acknowledged.
    unacknowledged_inbound: int = 0
    readers: tuple[ReaderMetrics, ...] = ()
    #: ``mqtt://host:port`` of the connection that is up, else None (also once closed).
    server: str | None = None
    #: "clean" or "persistent" (``clean_session``).
    session: str = "clean"
    health: HealthKind = HealthKind.CONNECTING
    #: ``close()`` was called (exporters leave a connector closed on purpose out).
    closed: bool = False
    #: The reason of a ``Degraded`` or ``Down`` health now, else None.
    health_reason: str | None = None
    #: The most recent connection failure (``connector.last_error``), kept after a
    #: reconnect; None if there was none.
    last_error: str | None = None
