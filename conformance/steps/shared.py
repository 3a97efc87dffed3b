"""Helpers and the per-scenario world fixture shared by every step module (no steps)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taktora_connector.adapters.mqtt import MqttRouting
from taktora_connector.conformance.factory import ConnectorFactory
from taktora_connector.conformance.statements import statements_of
from taktora_connector.conformance.world import BROKER_FACTS, CLAIMS, World, qos
from taktora_connector.domain import (
    LEGAL_TRANSITIONS,
    HealthEvent,
    HealthKind,
)

PAYLOADS: dict[str, bytes] = {
    "empty": b"",
    "binary-with-zero-bytes": bytes(range(256)) + b"\x00\x00\x00",
    "64KiB": bytes(i % 251 for i in range(65_536)),
}


KINDS = {kind.value: kind for kind in HealthKind}

#: What a Down or Degraded reason must say, as documented in docs/connector-contract.md:
#: a pattern (case-insensitive), never one implementation's exact wording.
REASONS: dict[str, str] = {
    "authentication": r"auth|password|credential",
    "certificate verification": r"certif|verif|trust",
}

#: The inbound-drop Degraded reason (REQ_0261): "dropped N inbound frames".
DROPPED_REASON = r"dropped (\d+) inbound frames?"


def illegal_events(events: list[HealthEvent]) -> list[str]:
    """Events that are not one of the nine legal edges, or do not start where the
    previous one ended."""
    problems = []
    previous: HealthKind | None = None
    for event in events:
        edge = (event.from_.kind, event.to.kind)
        if edge not in LEGAL_TRANSITIONS:
            problems.append(f"illegal edge {edge[0].value} -> {edge[1].value}")
        if previous is not None and event.from_.kind is not previous:
            problems.append(f"event from {edge[0].value} after one to {previous.value}")
        previous = event.to.kind
    return problems


@pytest.fixture
def conformance_world(
    connector_factory: ConnectorFactory, request: pytest.FixtureRequest
) -> Iterator[World]:
    """A fresh world per scenario, torn down whatever happened."""
    facts = request.config.stash.get(BROKER_FACTS, None)
    if facts is None:  # the kit's session did not run (its plugin is not the host's)
        url = request.config.getoption("--broker-url")
        world = World(connector_factory, str(url) if url else None)
        world.managed = str(request.config.getoption("--broker", None) or "amqtt")
    else:
        world = World(connector_factory, facts.url)
        world.managed = facts.managed
        world.probes = {p.name: p for p in facts.probes}
        world.run_broker = facts.run_broker
    world.claims = request.config.stash.get(CLAIMS, None)
    world.statements = statements_of(mark.name for mark in request.node.iter_markers())
    handler = _LineCollector(world.log_lines)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # every line a connector logs is checked for secrets
    try:
        yield world
    finally:
        world.close()
        root.removeHandler(handler)
        root.setLevel(level)


class _LineCollector(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.lines.append(repr(record.msg))


_OPTION_WORDS = {
    "keep alive": "keep_alive",
    "outbound capacity": "outbound_capacity",
    "inbound capacity": "inbound_capacity",
    "drop threshold": "inbound_drop_threshold",
    "reconnect attempt ceiling": "reconnect_attempt_ceiling",
}


def options_from(text: str) -> dict[str, Any]:
    """'with outbound capacity 2 and at most 4 messages in flight' -> options."""
    found: dict[str, Any] = {}
    text = text.replace("with ", "")
    for part in (p.strip() for p in text.split(" and ")):
        if not part:
            continue
        if part.startswith("at most ") and "in flight" in part:
            found["max_inflight"] = int(part.split()[2])
            continue
        for words, option in _OPTION_WORDS.items():
            if part.startswith(words):
                found[option] = int(part[len(words) :].strip())
                break
        else:
            raise AssertionError(f"unknown connector option in step: {part!r}")
    return found


def topic_text(name: str) -> str:
    """A topic as a feature file writes it: ``\\uFEFF`` and ``\\x00`` stand for
    the characters a feature file cannot show."""
    return re.sub(
        r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})",
        lambda m: chr(int(m.group(1) or m.group(2), 16)),
        name,
    )


def routing_for(
    world: World, kind: str, name: str, level: int, retained: bool = False
) -> MqttRouting:
    name = topic_text(name)
    if kind == "filter":
        return MqttRouting(filter=world.topic(name), qos=qos(level))
    return MqttRouting(topic=world.topic(name), qos=qos(level), retained=retained)


def value_of(text: str) -> Any:
    return json.loads(text)


def topics_in(text: str) -> list[str]:
    return [part for index, part in enumerate(text.split('"')) if index % 2 == 1]


def probe_all(world: World, party: str) -> None:
    """Every reader of the scenario is subscribed before the real messages go out."""
    for reader in world.readers:
        world.probe(reader, probe_writer(world, party, reader))
    world.drain_all(quiet=0.2)  # probes for one reader may have matched others


def probe_writer(world: World, party: str, reader: str) -> str:
    """A writer to a topic that ``reader`` matches (its own topic or filter, filled in)."""
    filt = world.reader(reader).descriptor.routing.subscription_filter()
    levels = ["p" if level == "+" else level for level in filt.split("/")]
    if levels[-1] == "#":
        levels[-1] = "p"
    name = f"probe-{reader}"
    if name not in world.writers:
        world.add_writer(party, name, MqttRouting(topic="/".join(levels), qos=qos(1)))
    return name


def events_settled(world: World, sub: str) -> list[Any]:
    time.sleep(0.3)  # a second event, if one were coming, would be here by now
    subscription = world.subscriptions[sub]
    found = []
    while (event := subscription.try_next()) is not None:
        found.append(event)
    return found


def stall(world: World, name: str, direction: str | None) -> None:
    proxy = world.party(name).proxy
    assert proxy is not None, f"{name!r} does not go through the fault proxy"
    proxy.pause(direction)
