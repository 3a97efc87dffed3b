"""The kit's pytest plugin: command-line options shared by the kit and its users.

``--connector-factory package.module:callable`` names the connector under test
(default: the reference ``MqttConnector``); ``--broker-url`` points at an
external broker instead of the in-process one.
"""

from __future__ import annotations

import pytest

from .factory import DEFAULT_FACTORY, ConnectorFactory, load_factory


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taktora-conformance", "taktora connector conformance kit")
    group.addoption(
        "--connector-factory",
        default=DEFAULT_FACTORY,
        help="connector under test, as package.module:callable taking (options, codec)",
    )
    group.addoption(
        "--broker-url",
        default=None,
        help="mqtt://host:port of an external broker (default: an in-process amqtt per scenario)",
    )


@pytest.fixture(scope="session")
def connector_factory(request: pytest.FixtureRequest) -> ConnectorFactory:
    """The factory named by ``--connector-factory``."""
    return load_factory(str(request.config.getoption("--connector-factory")))
