"""The reference MQTT 3.1.1 connector (paho-mqtt on a sidecar thread).

Public surface: ``MqttConnector``, ``MqttRouting``, ``MqttQos``,
``MqttConnectorOptions``, ``Credentials``, ``TlsOptions``, ``ConnectorMetrics`` and
``ReaderMetrics`` (``MqttConnector.metrics()``). Everything else in
this package is internal and may change without notice.

The MQTT values (routing, QoS, options, credentials, TLS, topic rules) import
without paho, so a connector on another MQTT stack, and the conformance kit,
can use them with paho absent; ``MqttConnector`` loads paho when it is first
named (an import-linter contract keeps it so).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .metrics import ConnectorMetrics, ReaderMetrics
from .options import Credentials, MqttConnectorOptions, TlsOptions
from .routing import MqttQos, MqttRouting
from .topics import topic_matches

if TYPE_CHECKING:
    from .connector import MqttConnector

__all__ = [
    "ConnectorMetrics",
    "Credentials",
    "MqttConnector",
    "MqttConnectorOptions",
    "MqttQos",
    "MqttRouting",
    "ReaderMetrics",
    "TlsOptions",
    "topic_matches",
]


def __getattr__(name: str) -> Any:
    """``MqttConnector`` on first use: only then are the gateway and paho imported.

    Loaded through importlib so the import graph (import-linter) shows the
    package's own import-time dependencies, which must stay free of paho."""
    if name == "MqttConnector":
        connector: Any = importlib.import_module(f"{__name__}.connector").MqttConnector
        globals()[name] = connector  # later look-ups skip this function
        return connector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
