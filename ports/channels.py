"""The channel ports: a writer sends values out, a reader receives them.

Rules of these ports:
- ``send`` never blocks: it either accepts the message into a bounded bridge or
  returns a ``Failure`` (``BackPressure`` when full, ``PayloadOverflow``,
  ``CodecError``, ``ConnectorDown`` after close);
- sequence numbers of a writer start at 0 and strictly increase; a send that
  fails consumes none;
- a reader is readable through ``fileno()`` while a message waits, so it can sit
  in ``selectors`` next to sockets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeVar

from returns.result import Result

from taktora_connector.domain import (
    ChannelDescriptor,
    ConnectorError,
    RecvEnvelope,
    SendOutcome,
)

T_contra = TypeVar("T_contra", contravariant=True)
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")


class ChannelWriter(Protocol[T_contra, R]):
    """Sends values of one channel."""

    @property
    def descriptor(self) -> ChannelDescriptor[R]: ...

    def send(
        self, value: T_contra, *, correlation_id: bytes | None = None
    ) -> Result[SendOutcome, ConnectorError]:
        """Encode and enqueue ``value`` without blocking."""
        ...

    def flush(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        """Wait until every message this writer accepted is delivered or failed."""
        ...

    def close(self) -> None:
        """Stop accepting messages; those already accepted still go out."""
        ...


class ChannelReader(Protocol[T_co, R]):
    """Receives values of one channel.

    Iterating yields envelopes until the reader or its connector is closed; a
    payload that does not decode raises its ``CodecError`` from the iterator
    (the reader stays usable).
    """

    @property
    def descriptor(self) -> ChannelDescriptor[R]: ...

    @property
    def dropped(self) -> int:
        """How many messages this reader's full bridge has dropped so far."""
        ...

    def try_recv(self) -> Result[RecvEnvelope[T_co, R] | None, ConnectorError]:
        """The next waiting envelope, or ``None`` at once if none waits."""
        ...

    def recv(
        self, timeout: float | None = None
    ) -> Result[RecvEnvelope[T_co, R] | None, ConnectorError]:
        """The next envelope, waiting up to ``timeout`` seconds (``None`` on timeout)."""
        ...

    def __iter__(self) -> Iterator[RecvEnvelope[T_co, R]]: ...

    def fileno(self) -> int:
        """A file descriptor that is readable while a message waits."""
        ...

    def close(self) -> None: ...
