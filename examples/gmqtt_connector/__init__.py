"""A second MQTT connector, built on gmqtt: the worked example for third-party authors.

    PYTHONPATH=examples taktora-conformance --connector-factory gmqtt_connector:make_connector

Its protocol stack is gmqtt on an asyncio loop in a thread of its own; what every
connector needs in the same way (health, bridges, reader and writer handles,
delivery handles, timeouts, topic rules) comes from the public building blocks in
``taktora_connector.adapters.toolkit``, which the reference connector is made of
too. It shares nothing of the reference's sidecar or paho. See ``connector.py`` for
how each requirement is met, and docs/writing-a-connector.md for a walk through it.
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
