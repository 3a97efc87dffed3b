"""When a persistent session acknowledges a QoS 1 message: once the application is done with it.

With ``clean_session=False`` the broker keeps what the connector has not
acknowledged and sends it again on the next connection, also to a restarted
process. Acknowledging on arrival (as a clean session does) would let a process
that dies with messages in its reader queues lose them; so here the PUBACK waits
until every reader the message went to has handed it to the application and the
application came back to that reader for more (or closed it).

Rules of this module:
- one ``AckToken`` per QoS 1 message of the current connection, made by the sidecar
  in the order received; it owes one release per reader that queued it;
- ``release`` may be called from any thread (a reader's caller); the sidecar alone
  counts the releases and writes the PUBACKs (``due``), and it is woken when the
  first release waits;
- PUBACKs leave in the order the PUBLISHes came (MQTT-4.6.0-2): a message that owes
  nothing more waits for the older ones;
- a message dropped by a full reader queue, skipped, held for no reader, or discarded
  by a closed reader owes that reader nothing (it is acknowledged in turn: the loss
  is counted where it happens, as before);
- when the connection ends, what was not acknowledged is kept aside: the broker sends
  it again on the next connection, DUP set and with its original packet identifier
  (MQTT-4.4.0-1). Such a resend (same identifier, topic and payload) is not queued a
  second time: the old token takes its place in the new connection's order, and its
  PUBACK goes once the readers are done with the copy they already have. A session the
  broker did not keep (CONNACK without session present) clears what was kept aside;
- ``seal`` (the connector is closing) refuses later releases: what the application
  never took stays unacknowledged and comes again with the next session.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

#: The bytes of a PUBACK before its packet identifier.
_PUBACK: Final = b"\x40\x02"


class AckToken:
    """One received QoS 1 message: its identifier, what it was (to recognise a resend),
    and the releases it still waits for."""

    __slots__ = ("owed", "packet_id", "payload", "topic")

    def __init__(self, packet_id: int, topic: bytes, payload: bytes) -> None:
        self.packet_id = packet_id
        self.topic = topic
        self.payload = payload
        self.owed = 0

    def __repr__(self) -> str:
        return f"<AckToken {self.packet_id} owes {self.owed}>"


class InboundAcks:
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._pending: deque[AckToken] = deque()  # sidecar only, in the order received
        self._earlier: dict[int, AckToken] = {}  # of lost connections, not acknowledged
        #: Resends of messages the readers already had, not queued again.
        self.resends_recognised = 0
        self._lock = threading.Lock()
        self._released: list[AckToken] = []  # any thread appends, the sidecar takes
        self._sealed = False

    # -- the sidecar ------------------------------------------------------------------------

    def expect(self, packet_id: int, topic: bytes, payload: bytes, dup: bool) -> AckToken | None:
        """A QoS 1 PUBLISH arrived: its token, owing nothing until readers queue it; or
        None when it is the resend of one the readers already have (not to be queued)."""
        earlier = self._earlier
        if earlier:
            known = earlier.pop(packet_id, None)
            if known is not None and dup and known.topic == topic and known.payload == payload:
                self.resends_recognised += 1
                self._pending.append(known)
                return None
            # Not a resend of it: the broker no longer has that one in flight.
        token = AckToken(packet_id, topic, payload)
        self._pending.append(token)
        return token

    @property
    def waiting(self) -> bool:
        """A release waits to be counted (the sidecar has work)."""
        return bool(self._released)

    def due(self) -> bytes:
        """Count the releases; the PUBACKs now due, oldest first (may be empty)."""
        if self._released:
            with self._lock:
                released, self._released = self._released, []
            for token in released:
                token.owed -= 1
        pending = self._pending
        if not pending or pending[0].owed > 0:
            return b""
        out: list[bytes] = []
        while pending and pending[0].owed <= 0:
            out.append(_PUBACK + pending.popleft().packet_id.to_bytes(2, "big"))
        return b"".join(out)

    def connection_lost(self) -> None:
        """The broker sends the unacknowledged messages again: keep their tokens aside."""
        for token in self._pending:
            self._earlier[token.packet_id] = token
        self._pending.clear()

    def session_resumed(self, present: bool) -> None:
        """CONNACK: without the session, nothing kept aside comes again."""
        if not present:
            self._earlier.clear()

    @property
    def unacknowledged(self) -> int:
        """Messages of this connection not yet acknowledged (for diagnostics and tests)."""
        return len(self._pending)

    # -- any thread ---------------------------------------------------------------------------

    def release(self, tokens: Iterable[AckToken]) -> None:
        """A reader is done with these messages (one release each)."""
        with self._lock:
            if self._sealed:
                return
            first = not self._released
            self._released.extend(tokens)
            if not self._released:
                return
        if first:
            self._wake()

    def after_fork(self) -> None:
        """In a forked child: a new lock (a parent thread may have held this one), and
        sealed: the connection, and its acknowledgements, are the parent's."""
        self._lock = threading.Lock()
        self._sealed = True

    def seal(self) -> None:
        """The connector is closing: releases from now on are ignored (see the module)."""
        with self._lock:
            self._sealed = True
