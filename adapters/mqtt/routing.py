"""How an MQTT channel is addressed: topic, QoS, retained flag and read filter.

Rules of this module:
- QoS 0 and 1 only (REQ_0252); asking for 2 is a ``ConfigurationError`` that
  says QoS 2 is not supported yet;
- a routing needs a topic, a filter or both; with both, the filter is for
  reading and the topic for writing; whether a channel may use the routing is
  decided when a writer or reader is created;
- the routing of a received message is built by the gateway from trusted
  broker data through ``MqttRouting.delivered`` without re-validation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from taktora_connector.domain import ConfigurationError

from .topics import validate_filter, validate_topic_name


class MqttQos(enum.IntEnum):
    """The MQTT quality-of-service levels this connector supports."""

    AT_MOST_ONCE = 0
    AT_LEAST_ONCE = 1

    @classmethod
    def parse(cls, value: object) -> MqttQos:
        """Accept an ``MqttQos`` or the int 0 or 1; refuse anything else clearly."""
        if isinstance(value, MqttQos):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if value == 2:
                raise ConfigurationError(
                    "QoS 2 (exactly once) is not supported yet; use "
                    "MqttQos.AT_MOST_ONCE (0) or MqttQos.AT_LEAST_ONCE (1)"
                )
            if value in (0, 1):
                return cls(value)
        raise ConfigurationError(
            f"QoS must be MqttQos.AT_MOST_ONCE (0) or MqttQos.AT_LEAST_ONCE (1), got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class MqttRouting:
    """The routing of one MQTT channel (REQ_0251)."""

    topic: str | None = None
    qos: MqttQos = MqttQos.AT_MOST_ONCE
    retained: bool = False
    filter: str | None = None

    def __post_init__(self) -> None:
        if self.topic is None and self.filter is None:
            raise ConfigurationError(
                "MqttRouting needs a topic (to write, or to read one topic) "
                "or a filter (to read with wildcards)"
            )
        if self.topic is not None:
            validate_topic_name(self.topic)
        if self.filter is not None:
            validate_filter(self.filter)
        object.__setattr__(self, "qos", MqttQos.parse(self.qos))
        if not isinstance(self.retained, bool):
            raise ConfigurationError(f"retained must be True or False, got {self.retained!r}")

    def subscription_filter(self) -> str:
        """The filter a reader of this routing subscribes with."""
        if self.filter is not None:
            return self.filter
        assert self.topic is not None  # guaranteed by __post_init__
        return self.topic

    @classmethod
    def delivered(cls, topic: str, qos: int, retained: bool) -> MqttRouting:
        """The routing of a message as the broker delivered it (no re-validation)."""
        routing: Any = object.__new__(cls)
        object.__setattr__(routing, "topic", topic)
        object.__setattr__(routing, "qos", _QOS[qos] if qos < 2 else MqttQos.AT_LEAST_ONCE)
        object.__setattr__(routing, "retained", retained)
        object.__setattr__(routing, "filter", None)
        result: MqttRouting = routing
        return result


_QOS = (MqttQos.AT_MOST_ONCE, MqttQos.AT_LEAST_ONCE)
