"""REQ_0261, inbound drops."""

from __future__ import annotations

from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
)
from taktora_connector.ports import PayloadCodec

from .base import ChannelWrapper, Wrapper
from .registry import breaks


class DropBlindReader(ChannelWrapper):
    @property
    def dropped(self) -> int:
        return 0


class NeverReportsDrops(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(DropBlindReader)


@breaks("REQ_0261", caught_by="TEST_0140")
def never_reports_drops(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return NeverReportsDrops(MqttConnector(options, codec))
