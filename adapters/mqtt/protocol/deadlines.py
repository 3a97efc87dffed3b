"""The clock rules of one connection, in one place: when waiting ends.

- CONNACK is due within ``connect_timeout`` of the CONNECT (section 3.2 leaves "a
  reasonable amount of time" to the client; without a bound a broker that accepts
  TCP and says nothing would hold the connector in Connecting for ever);
- while connected, a complete packet from the broker is due within 1.5 x
  keep-alive (the bound section 3.1.2.10 sets for the broker, kept by the client too;
  paho's PINGREQs make an idle healthy link answer with PINGRESP, ``liveness``);
- a resumed persistent session's resends are due within ``connect_timeout`` of its
  CONNACK (``inbound_acks``: a broker that does not send them again by then is
  not waited for).

Rules of this module:
- pure: no I/O, no threads, no clock of its own; the caller passes ``now`` (a
  monotonic time) and acts on what it is told: ``expired`` names why the connection
  must close, ``resends_over`` says the resend wait ended, ``next_deadline`` is when
  the caller must look again (its sleep is bounded by it);
- it decides, the gateway only does: the gateway closes, reconnects and asks the
  acknowledgement ledger, never compares a time with a bound itself.
"""

from __future__ import annotations

from .liveness import Liveness


class ConnectionDeadlines:
    __slots__ = ("_connack_due", "_connect_timeout", "_keep_alive", "_resends_due", "liveness")

    def __init__(self, connect_timeout: float, keep_alive: float) -> None:
        self._connect_timeout = connect_timeout
        self._keep_alive = keep_alive
        self._connack_due: float | None = None
        self._resends_due: float | None = None
        #: Complete packets in, within 1.5 x keep-alive (fed by the data plane's count).
        self.liveness = Liveness(keep_alive)

    def opened(self, now: float) -> None:
        """CONNECT went out on a new connection: CONNACK is due, silence counts from now."""
        self._connack_due = now + self._connect_timeout
        self._resends_due = None
        self.liveness.connected(now)

    def accepted(self, now: float, awaiting_resends: bool) -> None:
        """CONNACK accepted the connection; ``awaiting_resends``: a resumed session whose
        withheld messages the broker must send again, from now on."""
        self._connack_due = None
        self._resends_due = now + self._connect_timeout if awaiting_resends else None

    def closed(self) -> None:
        """The connection ended: nothing is due on it any more."""
        self._connack_due = None
        self._resends_due = None

    def expired(self, now: float, connected: bool) -> str | None:
        """Why the connection must close now (a deadline passed), or None."""
        if connected and self.liveness.silent(now):
            limit = 1.5 * self._keep_alive
            return f"keep-alive: no packet from the broker within {limit:g} s"
        if self._connack_due is not None and now >= self._connack_due:
            return f"no CONNACK within {self._connect_timeout:g} s"
        return None

    def resends_over(self, now: float, still_waiting: bool) -> bool:
        """True once, when the wait for a resumed session's resends ends by time;
        ``still_waiting`` False (the ledger stopped waiting) ends it without a word."""
        due = self._resends_due
        if due is None:
            return False
        if not still_waiting:
            self._resends_due = None
            return False
        if now >= due:
            self._resends_due = None
            return True
        return False

    def next_deadline(self, connected: bool) -> float | None:
        """The earliest time something is due, or None."""
        due = [d for d in (self._connack_due, self._resends_due) if d is not None]
        silent_at = self.liveness.deadline()
        if connected and silent_at is not None:
            due.append(silent_at)
        return min(due) if due else None
