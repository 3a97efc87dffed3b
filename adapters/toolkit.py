"""Building blocks for a connector of your own: what every connector needs in the
same way, with no MQTT library in it.

The reference ``MqttConnector`` is made of these (its writer is a ``BridgeWriter``;
its reader keeps its own queue handling for batched reads and a persistent
session's acknowledgements, over the same ``InboundQueue``), so what the
conformance kit proves about it, it proves about them; the gmqtt example and its
``QueueReader`` are run through the whole kit by the tests too.
``docs/writing-a-connector.md`` builds a connector from them;
``examples/gmqtt_connector/`` is one built on gmqtt.

Each piece, and the part of the contract (``docs/connector-contract.md``) it keeps:

- ``HealthBroadcaster``: holds the health, applies only the domain's legal
  transitions, and fans every event out to any number of subscriptions
  (``subscribe_health`` returns a ``QueueHealthSubscription``), each bounded, none
  replayed (REQ_0250).
- ``HealthController``: health from the connection ``Phase`` (connecting,
  connected, down) plus the two latches: outbound backpressure (``trip_outbound``
  once per episode, ``outbound_drained`` ends it, REQ_0260) and inbound drops
  (``inbound_dropped`` turns ``Degraded`` once at the threshold and re-arms when every
  reader that dropped has drained, REQ_0261). A lost connection goes
  ``Up -> Degraded("connection lost") -> Connecting``; every step is one of the nine
  legal edges.
- ``OutboundBridge``: application threads to your I/O thread, bounded; ``offer``
  answers an ``Offer``: ``FULL`` is ``BackPressure``; it never blocks (REQ_0259,
  REQ_0260); closed, it accepts nothing, so nothing is accepted and then lost.
- ``InboundQueue``: your I/O thread to one reader, bounded; full, it drops the
  *newest* and counts it (``dropped``); ``take`` waits with any timeout;
  ``fileno()`` is readable exactly while something waits (REQ_0259, REQ_0261).
- ``BridgeWriter`` and ``QueueReader``: the ``ChannelWriter`` and ``ChannelReader``
  ports over those two: send rules, ``BackPressure`` and its latch, sequence numbers,
  ``flush``; ``recv``/``try_recv``/iteration/``fileno()``, drops counted and told to
  the controller, decoding into envelopes. Your I/O thread takes ``Outgoing``
  messages from the bridge and calls ``reader.deliver(...)`` for what arrives.
- ``Delivery``: the delivery handle of one sent message, completed once (``succeed``
  or ``fail``); ``wait(timeout)`` never raises.
- ``encode_payload``: the send rules every writer applies before it queues a
  message: the correlation id checked, the codec's answer checked (a codec that
  raises or answers with something else is a ``CodecError`` made by ``codec_broke``,
  not a crash), the size against ``payload_limit``: the channel's limit and what one
  MQTT PUBLISH can carry (``PayloadOverflow``).
- ``wait_seconds``: every timeout a caller gives, made safe: ``None`` or ``math.inf``
  is no deadline, NaN or a negative is a ``ConfigurationError`` to return.
- ``validate_publish_topic``, ``validate_filter``, ``topic_matches`` and
  ``TopicMatcher`` (every reader whose filter matches a topic, for demultiplexing):
  the MQTT 3.1.1 topic rules (REQ_0254), without any client library.
"""

from __future__ import annotations

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
from taktora_connector.adapters.mqtt.topics import (
    topic_matches,
    validate_filter,
    validate_publish_topic,
)
from taktora_connector.adapters.payloads import codec_broke, encode_payload, payload_limit
from taktora_connector.adapters.queue_channels import BridgeWriter, Outgoing, QueueReader
from taktora_connector.adapters.timeouts import wait_seconds

__all__ = [
    "CONNECTION_LOST",
    "OUTBOUND_BACKPRESSURE",
    "BridgeWriter",
    "Delivery",
    "HealthBroadcaster",
    "HealthController",
    "InboundQueue",
    "Offer",
    "OutboundBridge",
    "Outgoing",
    "Phase",
    "QueueHealthSubscription",
    "QueueReader",
    "TopicMatcher",
    "codec_broke",
    "encode_payload",
    "payload_limit",
    "topic_matches",
    "validate_filter",
    "validate_publish_topic",
    "wait_seconds",
]
