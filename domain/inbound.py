"""What happened to one inbound message offered to a bounded bridge.

``Dropped.count`` is the channel's running total of drops, so each return value
alone tells how many messages that channel has lost so far.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sent:
    """The message was queued for the reader."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """The reader's bridge was full: the new message was dropped."""

    count: int


InboundOutcome = Sent | Dropped

SENT = Sent()
