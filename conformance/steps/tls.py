"""Steps of features/tls.feature."""

from __future__ import annotations

from pytest_bdd import given, parsers, then

from taktora_connector.adapters.mqtt import TlsOptions
from taktora_connector.conformance.brokers import TlsMaterial
from taktora_connector.conformance.world import World
from taktora_connector.domain import (
    HealthKind,
)


@given("a broker with a TLS listener and a CA made at run time")
def _tls_broker(conformance_world: World) -> None:
    conformance_world.start_broker(tls=True)


@given(parsers.parse('a started TLS connector "{name}" trusting the broker\'s CA'))
def _tls_connector(conformance_world: World, name: str) -> None:
    material = conformance_world.tls_material
    assert material is not None, "the scenario has no TLS broker"
    conformance_world.add_connector(name, tls=TlsOptions(ca_pem=material.ca_pem))
    conformance_world.start(name)


@given(parsers.parse('a TLS connector "{name}" trusting another CA, giving up after 1 retry'))
def _untrusted_tls_connector(conformance_world: World, name: str) -> None:
    conformance_world.add_connector(
        name,
        tls=TlsOptions(ca_pem=TlsMaterial.other_ca_pem()),
        reconnect_attempt_ceiling=1,
        reconnect_initial_backoff=0.01,
    )


@then(parsers.parse('"{name}" was never Up'))
def _never_up(conformance_world: World, name: str) -> None:
    kinds = [event.to.kind for event in conformance_world.health_events(name)]
    assert HealthKind.UP not in kinds, f"{name!r} went through {kinds}"
