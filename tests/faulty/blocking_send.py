"""send must never block: checked in every scenario that sends, so a blocking send
breaks the scenarios of several requirements at once (not registered with @breaks:
test_conformance_kit.py checks it by the two scenarios that name the rule)."""

from __future__ import annotations

from typing import Any

from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
)
from taktora_connector.ports import PayloadCodec

from .base import ChannelWrapper, Wrapper


class DeliveryWaitingWriter(ChannelWrapper):
    """Waits up to 1 s for the delivery before returning: a 'synchronous' send."""

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        if is_successful(result):
            result.unwrap().delivery.wait(1.0)
        return result


class SendWaitsForDelivery(Wrapper):
    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(DeliveryWaitingWriter)


def send_waits_for_delivery(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return SendWaitsForDelivery(MqttConnector(options, codec))
