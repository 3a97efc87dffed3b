"""The routing marker: how a connector addresses one channel.

Each connector ships its own routing type (MQTT: topic, QoS, retained flag).
The domain only needs to know that a value *is* a routing, so the marker has no
methods. A routing type should be an immutable value (a frozen dataclass).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Routing(Protocol):
    """Marker for a connector's channel addressing; it has no required members."""
