"""Steps of features/inbound_drops.feature."""

from __future__ import annotations

import time

from pytest_bdd import parsers, then, when

from taktora_connector.conformance.world import World, wait_for


@when(parsers.parse('"{sub}" is emptied'))
def _emptied(conformance_world: World, sub: str) -> None:
    time.sleep(0.2)
    while conformance_world.subscriptions[sub].try_next() is not None:
        pass


@when(parsers.parse('"{reader}" is drained'))
def _drained(conformance_world: World, reader: str) -> None:
    conformance_world.received[reader] = conformance_world.drain(reader)


@then(parsers.re(r'within (?P<seconds>\d+) seconds "(?P<reader>[^"]+)" dropped (?P<count>\d+)$'))
def _dropped_within(conformance_world: World, seconds: str, reader: str, count: str) -> None:
    handle = conformance_world.reader(reader)
    wait_for(
        lambda: handle.dropped >= int(count),
        float(seconds),
        f"{count} drops (have {handle.dropped})",
    )
    time.sleep(0.2)
    assert handle.dropped == int(count), f"{handle.dropped} dropped"


@then(
    parsers.re(
        r'"(?P<reader>[^"]+)" received (?P<got>\d+) values and dropped (?P<dropped>\d+), accounting for all (?P<total>\d+)$'
    )
)
def _accounted(conformance_world: World, reader: str, got: str, dropped: str, total: str) -> None:
    received = conformance_world.received[reader]
    handle = conformance_world.reader(reader)
    assert len(received) == int(got), f"received {len(received)}"
    assert handle.dropped == int(dropped)
    assert len(received) + handle.dropped == int(total)
    assert [e.value for e in received] == list(range(int(got))), "the oldest must be kept"
