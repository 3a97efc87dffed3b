"""The requirements the kit verifies and the test cases that verify them.

Rules of this module:
- every requirement of the seed (REQ_0250..REQ_0261) is listed with its title
  and a statement in our own words;
- test ids from the seed keep their numbers (TEST_0102, TEST_0130..0140,
  TEST_0160); the kit's own test ids come from TEST_2500 up, a range the seed
  does not use, so they can never collide;
- a scenario names what it verifies with tags (``@REQ_0252 @TEST_0130``);
  ``check_tags`` is the rule that keeps tags and this registry in step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

FEATURE = "FEAT_0036"
KIT_TEST_RANGE: Final = range(2500, 3000)


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    statement: str


@dataclass(frozen=True)
class TestCase:
    id: str
    title: str
    verifies: str  # a requirement id


REQUIREMENTS: Final[dict[str, Requirement]] = {
    r.id: r
    for r in (
        Requirement(
            "REQ_0250",
            "MqttConnector implements Connector",
            "The MQTT connector is a Connector of the framework whose routing type is MqttRouting: "
            "it has a name, reports health, starts, creates writers and readers and closes.",
        ),
        Requirement(
            "REQ_0251",
            "MqttRouting carries topic, qos, retained",
            "An MQTT channel is addressed by a topic (or a filter for reading), a QoS level and a "
            "retained flag; invalid values are refused when the routing is made.",
        ),
        Requirement(
            "REQ_0252",
            "QoS 0 and 1 supported",
            "Messages travel at QoS 0 (at most once) and QoS 1 (at least once, acknowledged by "
            "PUBACK); QoS 2 is refused as not yet supported.",
        ),
        Requirement(
            "REQ_0253",
            "Retained-message publish supported",
            "A writer whose routing is retained publishes retained messages, which the broker "
            "hands to later subscribers.",
        ),
        Requirement(
            "REQ_0254",
            "Wildcard subscriptions supported",
            "Readers may subscribe with + and # filters; each received message reaches every "
            "reader whose filter matches it, and only those.",
        ),
        Requirement(
            "REQ_0255",
            "Username/password authentication",
            "Credentials from the options are presented on CONNECT; refused credentials stop "
            "the connector instead of retrying.",
        ),
        Requirement(
            "REQ_0256",
            "TLS is optional",
            "TLS can be turned on in the options; the broker's certificate is verified against "
            "the configured CA, and an untrusted broker is never reached.",
        ),
        Requirement(
            "REQ_0257",
            "MQTT 3.1.1 baseline",
            "The connector speaks MQTT 3.1.1 (protocol name MQTT, level 4).",
        ),
        Requirement(
            "REQ_0258",
            "Protocol I/O on a contained sidecar",
            "The protocol stack runs on the connector's own thread: application calls do no "
            "protocol I/O, no stack or event-loop type reaches the application, and closing "
            "leaves no thread behind.",
        ),
        Requirement(
            "REQ_0259",
            "Bridge channels are bounded",
            "The outbound and inbound bridges hold at most the number of messages the options "
            "set; concurrent senders lose nothing that was accepted.",
        ),
        Requirement(
            "REQ_0260",
            "Outbound bridge saturation surfaces as BackPressure",
            "When the outbound bridge is full, send returns BackPressure and health turns "
            "Degraded, once, until the bridge drained.",
        ),
        Requirement(
            "REQ_0261",
            "Inbound bridge saturation drops frames and signals Degraded",
            "When a reader's bridge is full the new message is dropped and counted; when the "
            "drops reach the threshold health turns Degraded once, until recovery re-arms it.",
        ),
    )
}

TESTS: Final[dict[str, TestCase]] = {
    t.id: t
    for t in (
        TestCase("TEST_2500", "Connector port: name, lifecycle, channels as Results", "REQ_0250"),
        TestCase("TEST_2501", "Channels created before start work after start", "REQ_0250"),
        TestCase(
            "TEST_2502",
            "Connection loss: Degraded, Connecting, Up; subscriptions restored",
            "REQ_0250",
        ),
        TestCase("TEST_2503", "QoS 1 accepted during an outage is delivered after it", "REQ_0250"),
        TestCase("TEST_2504", "A reader's fileno() is readable while something waits", "REQ_0250"),
        TestCase("TEST_2505", "As a context manager it starts and closes", "REQ_0250"),
        TestCase("TEST_2506", "A closed writer refuses; other writers carry on", "REQ_0250"),
        TestCase(
            "TEST_2507",
            "Iterating a reader ends once it is closed; a closed reader refuses, others receive",
            "REQ_0250",
        ),
        TestCase("TEST_2508", "Iterating a reader ends once its connector is closed", "REQ_0250"),
        TestCase(
            "TEST_2509",
            "Health subscriptions: next(timeout), iteration in order until closed",
            "REQ_0250",
        ),
        TestCase("TEST_2510", "Received routing carries topic, QoS and retained flag", "REQ_0251"),
        TestCase("TEST_2511", "Invalid routings are refused", "REQ_0251"),
        TestCase("TEST_0130", "QoS 0 round trip preserves payload bytes", "REQ_0252"),
        TestCase("TEST_0131", "QoS 1 delivery completes only after PUBACK", "REQ_0252"),
        TestCase("TEST_2521", "A persistent session gets the broker's backlog", "REQ_0252"),
        TestCase("TEST_2522", "close(timeout) delivers what was accepted at QoS 1", "REQ_0252"),
        TestCase(
            "TEST_2523", "close(timeout) without a broker fails the rest: ConnectorDown", "REQ_0252"
        ),
        TestCase("TEST_0132", "Retained message reaches a later subscriber", "REQ_0253"),
        TestCase("TEST_2531", "A second reader of a retained topic gets it too", "REQ_0253"),
        TestCase("TEST_0102", "Topic filter match table", "REQ_0254"),
        TestCase("TEST_0133", "Single-level wildcard subscription", "REQ_0254"),
        TestCase("TEST_0134", "Multi-level wildcard subscription", "REQ_0254"),
        TestCase("TEST_2540", "Overlapping readers each get their copy", "REQ_0254"),
        TestCase("TEST_2541", "$ topics are not delivered to wildcard filters", "REQ_0254"),
        TestCase(
            "TEST_2542", "Shared subscription: each message once across the group", "REQ_0254"
        ),
        TestCase("TEST_2543", "A refused subscription reaches the reader as an error", "REQ_0254"),
        TestCase("TEST_0135", "Username and password on CONNECT", "REQ_0255"),
        TestCase("TEST_0136", "TLS with a CA made at run time", "REQ_0256"),
        TestCase("TEST_2570", "CONNECT says MQTT level 4", "REQ_0257"),
        TestCase(
            "TEST_2571",
            "Correlation ids stay off the wire; received envelopes carry the zero id",
            "REQ_0257",
        ),
        TestCase("TEST_2580", "Port calls do no protocol I/O on the caller's thread", "REQ_0258"),
        TestCase("TEST_2581", "No stack or event-loop type in the port surface", "REQ_0258"),
        TestCase("TEST_2582", "Closing leaves no thread of the connector", "REQ_0258"),
        TestCase("TEST_0160", "Bounded bridges under concurrent senders", "REQ_0259"),
        TestCase("TEST_2590", "Bridge capacities come from the options", "REQ_0259"),
        TestCase("TEST_0139", "Outbound saturation: BackPressure and Degraded", "REQ_0260"),
        TestCase("TEST_2600", "Closing while Degraded goes straight to Down", "REQ_0260"),
        TestCase("TEST_0140", "Inbound saturation: counted drops and one Degraded", "REQ_0261"),
    )
}


def requirement_of(tags: Iterable[str]) -> list[str]:
    return sorted(t for t in tags if t in REQUIREMENTS)


def tests_of(tags: Iterable[str]) -> list[str]:
    return sorted(t for t in tags if t in TESTS)


def check_tags(scenario: str, tags: Iterable[str]) -> list[str]:
    """Problems with one scenario's tags (empty when they are right)."""
    tags = set(tags)
    problems = []
    reqs = [t for t in tags if t.startswith("REQ_")]
    tests = [t for t in tags if t.startswith("TEST_")]
    for tag in reqs:
        if tag not in REQUIREMENTS:
            problems.append(f"{scenario}: unknown requirement tag @{tag}")
    for tag in tests:
        if tag not in TESTS:
            problems.append(f"{scenario}: unknown test tag @{tag}")
        elif TESTS[tag].verifies not in tags:
            problems.append(
                f"{scenario}: @{tag} verifies {TESTS[tag].verifies}, which is not tagged"
            )
    if not reqs:
        problems.append(f"{scenario}: no @REQ_ tag")
    if not tests:
        problems.append(f"{scenario}: no @TEST_ tag")
    return problems
