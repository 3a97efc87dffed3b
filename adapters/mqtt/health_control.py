"""From connection phase and degradation latches to health transitions.

Rules of this module:
- health is *derived*: ``desired_health`` maps the connection phase and the set
  of tripped latches to one state (a lost connection shows as ``Connecting`` or
  ``Down`` whatever latch is set; latches show again once connected), and
  ``path`` finds the legal steps from the current state to it
  (``Up -> Connecting`` goes through ``Degraded("connection lost")``, each step
  broadcast);
- a latch (outbound backpressure, inbound drops) trips once when its condition
  starts and stays tripped until the path that caused it drained (outbound: the
  bridge, the in-flight window and unwritten bytes all empty; inbound: every
  reader that dropped has emptied its queue); clearing it re-arms it;
- inbound drops trip their latch when the drops counted since it was armed
  reach ``inbound_drop_threshold``; the reason names the cumulative total;
- ``HealthController`` is the only writer of a connector's health and takes one
  lock per change, so events reach subscribers in the order they happened.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Hashable

from taktora_connector.adapters.health import HealthBroadcaster
from taktora_connector.domain import (
    Connecting,
    ConnectorHealth,
    Degraded,
    Down,
    HealthKind,
    Up,
    is_legal,
)

CONNECTION_LOST = "connection lost"
OUTBOUND_BACKPRESSURE = "outbound backpressure"


class Phase(enum.Enum):
    """Where the connection is, as the sidecar sees it."""

    CONNECTING = "connecting"  # also: created and not started yet, or backing off
    CONNECTED = "connected"  # CONNACK accepted
    DOWN = "down"  # gave up, refused, or closed


def desired_health(
    phase: Phase,
    latch_reasons: list[str],
    current: ConnectorHealth,
    *,
    since: int,
    reason: str,
    reconnecting: bool = False,
) -> ConnectorHealth:
    """The health that phase and latches call for (keeping ``current`` if it already is).

    ``reconnecting``: the connection was lost and is not back yet; that shows as
    ``Connecting`` whatever latch is set (the latches show again once connected).
    """
    if phase is Phase.DOWN:
        return current if isinstance(current, Down) else Down(reason, since)
    if reconnecting and phase is Phase.CONNECTING:
        return current if isinstance(current, Connecting) else Connecting(since)
    if latch_reasons:
        return current if isinstance(current, Degraded) else Degraded(latch_reasons[0])
    if phase is Phase.CONNECTED:
        return Up()
    return current if isinstance(current, Connecting) else Connecting(since)


def path(current: ConnectorHealth, target: ConnectorHealth) -> list[ConnectorHealth]:
    """The legal steps from ``current`` to ``target`` (empty when already there)."""
    if current.kind is target.kind:
        return []
    if is_legal(current.kind, target.kind):
        return [target]
    if current.kind is HealthKind.UP:  # Up -> Connecting: the loss is broadcast first
        return [Degraded(CONNECTION_LOST), target]
    if current.kind is HealthKind.DOWN:  # Down -> Up/Degraded: reconnecting first
        return [Connecting(time.monotonic_ns()), target]
    raise AssertionError(f"no path from {current} to {target}")  # pragma: no cover


class HealthController:
    """Keeps one connector's health in line with its phase and latches."""

    def __init__(self, broadcaster: HealthBroadcaster, inbound_drop_threshold: int) -> None:
        self._broadcaster = broadcaster
        self._lock = threading.RLock()
        self._phase = Phase.CONNECTING
        self._phase_since = time.monotonic_ns()
        self._reconnecting = False
        self._down_reason = ""
        self._latches: dict[Hashable, str] = {}
        self._threshold = inbound_drop_threshold
        self._drops_since_armed = 0
        self._drops_total = 0
        self._sends_refused = 0
        self._overflowed_readers: set[Hashable] = set()

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def sends_refused(self) -> int:
        """Sends the outbound bridge refused for being full (``BackPressure``) so far."""
        return self._sends_refused

    @property
    def inbound_drops(self) -> int:
        """All inbound messages this connector dropped so far."""
        return self._drops_total

    def set_phase(self, phase: Phase, reason: str = "") -> None:
        with self._lock:
            if phase is not self._phase:
                if self._phase is Phase.CONNECTED:
                    self._reconnecting = True  # a loss: visible whatever latch is set
                elif phase is Phase.CONNECTED:
                    self._reconnecting = False
                self._phase = phase
                self._phase_since = time.monotonic_ns()
            if phase is Phase.DOWN:
                self._down_reason = reason
            self._apply()

    def trip_outbound(self) -> bool:
        """The outbound bridge refused a message; return whether this started an episode."""
        with self._lock:
            self._sends_refused += 1
            if OUTBOUND_BACKPRESSURE in self._latches:
                return False
            self._latches[OUTBOUND_BACKPRESSURE] = OUTBOUND_BACKPRESSURE
            self._apply()
            return True

    @property
    def outbound_latched(self) -> bool:
        return OUTBOUND_BACKPRESSURE in self._latches

    def outbound_drained(self) -> None:
        if OUTBOUND_BACKPRESSURE in self._latches:
            with self._lock:
                self._latches.pop(OUTBOUND_BACKPRESSURE, None)
                self._apply()

    def inbound_dropped(self, reader: Hashable, count: int = 1) -> None:
        """``count`` inbound messages for ``reader`` were dropped (one batch counts as
        ``count`` single drops: the reason names the drop that reached the threshold)."""
        with self._lock:
            total = self._drops_total
            self._drops_total = total + count
            self._overflowed_readers.add(reader)
            if "inbound" in self._latches:
                return
            needed = self._threshold - self._drops_since_armed
            self._drops_since_armed += count
            if count >= needed:
                self._latches["inbound"] = f"dropped {total + max(needed, 1)} inbound frames"
                self._apply()

    def inbound_drained(self, reader: Hashable) -> None:
        """``reader``'s queue emptied (or it closed) after it had dropped messages."""
        with self._lock:
            self._overflowed_readers.discard(reader)
            if "inbound" in self._latches and not self._overflowed_readers:
                del self._latches["inbound"]
                self._drops_since_armed = 0
                self._apply()

    def _apply(self) -> None:
        current = self._broadcaster.state
        target = desired_health(
            self._phase,
            list(self._latches.values()),
            current,
            since=self._phase_since,
            reason=self._down_reason,
            reconnecting=self._reconnecting,
        )
        for step in path(current, target):
            self._broadcaster.move(step)
