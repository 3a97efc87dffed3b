"""Whether the broker is still there: complete packets in, within 1.5 x keep-alive.

Rules of this module:
- pure: no paho, no I/O and no clock of its own (the caller passes ``now``);
- liveness counts complete packets only (a PINGRESP, a PUBLISH, ...), never a byte
  trickle: the data plane counts whole packets as it splits the stream, and this
  looks at that count (``test_4_an_idle_healthy_link_stays_up``); paho's own check
  is fooled by a trickle, which refreshes its byte clock and re-arms its PINGREQ.
"""

from __future__ import annotations


class Liveness:
    __slots__ = ("_keep_alive", "_last_packet_in", "_packets_seen")

    def __init__(self, keep_alive: float) -> None:
        self._keep_alive = keep_alive
        self._last_packet_in = 0.0  # monotonic time of the last complete inbound packet
        self._packets_seen = 0  # the data plane's count of complete packets, last looked at

    def connected(self, now: float) -> None:
        """A new connection: its silence counts from now."""
        self._last_packet_in = now

    def note(self, packets_received: int, now: float) -> None:
        """The data plane's count of complete packets; a change is a sign of life."""
        if packets_received != self._packets_seen:
            self._packets_seen = packets_received
            self._last_packet_in = now

    def deadline(self) -> float | None:
        """When the link counts as dead without another packet (None: no keep-alive)."""
        if not self._keep_alive:
            return None
        return self._last_packet_in + 1.5 * self._keep_alive

    def silent(self, now: float) -> bool:
        """No complete packet within 1.5 x keep-alive: the link is dead."""
        keep_alive = self._keep_alive
        return bool(keep_alive) and now - self._last_packet_in >= 1.5 * keep_alive
