"""The frames that cross a channel: its descriptor, send outcomes, received envelopes.

Rules of this module:
- values only: frozen dataclasses whose constructors validate and raise
  ``ConfigurationError`` (also a ``ValueError``) with the rule that was broken;
- a correlation id is 32 opaque bytes, carried and never interpreted;
- the delivery handle is described by a protocol here; adapters implement it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar, cast

from returns.result import Result

from .errors import ConfigurationError, ConnectorError

#: MQTT's largest remaining length, and the framework's upper bound for one payload.
MAX_PAYLOAD_LIMIT: Final = 268_435_455
DEFAULT_MAX_PAYLOAD_SIZE: Final = 1_048_576
CORRELATION_ID_SIZE: Final = 32
#: The correlation id of an envelope whose transport carries none.
ZERO_CORRELATION_ID: Final = bytes(CORRELATION_ID_SIZE)

R = TypeVar("R")
T = TypeVar("T")
R_co = TypeVar("R_co", covariant=True)
T_co = TypeVar("T_co", covariant=True)


def validate_correlation_id(value: bytes) -> bytes:
    """Return ``value`` as ``bytes`` if it is exactly 32 bytes long."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ConfigurationError(
            f"correlation_id must be bytes, got {type(value).__name__}; "
            f"it is {CORRELATION_ID_SIZE} opaque bytes"
        )
    data = bytes(value)
    if len(data) != CORRELATION_ID_SIZE:
        raise ConfigurationError(
            f"correlation_id is {len(data)} bytes; it must be exactly {CORRELATION_ID_SIZE} bytes"
        )
    return data


@dataclass(frozen=True, slots=True)
class ChannelDescriptor(Generic[R]):
    """Names one channel and says how it is routed and how large a payload may be."""

    name: str
    routing: R
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError(f"channel name must be a non-empty string, got {self.name!r}")
        size = self.max_payload_size
        if isinstance(size, bool) or not isinstance(size, int):
            raise ConfigurationError(f"max_payload_size must be an int, got {type(size).__name__}")
        if not 0 < size <= MAX_PAYLOAD_LIMIT:
            raise ConfigurationError(
                f"max_payload_size is {size}; it must be between 1 and "
                f"{MAX_PAYLOAD_LIMIT} bytes (MQTT's limit)"
            )


class DeliveryHandle(Protocol):
    """Completes when the transport took responsibility for one sent message.

    For MQTT: on PUBACK (QoS 1) or when the bytes were handed to the socket (QoS 0).
    """

    @property
    def done(self) -> bool:
        """Whether the outcome is known (delivered or failed)."""
        ...

    def wait(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        """Block until done; ``Failure(ConnectorTimeout)`` when ``timeout`` runs out."""
        ...


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What a successful ``send`` returns."""

    sequence_number: int
    timestamp_ns: int
    bytes_written: int
    delivery: DeliveryHandle = field(compare=False)


@dataclass(frozen=True, slots=True)
class RecvEnvelope(Generic[T_co, R_co]):
    """One received message: the decoded value, its raw payload and where it came from.

    ``routing`` is the concrete routing of this message (for MQTT the actual topic,
    the QoS it was delivered with and its retain flag), not the reader's filter.
    """

    value: T_co
    payload: bytes
    sequence_number: int
    timestamp_ns: int
    correlation_id: bytes
    routing: R_co


# -- hot paths --------------------------------------------------------------------------
# A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``: about
# 1 us for a RecvEnvelope here, more than the rest of a ``recv``. These two make the very
# same objects (equal, same type, same fields) by writing the slots directly, in about
# half the time; connectors call them once per message. ``tests/test_envelope.py`` holds
# them equal to the constructors.


def _setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(cls, name).__set__ for name in names)


_RECV_FIELDS: Final = _setters(
    RecvEnvelope,
    ("value", "payload", "sequence_number", "timestamp_ns", "correlation_id", "routing"),
)
_SENT_FIELDS: Final = _setters(
    SendOutcome, ("sequence_number", "timestamp_ns", "bytes_written", "delivery")
)


def recv_envelope(  # noqa: PLR0917 - the fields, in their order
    value: T,
    payload: bytes,
    sequence_number: int,
    timestamp_ns: int,
    correlation_id: bytes,
    routing: R,
    _new: Any = object.__new__,
    _cls: Any = RecvEnvelope,
    _set: tuple[Any, ...] = _RECV_FIELDS,
) -> RecvEnvelope[T, R]:
    """``RecvEnvelope(value, payload, ...)``, the same object, made faster."""
    envelope = _new(_cls)
    set_value, set_payload, set_sequence, set_timestamp, set_correlation, set_routing = _set
    set_value(envelope, value)
    set_payload(envelope, payload)
    set_sequence(envelope, sequence_number)
    set_timestamp(envelope, timestamp_ns)
    set_correlation(envelope, correlation_id)
    set_routing(envelope, routing)
    return cast("RecvEnvelope[T, R]", envelope)


def send_outcome(
    sequence_number: int,
    timestamp_ns: int,
    bytes_written: int,
    delivery: DeliveryHandle,
    _new: Any = object.__new__,
    _set: tuple[Any, ...] = _SENT_FIELDS,
) -> SendOutcome:
    """``SendOutcome(sequence_number, timestamp_ns, bytes_written, delivery)``, faster."""
    outcome = _new(SendOutcome)
    set_sequence, set_timestamp, set_bytes, set_delivery = _set
    set_sequence(outcome, sequence_number)
    set_timestamp(outcome, timestamp_ns)
    set_bytes(outcome, bytes_written)
    set_delivery(outcome, delivery)
    return cast("SendOutcome", outcome)
