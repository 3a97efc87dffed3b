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


class LentIds:
    """The identifiers the session engine (paho: SUBSCRIBE, UNSUBSCRIBE) took from
    ``ids`` and has in flight; each goes back on its acknowledgement, and all of
    them when the connection ends (their acknowledgements died with it)."""

    __slots__ = ("_ids", "_out")

    def __init__(self, ids: PacketIds) -> None:
        self._ids = ids
        self._out: set[int] = set()

    def take(self) -> int:
        packet_id = self._ids.take()
        self._out.add(packet_id)
        return packet_id

    def acknowledged(self, packet_id: int) -> None:
        if packet_id in self._out:
            self._out.discard(packet_id)
            self._ids.release(packet_id)

    def connection_lost(self) -> None:
        for packet_id in self._out:
            self._ids.release(packet_id)
        self._out.clear()
