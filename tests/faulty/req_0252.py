"""REQ_0252, QoS 0 and 1: deliveries, persistent sessions and closing."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
    ConnectorDown,
    ConnectorError,
    ConnectorTimeout,
    SendOutcome,
)
from taktora_connector.ports import PayloadCodec

from .base import ChannelWrapper, Wrapper
from .registry import breaks


class _Done:
    done = True

    def wait(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        return Success(None)


class EarlyDeliveryWriter(ChannelWrapper):
    """Reports every send delivered at once, before any PUBACK."""

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        return result.map(
            lambda o: SendOutcome(o.sequence_number, o.timestamp_ns, o.bytes_written, _Done())
        )


class EarlyDelivery(Wrapper):
    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(EarlyDeliveryWriter)


@breaks(
    "REQ_0252",
    caught_by=("TEST_0131", "TEST_2523"),
    may_also_fail=("TEST_2521",),
    because="its flush returns before the broker has the last message, and the scenario "
    "goes on to close the publisher: on a loaded machine that message never reached it",
)
def early_delivery(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return EarlyDelivery(MqttConnector(options, codec))


@breaks("REQ_0252", caught_by="TEST_2521")
def no_persistent_session(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """Always asks for a clean session, so the broker keeps nothing (TEST_2521)."""
    return MqttConnector(options.replace(clean_session=True), codec)


class CloseWithoutFlush(Wrapper):
    """close() disconnects at once, whatever waits to be delivered (TEST_2522)."""

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        self.inner.close(0.0)
        return Success(None)


@breaks("REQ_0252", caught_by="TEST_2522")
def close_without_flush(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return CloseWithoutFlush(MqttConnector(options, codec))


class _HangingDelivery:
    """A delivery that, once its connector went down, never completes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def _down(self) -> bool:
        if not self.inner.done:
            return False
        result = self.inner.wait(0)
        return not is_successful(result) and isinstance(result.failure(), ConnectorDown)

    @property
    def done(self) -> bool:
        return bool(self.inner.done) and not self._down()

    def wait(self, timeout: float | None = None) -> Result[None, ConnectorError]:
        result: Result[None, ConnectorError] = self.inner.wait(timeout)
        if self._down():
            time.sleep(timeout or 0.0)
            return Failure(ConnectorTimeout("wait", timeout or 0.0))
        return result


class HangingDeliveryWriter(ChannelWrapper):
    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        return result.map(
            lambda o: SendOutcome(
                o.sequence_number, o.timestamp_ns, o.bytes_written, _HangingDelivery(o.delivery)
            )
        )


class PendingForeverAfterClose(Wrapper):
    """What close() could not deliver stays pending for ever (TEST_2523)."""

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(HangingDeliveryWriter)


@breaks("REQ_0252", caught_by="TEST_2523")
def pending_forever_after_close(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return PendingForeverAfterClose(MqttConnector(options, codec))


class TrimmingPayloadReader(ChannelWrapper):
    """Hands out the value as decoded but the raw payload with trailing zero bytes cut."""

    def _trim(self, envelope: Any) -> Any:
        if envelope is None:
            return None
        return dataclasses.replace(envelope, payload=envelope.payload.rstrip(b"\x00"))

    def recv(self, timeout: float | None = None) -> Any:
        return self.inner.recv(timeout).map(self._trim)

    def try_recv(self) -> Any:
        return self.inner.try_recv().map(self._trim)


class TrimsRawPayload(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(TrimmingPayloadReader)


@breaks("REQ_0252", caught_by="TEST_0130")
def trims_raw_payload(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return TrimsRawPayload(MqttConnector(options, codec))
