"""The ports of the hexagon: what applications and the conformance kit rely on.

Protocols only; they import nothing but the domain.
"""

from .channels import ChannelReader, ChannelWriter
from .codec import PayloadCodec
from .connector import Connector
from .health import HealthSubscription

__all__ = [
    "ChannelReader",
    "ChannelWriter",
    "Connector",
    "HealthSubscription",
    "PayloadCodec",
]
