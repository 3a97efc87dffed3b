"""REQ_0256, TLS."""

from __future__ import annotations

from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.ports import PayloadCodec

from .registry import breaks


@breaks("REQ_0256", caught_by="TEST_0136")
def ignores_tls(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    return MqttConnector(options.replace(tls=None), codec)
