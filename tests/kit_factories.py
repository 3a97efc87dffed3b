"""Factories that are wrong in the ways the kit's preflight check must catch."""

from __future__ import annotations

from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.ports import Connector, PayloadCodec

CLOSED: list[str] = []


def raises(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Connector[Any, Any]:
    raise RuntimeError("this factory is broken on purpose")


def returns_none(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> None:
    return None


def wrong_arguments(options: MqttConnectorOptions) -> Connector[Any, Any]:
    return MqttConnector(options, None)


class HalfConnector:
    """Has a name and a close, and nothing else of the port."""

    name = "half"

    def close(self, timeout: float = 1.0) -> None:
        CLOSED.append("half")


def half_connector(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> HalfConnector:
    return HalfConnector()


class Recorded(MqttConnector[Any]):
    def close(self, timeout: float = 5.0) -> Any:
        CLOSED.append(self.name)
        return super().close(timeout)


def recorded(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Connector[Any, Any]:
    return Recorded(options, codec)


class UnknownCapability(MqttConnector[Any]):
    """Claims a capability under a name the kit does not know."""

    capabilities = frozenset({"shared-subs"})


def unknown_capability(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Connector[Any, Any]:
    return UnknownCapability(options, codec)
