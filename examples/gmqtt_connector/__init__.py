"""A second MQTT connector, built on gmqtt: the worked example for third-party authors.

    PYTHONPATH=examples taktora-conformance --connector-factory gmqtt_connector:make_connector

It shares nothing with the reference connector but the framework's values and
ports (``taktora_connector.domain``, ``taktora_connector.ports``, the codecs,
``MqttRouting`` and ``MqttConnectorOptions``): its protocol stack is gmqtt on an
asyncio loop in a thread of its own, and its bridges, health and topic matching
are written here. See ``connector.py`` for how each requirement is met.
"""

from __future__ import annotations

from typing import Any

from taktora_connector.adapters.mqtt import MqttConnectorOptions
from taktora_connector.ports import PayloadCodec

from .connector import GmqttConnector


def make_connector(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> GmqttConnector[Any]:
    """The factory the kit calls: ``(options, codec) -> Connector``."""
    return GmqttConnector(options, codec)


__all__ = ["GmqttConnector", "make_connector"]
