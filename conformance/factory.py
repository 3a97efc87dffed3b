"""Loading the connector under test from ``package.module:callable``.

A factory is ``factory(options: MqttConnectorOptions, codec: PayloadCodec) ->
Connector``. The default builds the reference ``MqttConnector``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from taktora_connector.adapters.mqtt import MqttConnectorOptions
from taktora_connector.domain import ConfigurationError
from taktora_connector.ports import Connector, PayloadCodec

ConnectorFactory = Callable[[MqttConnectorOptions, PayloadCodec[Any]], Connector[Any, Any]]

DEFAULT_FACTORY = "taktora_connector.conformance.factory:reference_factory"


def reference_factory(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Connector[Any, Any]:
    """The reference connector: what the kit tests when no factory is named.

    Imported here, not at the top, so the kit itself runs without paho."""
    from taktora_connector.adapters.mqtt import MqttConnector

    return MqttConnector(options, codec)


def load_factory(reference: str) -> ConnectorFactory:
    """Import ``package.module:callable`` and check that it can be called."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(
            f"connector factory {reference!r} must look like package.module:callable"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigurationError(
            f"connector factory module {module_name!r} cannot be imported: {err}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not callable(target):
        raise ConfigurationError(f"connector factory {reference!r} is not callable")
    factory: ConnectorFactory = target
    return factory


def claimed_capabilities(factory: ConnectorFactory) -> frozenset[str] | str:
    """What a connector made by ``factory`` claims (its ``capabilities``; absent: none),
    read once from a connector made with the kit's options and closed unstarted; or why
    the claim is no list of capability names the kit knows."""
    from taktora_connector.adapters.codecs import JsonCodec
    from taktora_connector.adapters.mqtt import MqttConnectorOptions

    from .registry import CAPABILITY_NAMES

    options = MqttConnectorOptions(host="127.0.0.1", port=1, client_id="taktora-conformance-claims")
    connector = factory(options, JsonCodec())
    try:
        claimed: object = getattr(connector, "capabilities", frozenset())
    finally:
        connector.close()
    known = ", ".join(sorted(CAPABILITY_NAMES))
    if isinstance(claimed, str) or not isinstance(claimed, set | frozenset | tuple | list):
        return f"the connector's capabilities must be a set of names ({known}), not {claimed!r}"
    unknown = sorted(str(n) for n in claimed if n not in CAPABILITY_NAMES)
    if unknown:
        return (
            f"the connector claims {', '.join(map(repr, unknown))}, which the kit does not "
            f"know; the optional capabilities are: {known}"
        )
    return frozenset(str(n) for n in claimed)
