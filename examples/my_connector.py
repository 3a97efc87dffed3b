"""A connector factory for the conformance kit.

    taktora-conformance --connector-factory my_connector:make_connector

The kit calls the factory with the options and codec of each scenario; return
your own Connector implementation. This one wraps the reference connector and
counts the messages it sends, to show the shape.
"""

from __future__ import annotations

from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.ports import Connector, PayloadCodec


class CountingConnector(MqttConnector[Any]):
    """Your connector goes here; it only has to implement the ports."""

    writers_created = 0

    def create_writer(self, descriptor: Any) -> Any:
        CountingConnector.writers_created += 1
        return super().create_writer(descriptor)


def make_connector(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Connector[Any, Any]:
    return CountingConnector(options, codec)
