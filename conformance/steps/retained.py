"""Steps of features/retained.feature."""

from __future__ import annotations

from pytest_bdd import parsers, then

from taktora_connector.conformance.proxy import PacketType
from taktora_connector.conformance.world import World


@then(parsers.parse('the wire carried a retained PUBLISH from "{name}"'))
def _wire_retained(conformance_world: World, name: str) -> None:
    assert any(p.retain for p in conformance_world.party(name).wire(PacketType.PUBLISH))


@then(parsers.parse('"{reader}" receives nothing more'))
def _nothing_more(conformance_world: World, reader: str) -> None:
    extra = conformance_world.drain(reader, quiet=0.5)
    assert not extra, f"{reader!r} received more: {[e.value for e in extra]}"
