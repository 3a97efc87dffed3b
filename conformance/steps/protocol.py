"""Steps of features/protocol.feature."""

from __future__ import annotations

import time

from pytest_bdd import parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.conformance.proxy import PacketType
from taktora_connector.conformance.world import PATIENCE, SEND_BOUND, World, wait_for

from .shared import value_of


@then(
    parsers.parse(
        'the wire carried a CONNECT from "{name}" with protocol name "{protocol}" and level {level:d}'
    )
)
def _wire_protocol(conformance_world: World, name: str, protocol: str, level: int) -> None:
    packets = conformance_world.party(name).wire(PacketType.CONNECT)
    assert packets, "no CONNECT seen"
    assert {p.protocol() for p in packets} == {(protocol, level)}


#: A correlation id with no zero byte, so one that leaks anywhere is recognised.
CORRELATION_ID = bytes(range(1, 33))


@when(
    parsers.re(
        r'"(?P<writer>[^"]+)" sends (?P<value>.+) with a correlation id and it is delivered$'
    )
)
def _send_with_correlation_id(conformance_world: World, writer: str, value: str) -> None:
    handle = conformance_world.writer(writer)
    party = conformance_world.party(conformance_world.writer_owner[writer])
    # The PUBLISH this send makes is the first one after those seen so far.
    conformance_world.scratch["publishes before"] = len(party.wire(PacketType.PUBLISH))
    began = time.monotonic()
    result = handle.send(value_of(value), correlation_id=CORRELATION_ID)
    took = time.monotonic() - began
    assert took <= SEND_BOUND, f"send through {writer!r} took {took:.2f} s; send must never block"
    assert is_successful(result), f"send with a 32-byte correlation id failed: {result}"
    outcome = result.unwrap()
    conformance_world.outcomes[writer].append(outcome)
    delivered = outcome.delivery.wait(PATIENCE)
    assert is_successful(delivered), f"delivery failed: {delivered}"


@then(
    parsers.re(
        r'the PUBLISH of "(?P<name>[^"]+)" on the wire carries exactly the codec\'s bytes of (?P<value>.+)$'
    )
)
def _wire_payload_is_codecs(conformance_world: World, name: str, value: str) -> None:
    party = conformance_world.party(name)
    encoded = party.codec.encode(value_of(value))
    assert is_successful(encoded), f"the kit's codec refused {value}: {encoded}"
    before = conformance_world.scratch["publishes before"]
    wait_for(  # at QoS 1 it passed the proxy before its PUBACK; the kit does not rely on it
        lambda: len(party.wire(PacketType.PUBLISH)) > before,
        PATIENCE,
        f"the PUBLISH of the value sent with a correlation id from {name!r}",
    )
    payload = party.wire(PacketType.PUBLISH)[before].payload()
    assert payload == encoded.unwrap(), (
        f"the PUBLISH carried {payload!r}, not the codec's bytes {encoded.unwrap()!r}: "
        "MQTT 3.1.1 has no properties, so a correlation id must stay off the wire"
    )


@then(parsers.re(r'"(?P<reader>[^"]+)" receives (?P<value>.+) with the all-zero correlation id$'))
def _receives_zero_id(conformance_world: World, reader: str, value: str) -> None:
    envelope = conformance_world.receive(reader)
    assert envelope.value == value_of(value), f"received {envelope.value!r}"
    assert envelope.correlation_id == bytes(32), (
        f"the envelope's correlation_id is {envelope.correlation_id!r}; over MQTT 3.1.1 a "
        "received envelope carries 32 zero bytes"
    )
