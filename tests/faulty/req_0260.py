"""REQ_0260, backpressure."""

from __future__ import annotations

import time
from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.domain import (
    Degraded,
    HealthEvent,
    HealthKind,
    Up,
)
from taktora_connector.ports import PayloadCodec

from .base import ImpatientSubscription, Wrapper
from .registry import breaks


class QuietSubscription:
    """Hides backpressure Degraded events (the transition is never broadcast)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def _visible(self, event: Any) -> bool:
        return not (isinstance(event.to, Degraded) and "backpressure" in event.to.reason)

    def try_next(self) -> Any:
        while (event := self.inner.try_next()) is not None:
            if self._visible(event):
                return event
        return None

    def next(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            event = self.inner.next(left)
            if event is None or self._visible(event):
                return event

    def __iter__(self) -> Any:
        return (e for e in self.inner if self._visible(e))

    def close(self) -> None:
        self.inner.close()


class SilentBackpressure(Wrapper):
    def subscribe_health(self) -> Any:
        return QuietSubscription(self.inner.subscribe_health())


@breaks("REQ_0260", caught_by=("TEST_0139", "TEST_2600"))
def silent_backpressure(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return SilentBackpressure(MqttConnector(options, codec))


# Closing while Degraded (REQ_0260, TEST_2600) -----------------------------------------


class UpBeforeDownSubscription(ImpatientSubscription):
    """Reports Degraded -> Down as Degraded -> Up, then Up -> Down: as a connector
    that counts the messages close() failed as drained would."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.pending: list[HealthEvent] = []

    def _split(self, event: HealthEvent | None) -> HealthEvent | None:
        if event is None or not (
            event.from_.kind is HealthKind.DEGRADED and event.to.kind is HealthKind.DOWN
        ):
            return event
        self.pending.append(HealthEvent(Up(), event.to, event.at))
        return HealthEvent(event.from_, Up(), event.at)

    def try_next(self) -> Any:
        if self.pending:
            return self.pending.pop(0)
        return self._split(self.inner.try_next())

    def next(self, timeout: float | None = None) -> Any:
        if self.pending:
            return self.pending.pop(0)
        return self._split(self.inner.next(timeout))

    def __iter__(self) -> Any:
        while (event := self.next()) is not None:
            yield event


class CloseGoesThroughUp(Wrapper):
    def subscribe_health(self) -> Any:
        return UpBeforeDownSubscription(self.inner.subscribe_health())


@breaks("REQ_0260", caught_by="TEST_2600")
def close_goes_through_up(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return CloseGoesThroughUp(MqttConnector(options, codec))
