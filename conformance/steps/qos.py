"""Steps of features/qos.feature."""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_bdd import parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.conformance.proxy import PacketType
from taktora_connector.conformance.world import PATIENCE, World, wait_for

from .shared import (
    PAYLOADS,
    stall,
)


@when(parsers.parse('"{writer}" sends the {payload} payload'))
def _send_payload(conformance_world: World, writer: str, payload: str) -> None:
    conformance_world.send(writer, PAYLOADS[payload])


@then(parsers.parse('"{reader}" receives exactly the {payload} payload at QoS {level:d}'))
def _receives_payload(conformance_world: World, reader: str, payload: str, level: int) -> None:
    envelope = conformance_world.receive(reader)
    assert envelope.payload == PAYLOADS[payload]
    assert envelope.value == PAYLOADS[payload]
    assert int(envelope.routing.qos) == level
    assert conformance_world.drain(reader) == [], "more than one copy arrived"


@when(parsers.parse('the path from the broker to "{name}" stalls'))
def _stall_in(conformance_world: World, name: str) -> None:
    stall(conformance_world, name, "in")


@then(parsers.parse('the wire carries a QoS 1 PUBLISH from "{name}"'))
def _wire_qos1(conformance_world: World, name: str) -> None:
    party = conformance_world.party(name)
    wait_for(
        lambda: any(p.qos == 1 for p in party.wire(PacketType.PUBLISH)), PATIENCE, "a QoS 1 PUBLISH"
    )


@then(parsers.parse('the wire carried PUBLISH packets at QoS {level:d} from "{name}"'))
def _wire_qos(conformance_world: World, level: int, name: str) -> None:
    packets = conformance_world.party(name).wire(PacketType.PUBLISH)
    assert packets, "no PUBLISH seen"
    assert {p.qos for p in packets} == {level}


@then(parsers.parse('the last delivery of "{writer}" is still pending after {seconds:g} seconds'))
def _still_pending(conformance_world: World, writer: str, seconds: float) -> None:
    time.sleep(seconds)
    assert not conformance_world.outcomes[writer][-1].delivery.done


@then(parsers.parse('the last delivery of "{writer}" completes successfully'))
def _completes(conformance_world: World, writer: str) -> None:
    result = conformance_world.outcomes[writer][-1].delivery.wait(PATIENCE)
    assert is_successful(result), f"delivery: {result}"


@when(parsers.parse('the broker has seen "{name}" go'))
def _broker_saw_it_go(conformance_world: World, name: str) -> None:
    """The connector's connection is closed at the proxy, and the broker had a moment
    to end the session's connection (a persistent session then queues what comes)."""
    proxy = conformance_world.party(name).proxy
    assert proxy is not None
    wait_for(lambda: proxy.open_connections == 0, PATIENCE, f"{name!r} to disconnect")
    time.sleep(0.3)


@when(parsers.parse('"{name}" starts closing with a timeout of {seconds:g} seconds'))
def _starts_closing(conformance_world: World, name: str, seconds: float) -> None:
    connector = conformance_world.party(name).connector
    outcome: list[Any] = []
    closer = threading.Thread(
        target=lambda: outcome.append(connector.close(timeout=seconds)),
        name="conformance-harness-closer",
        daemon=True,
    )
    closer.start()
    conformance_world.scratch[f"closing {name}"] = (closer, seconds, outcome)
    time.sleep(0.2)  # close() is under way before the next step changes the path


@then(parsers.re(r'"(?P<name>[^"]+)" finished closing(?P<how> with Success| with a Failure)?$'))
def _finished_closing(conformance_world: World, name: str, how: str | None) -> None:
    closer, seconds, outcome = conformance_world.scratch[f"closing {name}"]
    closer.join(seconds + PATIENCE)
    assert not closer.is_alive(), f"close(timeout={seconds:g}) of {name!r} did not return"
    (result,) = outcome
    if how == " with Success":
        assert is_successful(result), f"close() of {name!r} returned {result}"
    elif how == " with a Failure":
        assert not is_successful(result), f"close() of {name!r} returned {result}"
