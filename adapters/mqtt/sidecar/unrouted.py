"""Inbound messages that no reader matches: counted, and for a persistent session
held for the first reader that matches (issue 9 point 10).

Rules of this module:
- it runs on the sidecar thread only and never imports paho;
- every such message is counted (``count``);
- with a clean session the broker keeps nothing for later, and a retained message
  comes again in answer to the reader's SUBSCRIBE: those are only counted;
- a message larger than ``DEFAULT_MAX_PAYLOAD_SIZE`` (a reader's default limit) is
  skipped in the stream as it arrives (``DataPlane``) and only counted: memory
  stays bounded by ``capacity`` times that size;
- otherwise the last ``capacity`` of them are held (older ones go first) and, once
  the set of readers changes, handed in order to the readers that match them;
- a held message was acknowledged on arrival (holding its PUBACK back would stall every
  later one, MQTT-4.6.0-2): a process that dies loses what it held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from taktora_connector.adapters.mqtt.records import Inbound

from .data_plane import DropCounter, Match, Skipped


class UnroutedHold:
    def __init__(
        self,
        match: Match,
        readers: Callable[[], int],
        drops: DropCounter,
        capacity: int,
        keep: bool,
    ) -> None:
        self._match = match
        self._readers = readers  # how many filters are registered: a change means new readers
        self._drops = drops
        self._keep = keep
        self._held: deque[Inbound] = deque(maxlen=capacity)
        self._seen = 0  # readers() when the held messages were last routed
        #: Inbound messages that matched no reader when they arrived.
        self.count = 0

    def hold(self, payload: bytes, topic: str, qos: int, retain: bool, timestamp_ns: int) -> None:
        """The data plane's callback for a message no reader matches."""
        self.count += 1
        if not self._keep or retain or isinstance(payload, Skipped):
            return
        self._held.append(Inbound(payload, topic, qos, retain, timestamp_ns, None))
        self._seen = self._readers()

    def route_if_changed(self) -> None:
        """Hand held messages to the readers that match them now; keep the rest."""
        if not self._held or self._readers() == self._seen:
            return
        self._seen = self._readers()
        kept: deque[Inbound] = deque(maxlen=self._held.maxlen)
        for item in self._held:
            readers = self._match(item.topic)
            if not readers:
                kept.append(item)
            for reader in readers:
                dropped = reader.deliver_many([item])
                if dropped:
                    self._drops.inbound_dropped(reader, dropped)
                    reader.settle_drop()
        self._held = kept
