"""The connector port: lifecycle, health and channel creation for one transport."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, TypeVar

from returns.result import Result

from taktora_connector.domain import ChannelDescriptor, ConnectorError, ConnectorHealth

from .channels import ChannelReader, ChannelWriter
from .health import HealthSubscription

T = TypeVar("T")
R = TypeVar("R")


class Connector(Protocol[T, R]):
    """One transport, seen by the application through values and Results only.

    ``T`` is the type of channel values (the codec's), ``R`` the routing type.
    Writers and readers may be created before or after ``start()``. Used as a
    context manager it starts on entry and closes on exit.

    Optional, beyond the protocol: a ``capabilities`` attribute, a set of the names
    of the optional capabilities it offers (``"shared-subscriptions"``); none without
    it. A routing that needs a capability it does not offer is refused with
    ``Failure(ConfigurationError)`` (``docs/connector-contract.md``, "Required and
    optional").
    """

    @property
    def name(self) -> str: ...

    def health(self) -> ConnectorHealth: ...

    def subscribe_health(self) -> HealthSubscription: ...

    def start(self) -> Result[None, ConnectorError]: ...

    def create_writer(
        self, descriptor: ChannelDescriptor[R]
    ) -> Result[ChannelWriter[T, R], ConnectorError]: ...

    def create_reader(
        self, descriptor: ChannelDescriptor[R]
    ) -> Result[ChannelReader[T, R], ConnectorError]: ...

    def close(self, timeout: float = ...) -> Result[None, ConnectorError]:
        """Flush what was accepted (up to ``timeout`` s), then disconnect and stop."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
