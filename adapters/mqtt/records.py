"""The message records that pass between the handles and the sidecar, by name.

Each is a ``NamedTuple``: read by field name (``item.token``), unpacked like a
tuple on the hot paths. A NamedTuple's generated ``__new__`` is a Python call
(about 0.3 us per message here, measured); the hot paths build them with
``tuple.__new__(Record, (...))`` (``new``), which makes the same object at the
cost of a plain tuple plus one C call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from taktora_connector.domain import PayloadOverflow

    from .delivery import Delivery
    from .inbound_acks import AckToken

#: ``new(Record, (field, ...))``: a record without its Python ``__new__`` (hot paths).
new: Final = tuple.__new__


class Outbound(NamedTuple):
    """A message a writer queued for the sidecar (the outbound bridge's item)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    delivery: Delivery


class Inbound(NamedTuple):
    """A received message as the data plane hands it to each matching reader. The
    token is the persistent session's acknowledgement (None: nothing to release)."""

    payload: bytes
    topic: str
    qos: int
    retain: bool
    timestamp_ns: int
    token: AckToken | None


class Queued(NamedTuple):
    """A received message in one reader's queue: its sequence number is the reader's
    own; the payload is a ``PayloadOverflow`` in place of one above the reader's limit."""

    payload: bytes | PayloadOverflow
    topic: str
    qos: int
    retain: bool
    timestamp_ns: int
    sequence: int
    token: AckToken | None


class InFlight(NamedTuple):
    """A QoS 1 PUBLISH sent and not yet acknowledged: its bytes (to resend with DUP)
    and the handle its PUBACK completes."""

    packet: bytes
    delivery: Delivery


class Written(NamedTuple):
    """A QoS 0 PUBLISH in the write buffer: complete once the socket's flushed count
    reaches ``end``."""

    end: int
    delivery: Delivery
