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
- the ledger and each reader's list of what it handed out (``MqttReader.hold_taken``
  and ``release_taken``) are the only books: the asyncio reader keeps none of its own,
  it hands its messages out through its thread reader's;
- ``release`` may be called from any thread (a reader's caller); the sidecar alone
  counts the releases and writes the PUBACKs (``due``), and it is woken when the
  first release waits;
- PUBACKs leave in the order the PUBLISHes came (MQTT-4.6.0-2): a message that owes
  nothing more waits for the older ones;
- a message skipped, held for no reader, or discarded by a closed reader owes that
  reader nothing (it is acknowledged in turn);
- a message a full reader queue dropped (REQ_0261: dropped *for that delivery*,
  counted, Degraded) is withheld: that reader's release never comes on this
  connection, so neither does its PUBACK nor any later one (MQTT-4.6.0-2), and the
  broker keeps them all. Once that reader has drained (``drained``) the sidecar
  resumes the session (``resume_wanted``: DISCONNECT, connect again at once), the
  broker sends every unacknowledged message again with DUP set (MQTT-4.4.0-1), and
  the copy of a withheld one goes to the readers that dropped it, only them; the
  others already have theirs. So a persistent session at QoS 1 loses nothing to a
  full queue, at the price of one reconnect per overflow episode. Only drops of the
  current connection ask for a resume: one the broker does not send again never
  makes the connector reconnect twice for it. A reader closed meanwhile owes nothing;
- a broker must send the unacknowledged messages again on the resumed session, before
  new ones; amqtt 0.12 does not (measured: none of 5 in flight came again, after a
  DISCONNECT or a dropped socket). So the first new PUBLISH (DUP clear) after a resume,
  or ``connect_timeout`` without a resend (the sidecar's clock), ends the wait:
  withheld messages not sent again by then are counted in ``unresent``, logged once,
  and from then on this broker is not asked again: a drop is acknowledged in turn and
  lost, as a clean session's is (no reconnect that buys nothing, no PUBACK stalled);
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

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

#: A reader, as this module sees it: something to hand a message to again (the data
#: plane's ``InboundSink``); compared by identity.
Reader = object

log = logging.getLogger("taktora_connector.mqtt")

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
        # Withheld: what a full queue dropped, by token, with the readers that dropped
        # it (under the lock: a reader's close releases its share from its own thread).
        self._lost: dict[AckToken, list[Reader]] = {}
        self._dropping: set[Reader] = set()  # readers that dropped on this connection
        #: The sidecar should resume the session (a reader that dropped has drained).
        self.resume_wanted = False
        #: The last ``expect`` was the resend of a withheld message: it and its readers.
        self.again: tuple[AckToken, list[Reader]] | None = None
        #: Copies of withheld messages handed to the readers that had dropped them.
        self.redelivered = 0
        #: Messages withheld so far (one per message and reader that dropped it).
        self.withheld = 0
        #: Withheld messages the broker did not send again on the resumed session.
        self.unresent = 0
        #: False once the broker was seen not to send withheld messages again.
        self.broker_resends = True
        self._checking = False  # resumed: the first new PUBLISH ends the resends

    # -- the sidecar ------------------------------------------------------------------------

    def expect(self, packet_id: int, topic: bytes, payload: bytes, dup: bool) -> AckToken | None:
        """A QoS 1 PUBLISH arrived: its token, owing nothing until readers queue it; or
        None when it is the resend of one the readers already have (not to be queued)."""
        earlier = self._earlier
        if earlier:
            if self._checking and not dup:
                self._resends_over()
            known = earlier.pop(packet_id, None)
            if known is not None and dup and known.topic == topic and known.payload == payload:
                self.resends_recognised += 1
                self._pending.append(known)
                if self._lost:
                    with self._lock:
                        readers = self._lost.pop(known, None)
                    if readers:
                        self.redelivered += len(readers)
                        self.again = (known, readers)
                return None
            if known is not None and self._lost:
                # Not a resend of it: the broker no longer has that one in flight.
                with self._lock:
                    self._lost.pop(known, None)
        token = AckToken(packet_id, topic, payload)
        self._pending.append(token)
        return token

    @property
    def checking(self) -> bool:
        """A resumed session waits for the withheld messages to come again."""
        return self._checking

    def resends_over(self) -> None:
        """The sidecar's deadline for resends passed (none came for ``connect_timeout``)."""
        if self._checking:
            self._resends_over()

    def _resends_over(self) -> None:
        """The first new PUBLISH after a resume, or the deadline: what was withheld and
        has not come again will not come (module rules)."""
        self._checking = False
        resent = set(self._pending)  # this connection's: resends so far, and nothing new
        with self._lock:
            unsent = [token for token in self._lost if token not in resent]
            for token in unsent:
                # Owes those readers nothing now (a late copy is acknowledged, not queued).
                self._released.extend([token] * len(self._lost.pop(token)))
        if unsent:
            self.unresent += len(unsent)
            self.broker_resends = False
            log.warning(
                "the broker did not send again %d QoS 1 message(s) withheld after a full "
                "reader queue dropped them (it breaks MQTT-4.4.0-1): they are lost; later "
                "drops on this connector are acknowledged and lost, as in a clean session",
                len(unsent),
            )

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
        with self._lock:
            self._dropping.clear()
            self.resume_wanted = False

    def session_resumed(self, present: bool) -> None:
        """CONNACK: without the session, nothing kept aside comes again."""
        self._checking = present and bool(self._lost)
        if not present:
            self._earlier.clear()
            with self._lock:
                gone, self._lost = len(self._lost), {}
            if gone:
                self.unresent += gone
                log.warning(
                    "the broker did not keep the session: %d QoS 1 message(s) withheld "
                    "after a full reader queue dropped them will not come again",
                    gone,
                )

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

    def withhold(self, reader: Reader, tokens: Iterable[AckToken]) -> None:
        """``reader``'s full queue dropped these: its release is withheld (module rules)."""
        if not self.broker_resends:
            self.release(tokens)  # it would not send them again: lost, acknowledged
            return
        with self._lock:
            if self._sealed:
                return
            for token in tokens:
                self._lost.setdefault(token, []).append(reader)
                self.withheld += 1
            self._dropping.add(reader)

    def drained(self, reader: Reader) -> None:
        """``reader``'s queue is empty after an overflow: if it dropped on this
        connection, the session is to be resumed so the broker sends those again."""
        with self._lock:
            if reader not in self._dropping or self._sealed:
                return
            self._dropping.clear()
            self.resume_wanted = True
        self._wake()

    def reader_closed(self, reader: Reader) -> None:
        """``reader`` is gone: what it dropped owes it nothing any more."""
        released: list[AckToken] = []
        with self._lock:
            self._dropping.discard(reader)
            for token, readers in list(self._lost.items()):
                while reader in readers:
                    readers.remove(reader)
                    released.append(token)
                if not readers:
                    del self._lost[token]
        if released:
            self.release(released)

    @property
    def withholding(self) -> int:
        """Messages withheld and not yet handed again to the readers that dropped them."""
        return len(self._lost)

    def after_fork(self) -> None:
        """In a forked child: a new lock (a parent thread may have held this one), and
        sealed: the connection, and its acknowledgements, are the parent's."""
        self._lock = threading.Lock()
        self._sealed = True

    def seal(self) -> None:
        """The connector is closing: releases from now on are ignored (see the module)."""
        with self._lock:
            self._sealed = True
