"""The SUBSCRIBE side of the session: batches out, SUBACKs in, and the hold on
new PUBLISHes while a SUBSCRIBE is unanswered.

The gateway hands it the filter changes and two callables that ask the session
engine to send a SUBSCRIBE (returning its packet identifier, or None if it was
not sent) or an UNSUBSCRIBE; it hands back each SUBACK's refusals.

Rules of this module:
- pure: no paho, no I/O, no threads and no clock of its own (the caller passes
  ``now``, a monotonic time); the readers are reached through ``fail_readers``;
- filters go at most ``SUBSCRIBE_BATCH`` to a packet; a refused filter fails its
  readers with ``StackError`` (sticky: ``Reader.fail``);
- new PUBLISHes wait while a SUBSCRIBE is unanswered, for at most ``hold_for``
  (``connect_timeout``), so a reader created before a send gets the message;
- a broker that hangs up while SUBSCRIBEs are unanswered makes the oldest one's
  filters suspects, sent alone from then on; a suspect sent alone and answered by
  a hang-up again is poisoned: its readers fail and it is never subscribed again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from taktora_connector.domain import ConnectorError, StackError

log = logging.getLogger("taktora_connector.mqtt")

#: Filters per SUBSCRIBE or UNSUBSCRIBE packet.
SUBSCRIBE_BATCH: Final = 100


@dataclass(frozen=True, slots=True)
class FilterChange:
    """One step for the broker: subscribe ``topic_filter`` at ``qos``, or unsubscribe (None)."""

    topic_filter: str
    qos: int | None


class SubscribeHandshake:
    def __init__(
        self, fail_readers: Callable[[str, ConnectorError], None], hold_for: float
    ) -> None:
        self._fail_readers = fail_readers
        self._hold_for = hold_for
        self._unanswered: dict[int, list[str]] = {}  # packet id -> filters, in the order sent
        self._hold_until = 0.0  # new PUBLISHes wait for SUBACKs until then
        #: Filters whose SUBSCRIBE was the oldest unanswered one when the broker hung up
        #: (sent alone from then on); a second strike poisons the filter.
        self._suspects: set[str] = set()
        self._poisoned: set[str] = set()
        self._violation: str | None = None

    def take_violation(self) -> str | None:
        """The protocol violation the last SUBACK was, once; ``None`` if it was none."""
        violation, self._violation = self._violation, None
        return violation

    def send(
        self,
        changes: list[FilterChange],
        subscribe: Callable[[list[tuple[str, int]]], int | None],
        unsubscribe: Callable[[list[str]], object],
        now: float,
    ) -> None:
        wanted = [(c.topic_filter, c.qos) for c in changes if c.qos is not None]
        unwanted = [c.topic_filter for c in changes if c.qos is None]
        if self._poisoned:
            for topic_filter, _ in wanted:
                if topic_filter in self._poisoned:  # also a new reader of such a filter
                    self._fail_readers(topic_filter, _poison_error(topic_filter))
            wanted = [item for item in wanted if item[0] not in self._poisoned]
        suspects = self._suspects
        chunks = [[item] for item in wanted if item[0] in suspects]  # alone: to isolate
        rest = [item for item in wanted if item[0] not in suspects]
        chunks += [rest[i : i + SUBSCRIBE_BATCH] for i in range(0, len(rest), SUBSCRIBE_BATCH)]
        for chunk in chunks:
            packet_id = subscribe(chunk)
            if packet_id is not None:
                self._unanswered[packet_id] = [f for f, _ in chunk]
                self._hold_until = now + self._hold_for
        for start in range(0, len(unwanted), SUBSCRIBE_BATCH):
            unsubscribe(unwanted[start : start + SUBSCRIBE_BATCH])

    def answered(self, packet_id: int, refused: Iterable[bool]) -> None:
        """A SUBACK: one refusal flag per filter of that SUBSCRIBE, in order.

        A SUBACK with more or fewer return codes than its SUBSCRIBE had filters breaks
        MQTT-3.8.4-5: nothing of it is believed, and ``take_violation`` tells the
        gateway to close the connection (MQTT-4.8.0-1)."""
        filters = self._unanswered.pop(packet_id, None)
        flags = list(refused)
        if filters is None:
            self._violation = (
                f"a SUBACK for packet {packet_id}, which is no SUBSCRIBE awaiting its "
                "answer (MQTT-3.8.4-2: a SUBACK carries its SUBSCRIBE's identifier)"
            )
            return
        if len(flags) != len(filters):
            self._violation = (
                f"the SUBACK for packet {packet_id} has {len(flags)} return code(s) for a "
                f"SUBSCRIBE of {len(filters)} filter(s) (MQTT-3.8.4-5)"
            )
            return
        for topic_filter, failed in zip(filters, flags, strict=True):
            self._suspects.discard(topic_filter)
            if failed:
                log.warning("broker refused the subscription to %r", topic_filter)
                error = StackError(f"broker refused the subscription to {topic_filter!r}")
                self._fail_readers(topic_filter, error)

    def publishing_held(self, now: float) -> bool:
        """New PUBLISHes wait while a SUBSCRIBE is unacknowledged (for at most
        ``hold_for``): a reader created before a send then gets the message also
        from a broker that handles a connection's packets concurrently (amqtt)."""
        return bool(self._unanswered) and now < self._hold_until

    @property
    def awaiting(self) -> bool:
        """A SUBSCRIBE is unanswered."""
        return bool(self._unanswered)

    def connection_lost(self, was_connected: bool, planned: bool = False) -> None:
        """The connection ended: unanswered SUBSCRIBEs are answered by the hang-up
        (not when this side ended it on purpose: that blames no filter)."""
        if was_connected and self._unanswered and not planned:
            self._blame_subscribe()
        self._unanswered.clear()
        self._violation = None

    def _blame_subscribe(self) -> None:
        """The broker hung up while SUBSCRIBEs were unanswered. A broker answers in
        order, so the oldest unanswered one is the likely cause (mosquitto does this for
        a filter of more than 200 levels). Its filters become suspects and go alone next
        time; a suspect sent alone and answered the same way again is poisoned: its
        readers fail with ``StackError`` and it is not subscribed again, instead of an
        endless reconnect-and-resubscribe loop."""
        oldest = next(iter(self._unanswered.values()))
        if len(oldest) == 1 and oldest[0] in self._suspects:
            topic_filter = oldest[0]
            self._suspects.discard(topic_filter)
            self._poisoned.add(topic_filter)
            log.error("broker hangs up on SUBSCRIBE %r; its readers fail", topic_filter)
            self._fail_readers(topic_filter, _poison_error(topic_filter))
        else:
            self._suspects.update(oldest)


def _poison_error(topic_filter: str) -> StackError:
    return StackError(
        f"the broker closed the connection in answer to SUBSCRIBE {topic_filter!r} "
        "(twice, the second time alone); it is not subscribed again"
    )
