"""Packet identifiers: one allocator for every packet in flight on a connection.

MQTT-2.3.1-2: a packet identifier in use by one unacknowledged packet must not
be used by another, whatever their types. The data plane's QoS 1 PUBLISHes and
paho's SUBSCRIBE and UNSUBSCRIBE packets share one connection, so they take
their identifiers here (paho through the gateway, which installs ``take`` as
paho's generator).

Rules of this module:
- ``take`` never returns an identifier that is in use, nor 0 (MQTT-2.3.1-1);
- identifiers cycle through 1..65535 so a freed one is not reused at once
  (a late acknowledgement of an old packet cannot complete a new one);
- only the sidecar thread calls it.
"""

from __future__ import annotations

from typing import Final

LARGEST: Final = 65_535


class PacketIdsExhausted(Exception):
    """All 65,535 identifiers are in flight."""


class PacketIds:
    __slots__ = ("_last", "_used")

    def __init__(self) -> None:
        self._used: set[int] = set()
        self._last = 0

    def take(self) -> int:
        used = self._used
        if len(used) >= LARGEST:
            raise PacketIdsExhausted("every packet identifier is in flight")
        candidate = self._last
        while True:
            candidate = candidate % LARGEST + 1
            if candidate not in used:
                used.add(candidate)
                self._last = candidate
                return candidate

    def release(self, packet_id: int) -> None:
        self._used.discard(packet_id)

    def in_use(self, packet_id: int) -> bool:
        return packet_id in self._used

    def __len__(self) -> int:
        return len(self._used)
