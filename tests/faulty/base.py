"""What the faulty connectors share: wrappers that delegate the port to a reference connector."""

from __future__ import annotations

import time
from typing import Any

from returns.pipeline import is_successful
from returns.result import Result

from taktora_connector.adapters.mqtt import MqttConnector, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
    ConnectorError,
)


class Wrapper:
    """Delegates the Connector port to a reference connector."""

    def __init__(self, inner: MqttConnector[Any]) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> frozenset[str]:
        """What the wrapped connector claims (a wrapper claims as its connector does)."""
        return frozenset(getattr(self.inner, "capabilities", frozenset()))

    def health(self) -> Any:
        return self.inner.health()

    def subscribe_health(self) -> Any:
        return self.inner.subscribe_health()

    def start(self) -> Result[None, ConnectorError]:
        return self.inner.start()

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor)

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor)

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        return self.inner.close(timeout)

    def __enter__(self) -> Wrapper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChannelWrapper:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __iter__(self) -> Any:
        return iter(self.inner)


class FilteringReader(ChannelWrapper):
    """A reader whose ``recv`` and ``try_recv`` answer what ``_keep`` makes of the
    inner reader's answer (a fault hides some envelopes)."""

    def _keep(self, result: Any) -> Any:
        return result

    def recv(self, timeout: float | None = None) -> Any:
        return self._keep(self.inner.recv(timeout))

    def try_recv(self) -> Any:
        return self._keep(self.inner.try_recv())


def _poll(reader: Any) -> Any:
    """One short wait on ``reader``: the envelope, or None (after a pause on a Failure)."""
    result = reader.recv(0.05)
    if not is_successful(result):
        time.sleep(0.05)
        return None
    return result.unwrap()


class ClosedFlagWrapper(Wrapper):
    """Knows whether its connector was closed."""

    def __init__(self, inner: MqttConnector[Any]) -> None:
        super().__init__(inner)
        self.closed = False

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        self.closed = True
        return self.inner.close(timeout)


class ImpatientSubscription:
    """``next(timeout)`` never waits: it is ``try_next``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def try_next(self) -> Any:
        return self.inner.try_next()

    def next(self, timeout: float | None = None) -> Any:
        return self.inner.try_next()

    def __iter__(self) -> Any:
        return iter(self.inner)

    def close(self) -> None:
        self.inner.close()
