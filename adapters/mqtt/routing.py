"""How an MQTT channel is addressed: topic, QoS, retained flag and read filter.

Rules of this module:
- QoS 0 and 1 only (REQ_0252); asking for 2 is a ``ConfigurationError`` that
  says QoS 2 is not supported yet;
- a routing needs a topic, a filter or both; with both, the filter is for
  reading and the topic for writing; whether a channel may use the routing is
  decided when a writer or reader is created;
- the routing of a received message is built by the gateway from trusted
  broker data through ``MqttRouting.delivered`` without re-validation;
- ``share_group`` makes a reader's subscription shared
  (``$share/<group>/<filter>``): the broker hands each message to one member of
  the group; the reader still matches topics against the filter without the
  prefix. A group name is non-empty UTF-8 without ``/``, ``+``, ``#`` or NUL.
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
    share_group: str | None = None

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
        for value in (self.topic, self.filter):
            if value is not None and value.startswith(SHARE_PREFIX):
                raise ConfigurationError(
                    f"{value!r} starts with {SHARE_PREFIX!r}; name the plain filter and "
                    "give the group as MqttRouting(share_group=...)"
                )
        if self.share_group is not None:
            _validate_share_group(self.share_group)
            validate_filter(self.broker_filter())  # the whole filter must fit MQTT's limit
        object.__setattr__(self, "qos", MqttQos.parse(self.qos))
        if not isinstance(self.retained, bool):
            raise ConfigurationError(f"retained must be True or False, got {self.retained!r}")
        if self.retained and self.topic is None:
            raise ConfigurationError(
                "retained=True is a flag for publishing, and a routing with only a filter "
                "can only read; give it a topic to publish retained messages"
            )

    def subscription_filter(self) -> str:
        """The filter a reader of this routing matches received topics against."""
        if self.filter is not None:
            return self.filter
        assert self.topic is not None  # guaranteed by __post_init__
        return self.topic

    def broker_filter(self) -> str:
        """The filter a reader of this routing subscribes with at the broker."""
        if self.share_group is None:
            return self.subscription_filter()
        return f"{SHARE_PREFIX}{self.share_group}/{self.subscription_filter()}"

    @classmethod
    def delivered(cls, topic: str, qos: int, retained: bool) -> MqttRouting:
        """The routing of a message as the broker delivered it (no re-validation)."""
        routing: Any = object.__new__(cls)
        object.__setattr__(routing, "topic", topic)
        object.__setattr__(routing, "qos", _QOS[qos] if qos < 2 else MqttQos.AT_LEAST_ONCE)
        object.__setattr__(routing, "retained", retained)
        object.__setattr__(routing, "filter", None)
        object.__setattr__(routing, "share_group", None)
        result: MqttRouting = routing
        return result


_QOS = (MqttQos.AT_MOST_ONCE, MqttQos.AT_LEAST_ONCE)

#: What starts a shared subscription's filter (mosquitto, EMQX, HiveMQ and VerneMQ
#: accept it from MQTT 3.1.1 clients too).
SHARE_PREFIX = "$share/"


def unshared(broker_filter: str) -> str:
    """The filter without a ``$share/<group>/`` prefix (a group holds no '/')."""
    if broker_filter.startswith(SHARE_PREFIX):
        return broker_filter.split("/", 2)[2]
    return broker_filter


def _validate_share_group(group: object) -> None:
    if not isinstance(group, str):
        raise ConfigurationError(f"share_group must be a str or None, got {type(group).__name__}")
    if not group:
        raise ConfigurationError("share_group must not be empty; use None for a plain subscription")
    bad = [c for c in ("/", "+", "#", "\x00") if c in group]
    if bad:
        raise ConfigurationError(
            f"share_group {group!r} contains {', '.join(map(repr, bad))}; a share group "
            "name may not contain '/', '+', '#' or NUL"
        )
    try:
        group.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ConfigurationError(
            f"share_group {group!r} is not valid UTF-8 text ({err.reason})"
        ) from None
