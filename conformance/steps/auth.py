"""Steps of features/auth.feature."""

from __future__ import annotations

import secrets
import time

from pytest_bdd import given, parsers, then

from taktora_connector.conformance.proxy import PacketType
from taktora_connector.conformance.world import World


@given("a broker that requires a username and password")
def _auth_broker(conformance_world: World) -> None:
    # Made at run time, so no report or log of the kit can carry them by accident.
    user, password = f"user-{conformance_world.ns}", secrets.token_urlsafe(16)
    conformance_world.scratch["credentials"] = (user, password)
    conformance_world.start_broker(users={user: password})


@then(parsers.parse('the password appears in no health reason, error or log line of "{name}"'))
def _password_hidden(conformance_world: World, name: str) -> None:
    password = conformance_world.scratch["wrong password"]
    party = conformance_world.party(name)
    seen = [repr(party.connector), str(party.connector.health())]
    seen += [repr(event) for event in conformance_world.health_events(name)]
    seen += conformance_world.log_lines
    leaked = [text.replace(password, "<PASSWORD>") for text in seen if password in text]
    assert not leaked, f"the password leaked into: {leaked[:3]}"


@then(parsers.parse('the wire carried a CONNECT with a username and password from "{name}"'))
def _wire_credentials(conformance_world: World, name: str) -> None:
    packets = conformance_world.party(name).wire(PacketType.CONNECT)
    assert packets, "no CONNECT seen"
    assert all(p.has_credentials() for p in packets)


@then(
    parsers.parse(
        'after {seconds:g} seconds the wire carried exactly {count:d} CONNECT from "{name}"'
    )
)
def _wire_connect_count(conformance_world: World, seconds: float, count: int, name: str) -> None:
    time.sleep(seconds)
    assert len(conformance_world.party(name).wire(PacketType.CONNECT)) == count
