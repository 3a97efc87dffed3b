"""Building blocks for a connector of your own: what every connector needs in the
same way, with no MQTT library in it.

The reference ``MqttConnector`` is made of these, so everything the conformance kit
proves about it, it proves about them. ``docs/writing-a-connector.md`` builds a
connector from them; ``examples/gmqtt_connector/`` is one built on gmqtt.

Each piece, and the part of the contract (``docs/connector-contract.md``) it keeps:

- ``HealthBroadcaster``: holds the health, applies only the domain's legal
  transitions, and fans every event out to any number of subscriptions
  (``subscribe_health``), each bounded, none replayed (REQ_0250).
- ``HealthController``: health from the connection ``Phase`` (connecting,
  connected, down) plus the two latches: outbound backpressure (``trip_outbound``
  once per episode, ``outbound_drained`` ends it, REQ_0260) and inbound drops
  (``inbound_dropped`` turns ``Degraded`` once at the threshold and re-arms when every
  reader that dropped has drained, REQ_0261). A lost connection goes
  ``Up -> Degraded("connection lost") -> Connecting``; every step is one of the nine
  legal edges.
- ``OutboundBridge``: application threads to your I/O thread, bounded; ``offer``
  answers ``Offer.FULL`` (make it ``BackPressure``), never blocks (REQ_0259,
  REQ_0260); closed, it accepts nothing, so nothing is accepted and then lost.
- ``InboundQueue``: your I/O thread to one reader, bounded; full, it drops the
  *newest* and counts it (``dropped``); ``take`` waits with any timeout;
  ``fileno()`` is readable exactly while something waits (REQ_0259, REQ_0261).
- ``Delivery``: the delivery handle of one sent message, completed once (``succeed``
  or ``fail``); ``wait(timeout)`` never raises.
- ``encode_payload``: the send rules every writer applies before it queues a
  message: the correlation id checked, the codec's answer checked (a codec that
  raises or answers with something else is a ``CodecError``, not a crash), the size
  against the channel's limit and what one MQTT PUBLISH can carry
  (``PayloadOverflow``).
- ``wait_seconds``: every timeout a caller gives, made safe: ``None`` or ``math.inf``
  is no deadline, NaN or a negative is a ``ConfigurationError`` to return.
- ``validate_publish_topic``, ``validate_filter``, ``topic_matches`` and
  ``TopicMatcher`` (every reader whose filter matches a topic, for demultiplexing):
  the MQTT 3.1.1 topic rules (REQ_0254), without any client library.
"""

from __future__ import annotations

from typing import Any

from returns.result import Failure, Success

from taktora_connector.adapters.health import HealthBroadcaster, QueueHealthSubscription
from taktora_connector.adapters.mqtt.bridge import InboundQueue, Offer, OutboundBridge
from taktora_connector.adapters.mqtt.delivery import Delivery
from taktora_connector.adapters.mqtt.health_control import (
    CONNECTION_LOST,
    OUTBOUND_BACKPRESSURE,
    HealthController,
    Phase,
)
from taktora_connector.adapters.mqtt.matcher import TopicMatcher
from taktora_connector.adapters.mqtt.protocol.packets import publish_payload_limit
from taktora_connector.adapters.mqtt.topics import (
    topic_matches,
    validate_filter,
    validate_publish_topic,
)
from taktora_connector.adapters.timeouts import wait_seconds
from taktora_connector.domain import (
    CodecError,
    ConfigurationError,
    ConnectorError,
    PayloadOverflow,
    validate_correlation_id,
)
from taktora_connector.ports import PayloadCodec

__all__ = [
    "CONNECTION_LOST",
    "OUTBOUND_BACKPRESSURE",
    "Delivery",
    "HealthBroadcaster",
    "HealthController",
    "InboundQueue",
    "Offer",
    "OutboundBridge",
    "Phase",
    "QueueHealthSubscription",
    "TopicMatcher",
    "codec_broke",
    "encode_payload",
    "payload_limit",
    "topic_matches",
    "validate_filter",
    "validate_publish_topic",
    "wait_seconds",
]


def payload_limit(max_payload_size: int, topic: str, qos: int) -> int:
    """The largest payload a writer may accept: the channel's ``max_payload_size``,
    and no more than one MQTT 3.1.1 PUBLISH of this topic and QoS can carry (its
    remaining length is at most 268,435,455 bytes)."""
    return min(max_payload_size, publish_payload_limit(topic, qos))


def codec_broke(codec: Any, what: str, payload: bytes | None = None) -> CodecError:
    """A codec raised, or answered with something its contract does not allow."""
    name = getattr(codec, "format_name", type(codec).__name__)
    return CodecError(str(name), f"the codec broke its contract: {what}", payload)


def encode_payload(
    codec: PayloadCodec[Any], value: object, correlation_id: bytes | None, limit: int
) -> bytes | ConnectorError:
    """The bytes to publish for ``value``, or the error ``send`` must return.

    A plain value, not a ``Result``, so that the send path makes no object it does
    not need: ``isinstance(answer, bytes)`` tells them apart. ``limit`` is
    ``payload_limit(...)`` of the writer's channel.
    """
    if correlation_id is not None:
        # MQTT 3.1.1 has nowhere to carry it: validated, then not put on the wire.
        try:
            validate_correlation_id(correlation_id)
        except ConfigurationError as err:
            return err
    try:
        answer: Any = codec.encode(value)  # a Result, checked: a codec may break that
    except Exception as err:  # a codec that breaks its contract: still an answer
        return codec_broke(codec, f"encode raised {err!r}")
    if not isinstance(answer, Success):
        if isinstance(answer, Failure):
            error: Any = answer.failure()
            if isinstance(error, ConnectorError):
                return error
            return codec_broke(codec, f"encode failed with {error!r}, not a ConnectorError")
        return codec_broke(codec, f"encode returned {answer!r}")
    payload: Any = answer.unwrap()
    if payload.__class__ is not bytes:
        if not isinstance(payload, bytes | bytearray | memoryview):
            return codec_broke(codec, f"encode gave a {type(payload).__name__}, not bytes")
        payload = bytes(payload)
    if len(payload) > limit:
        return PayloadOverflow(len(payload), limit)
    return payload  # type: ignore[no-any-return]
