"""The reference MQTT 3.1.1 connector (paho-mqtt on a sidecar thread).

Public surface: ``MqttConnector``, ``MqttRouting``, ``MqttQos``,
``MqttConnectorOptions``, ``Credentials``, ``TlsOptions``. Everything else in
this package is internal and may change without notice.
"""

from .connector import MqttConnector
from .options import Credentials, MqttConnectorOptions, TlsOptions
from .routing import MqttQos, MqttRouting
from .topics import topic_matches

__all__ = [
    "Credentials",
    "MqttConnector",
    "MqttConnectorOptions",
    "MqttQos",
    "MqttRouting",
    "TlsOptions",
    "topic_matches",
]
