"""Steps of features/client_statements.feature: the audit of what a connector sent,
statement by statement (``wire_rules``), and the steps that set its traffic up."""

from __future__ import annotations

import time

from pytest_bdd import parsers, then, when

from taktora_connector.conformance.proxy import PacketType
from taktora_connector.conformance.wire_rules import RULES, Finding, audit
from taktora_connector.conformance.world import PATIENCE, World, wait_for

from .shared import topic_text, value_of

#: How long the audit waits for what may still be on its way (a PUBACK, the close
#: after a DISCONNECT) before it judges: a passing audit does not wait at all.
SETTLE = 3.0


def audit_party(world: World, name: str, statements: list[str]) -> dict[str, Finding]:
    """Judge ``statements`` over connector ``name``'s traffic, waiting up to ``SETTLE``
    for a failure to clear (what is late, not wrong); record each in the world."""
    deadline = time.monotonic() + SETTLE
    while True:
        found = audit(world.traffic(name), statements)
        failing = [f for f in found.values() if f.problems]
        if not failing or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    for finding in found.values():
        world.judge(finding.statement, finding.outcome, "\n".join(finding.problems))
    return found


@then(parsers.parse('what "{name}" sent keeps the client statements of this scenario'))
def _audit(conformance_world: World, name: str) -> None:
    world = conformance_world
    wanted = [s for s in world.statements if s in RULES]
    found = audit_party(world, name, wanted)
    failing = [f for f in found.values() if f.problems]
    assert not failing, "\n".join(
        f"{f.statement}: "
        + "; ".join(f.problems[:5])
        + (f" (and {len(f.problems) - 5} more)" if len(f.problems) > 5 else "")
        for f in failing
    )


@then(
    parsers.re(
        r'"(?P<reader>[^"]+)" receives the value (?P<value>.+) with its topic name as sent, '
        r"U\+FEFF kept$"
    )
)
def _bom_kept(conformance_world: World, reader: str, value: str) -> None:
    """MQTT-1.5.3-3: U+FEFF in a topic name is part of it, on the wire and in the routing."""
    world = conformance_world
    try:
        envelope = world.receive(reader)
        assert envelope.value == value_of(value), f"received {envelope.value!r}"
    except AssertionError as err:
        world.judge("MQTT-1.5.3-3", "failed", str(err).splitlines()[0])
        raise
    routing = world.readers[reader].descriptor.routing
    wanted = routing.topic or ""
    problems = []
    if envelope.routing.topic != wanted:
        problems.append(f"received on {envelope.routing.topic!r}, sent to {wanted!r}")
    owner = world.party(world.reader_owner[reader])
    raw = wanted.encode("utf-8")
    publishes = [
        p for p in owner.wire(PacketType.PUBLISH, "out") if p.body[2 : 2 + len(raw)] == raw
    ]
    if not publishes:
        problems.append(f"no PUBLISH on the wire carried the topic name {raw!r} as sent")
    outcome = "failed" if problems else "passed"
    world.judge("MQTT-1.5.3-3", outcome, "; ".join(problems))
    assert not problems, "MQTT-1.5.3-3: " + "; ".join(problems)


@when(parsers.parse('the wire carried {count:d} {kind} packets from "{name}"'))
def _packets_seen(conformance_world: World, count: int, kind: str, name: str) -> None:
    party = conformance_world.party(name)
    wanted = PacketType.__members__[kind]
    wait_for(
        lambda: len(party.wire(wanted)) >= count,
        PATIENCE,
        f"{count} {kind} packets from {name!r} on the wire",
    )


@when(parsers.parse('the connection of "{name}" is cut and the path released'))
def _cut_and_release(conformance_world: World, name: str) -> None:
    proxy = conformance_world.party(name).proxy
    assert proxy is not None, f"{name!r} does not go through the kit's proxy"
    proxy.cut()
    proxy.resume()


@when(parsers.parse('"{name}" has had the time to unsubscribe'))
def _time_to_unsubscribe(conformance_world: World, name: str) -> None:
    """Up to 2 s for an UNSUBSCRIBE (a connector need not send one when a reader closes:
    then the UNSUBSCRIBE statements are not seen, not failed)."""
    party = conformance_world.party(name)
    deadline = time.monotonic() + 2.0
    while not party.wire(PacketType.UNSUBSCRIBE) and time.monotonic() < deadline:
        time.sleep(0.02)


@when(parsers.parse("{seconds:g} seconds pass"))
def _seconds_pass(seconds: float) -> None:
    time.sleep(seconds)


def topic_bytes(text: str) -> bytes:
    """A topic name as a hostile broker sends it: ``\\xNN`` is the byte NN (so it can
    be ill-formed UTF-8), the rest is UTF-8."""
    out = bytearray()
    index = 0
    while index < len(text):
        if text.startswith("\\x", index) and index + 4 <= len(text):
            out.append(int(text[index + 2 : index + 4], 16))
            index += 4
        else:
            out += topic_text(text[index]).encode("utf-8")
            index += 1
    return bytes(out)
