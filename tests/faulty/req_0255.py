"""REQ_0255, credentials."""

from __future__ import annotations

from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.ports import PayloadCodec

from .registry import breaks


@breaks("REQ_0255", caught_by=("TEST_0135", "TEST_2612"))
def drops_credentials(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    return MqttConnector(options.replace(credentials=None), codec)
