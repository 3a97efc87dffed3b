"""REQ_0259, bounded bridges."""

from __future__ import annotations

from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.ports import PayloadCodec

from .registry import breaks


@breaks("REQ_0259", caught_by="TEST_2590")
def outbound_off_by_one(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    return MqttConnector(options.replace(outbound_capacity=options.outbound_capacity + 1), codec)
