"""Steps of features/protocol.feature."""

from __future__ import annotations

from pytest_bdd import parsers, then

from taktora_connector.conformance.proxy import PacketType
from taktora_connector.conformance.world import World


@then(
    parsers.parse(
        'the wire carried a CONNECT from "{name}" with protocol name "{protocol}" and level {level:d}'
    )
)
def _wire_protocol(conformance_world: World, name: str, protocol: str, level: int) -> None:
    packets = conformance_world.party(name).wire(PacketType.CONNECT)
    assert packets, "no CONNECT seen"
    assert {p.protocol() for p in packets} == {(protocol, level)}
