"""The requirements the kit verifies and the test cases that verify them.

Rules of this module:
- every requirement of the seed (REQ_0250..REQ_0261) is listed with the seed's
  title and text verbatim (``seed_title``, ``seed_text``; ``tests/test_registry_seed.py``
  holds them to ``../shared/spec``) and, beside them, what it means in this
  implementation (``statement``), never instead of them;
- the twelve requirements are required of every connector; what a connector may
  or may not offer beyond them is an optional capability (``CAPABILITIES``): a
  connector claims one in its ``capabilities`` attribute. Claimed, the kit checks
  that it works; not claimed, that the connector refuses it with
  ``Failure(ConfigurationError)``. A capability is never evidence for a requirement;
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

from .statements import STATEMENTS

FEATURE = "FEAT_0036"
KIT_TEST_RANGE: Final = range(2500, 3000)


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str  # the seed's title, verbatim
    statement: str  # in this implementation: our reading, beside the seed's text
    seed_text: str = ""  # the seed's text, verbatim

    @property
    def seed_title(self) -> str:
        return self.title


@dataclass(frozen=True)
class Capability:
    """An optional capability: what a connector may offer beyond the requirements."""

    id: str  # the scenarios' tag, CAP_...
    name: str  # what a connector lists in its ``capabilities``
    title: str
    statement: str


@dataclass(frozen=True)
class TestCase:
    id: str
    title: str
    verifies: str  # a requirement or capability id
    #: For a capability's test: "claimed" (runs when the connector claims it) or
    #: "unclaimed" (runs when it does not: the refusal check); "" for a requirement's.
    when: str = ""


REQUIREMENTS: Final[dict[str, Requirement]] = {
    r.id: r
    for r in (
        Requirement(
            "REQ_0250",
            "MqttConnector implements Connector",
            "The MQTT connector is a Connector of the framework whose routing type is MqttRouting: "
            "it has a name, reports health, starts, creates writers and readers and closes.",
            seed_text=(
                "The connector crate shall expose MqttConnector<C: PayloadCodec> that implements "
                "the Connector trait with type Routing = MqttRouting."
            ),
        ),
        Requirement(
            "REQ_0251",
            "MqttRouting carries topic, qos, retained",
            "An MQTT channel is addressed by a topic (or a filter for reading), a QoS level and a "
            "retained flag; invalid values are refused when the routing is made.",
            seed_text=(
                "The MqttRouting struct shall carry the MQTT topic name, the QoS level, and a "
                "retained-message flag. It shall implement the Routing marker trait."
            ),
        ),
        Requirement(
            "REQ_0252",
            "QoS 0 and 1 supported",
            "Messages travel at QoS 0 (at most once) and QoS 1 (at least once, acknowledged by "
            "PUBACK); QoS 2 is refused as not yet supported.",
            seed_text=(
                "The connector shall support MQTT QoS levels AtMostOnce (0) and AtLeastOnce (1). "
                "QoS 2 is deferred to a follow-on spec."
            ),
        ),
        Requirement(
            "REQ_0253",
            "Retained-message publish supported",
            "A writer whose routing is retained publishes retained messages, which the broker "
            "hands to later subscribers.",
            seed_text=(
                "When MqttRouting::retained is true, the connector shall publish the envelope "
                "payload as a retained MQTT message."
            ),
        ),
        Requirement(
            "REQ_0254",
            "Wildcard subscriptions supported",
            "Readers may subscribe with + and # filters; each received message reaches every "
            "reader whose filter matches it, and only those.",
            seed_text=(
                "The connector shall accept inbound subscriptions whose topic includes the MQTT "
                "wildcards + (single-level) and # (multi-level), and shall demultiplex received "
                "messages to the matching ChannelReader instance(s)."
            ),
        ),
        Requirement(
            "REQ_0255",
            "Username/password authentication",
            "Credentials from the options are presented on CONNECT; refused credentials stop "
            "the connector instead of retrying.",
            seed_text=(
                "The connector shall accept username and password credentials in "
                "MqttConnectorOptions and present them on the MQTT CONNECT packet."
            ),
        ),
        Requirement(
            "REQ_0256",
            "TLS is optional via cargo feature",
            "Python has no cargo features: TLS ships with the connector (the standard ssl "
            "module, no extra dependency) and is off unless the options turn it on; the broker's "
            "certificate is then verified against the configured CA, and an untrusted broker is "
            "never reached. Client certificates stay out of the kit's checks, as the seed defers "
            "them.",
            seed_text=(
                "The connector shall provide TLS support via rustls behind a default-off tls "
                "cargo feature. Client-certificate authentication is deferred to a follow-on "
                "spec."
            ),
        ),
        Requirement(
            "REQ_0257",
            "MQTT 3.1.1 baseline",
            "The connector speaks MQTT 3.1.1 (protocol name MQTT, level 4). MQTT 5 features are "
            "no requirement: shared subscriptions are an optional capability "
            "(CAP_SHARED_SUBSCRIPTIONS), checked only for a connector that claims it, and "
            "otherwise only refused.",
            seed_text=(
                "The connector shall target MQTT protocol version 3.1.1. MQTT 5.0 features (user "
                "properties, shared subscriptions, response topic) are deferred to a follow-on "
                "spec."
            ),
        ),
        Requirement(
            "REQ_0258",
            "Tokio sidecar inside the gateway crate",
            "There is no tokio here: the protocol stack (the connector's MQTT client and its "
            "event loop, whatever they are) runs on the connector's own thread, its sidecar. "
            "Application calls do no protocol I/O, no stack or event-loop type reaches the "
            "application, and closing leaves no thread behind.",
            seed_text=(
                "The MQTT gateway shall host rumqttc::EventLoop on a tokio runtime contained "
                "inside taktora-connector-mqtt. Tokio shall not leak into taktora-executor’s "
                "WaitSet thread."
            ),
        ),
        Requirement(
            "REQ_0259",
            "Bridge channels are bounded",
            "The outbound and inbound bridges hold at most the number of messages the options "
            "set; concurrent senders lose nothing that was accepted.",
            seed_text=(
                "The outbound (taktora-executor → tokio) and inbound (tokio → taktora-executor) "
                "bridges shall be bounded channels with configurable capacity in "
                "MqttConnectorOptions."
            ),
        ),
        Requirement(
            "REQ_0260",
            "Outbound bridge saturation surfaces as BackPressure",
            "When the outbound bridge is full, send returns BackPressure and health turns "
            "Degraded, once, until the bridge drained.",
            seed_text=(
                "When the outbound bridge channel is full, ChannelWriter::send shall return "
                "ConnectorError::BackPressure and the connector shall report "
                "ConnectorHealth::Degraded."
            ),
        ),
        Requirement(
            "REQ_0261",
            "Inbound bridge saturation drops frames and signals Degraded",
            "When a reader's bridge is full the new message is dropped and counted; when the "
            "drops reach the threshold health turns Degraded once, until recovery re-arms it.",
            seed_text=(
                "When the inbound bridge channel is full, the gateway shall (1) increment the "
                "per-channel inbound-drop counter exposed via InboundOutcome::Dropped { count } "
                "on the bridge’s try_send return, (2) drop the offending message for that "
                'delivery, and (3) emit a ConnectorHealth::Degraded { reason: "dropped N inbound '
                'frames" } health transition when the cumulative inbound-drop count crosses the '
                "connector’s configured inbound_drop_threshold (default 1). The Degraded "
                "transition is emitted at most once until the connector recovers to Up via the "
                "underlying stack’s recovery path; the cumulative drop count itself is observable "
                "through every subsequent InboundOutcome::Dropped return."
            ),
        ),
    )
}

CAPABILITIES: Final[dict[str, Capability]] = {
    c.id: c
    for c in (
        Capability(
            "CAP_SHARED_SUBSCRIPTIONS",
            "shared-subscriptions",
            "Shared subscriptions ($share/<group>/<filter>)",
            "A reader routing with a share group subscribes $share/<group>/<filter>; the broker "
            "hands each message to one member of the group, and the member's reader still "
            "matches the real topic against the filter. An MQTT 5 feature (REQ_0257 defers "
            "it) that MQTT 3.1.1 brokers such as mosquitto offer too. Not claimed: a share "
            "group is refused with Failure(ConfigurationError), never subscribed as a plain "
            "filter.",
        ),
    )
}

#: The capability names a connector may list in its ``capabilities``.
CAPABILITY_NAMES: Final = {c.name: c for c in CAPABILITIES.values()}

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
        TestCase(
            "TEST_2610",
            "After a loss, Down after exactly reconnect_attempt_ceiling + 1 failed attempts",
            "REQ_0250",
        ),
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
        TestCase(
            "TEST_2512", "A received envelope's QoS is the QoS it was delivered at", "REQ_0251"
        ),
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
            "TEST_2542",
            "Shared subscription: each message once across the group",
            "CAP_SHARED_SUBSCRIPTIONS",
            when="claimed",
        ),
        TestCase(
            "TEST_2544",
            "Shared subscription not claimed: a share group is refused, nothing subscribed",
            "CAP_SHARED_SUBSCRIPTIONS",
            when="unclaimed",
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
        TestCase(
            "TEST_2611", "A connector's whole life on the wire keeps the statements", "REQ_0257"
        ),
        TestCase("TEST_2612", "A CONNECT with credentials carries what its flags say", "REQ_0255"),
        TestCase("TEST_2613", "Packet identifiers: never 0, never reused in use", "REQ_0257"),
        TestCase("TEST_2614", "A resumed session resends: DUP, same ids, in order", "REQ_0257"),
        TestCase("TEST_2615", "QoS 1 received: one PUBACK each, its id, in order", "REQ_0257"),
        TestCase("TEST_2616", "Idle: a packet within every keep-alive interval", "REQ_0257"),
        TestCase("TEST_2620", "Hostile broker: a PUBLISH before CONNACK", "REQ_0257"),
        TestCase("TEST_2621", "Hostile broker: a wildcard in a topic name", "REQ_0257"),
        TestCase("TEST_2622", "Hostile broker: the empty topic name", "REQ_0257"),
        TestCase("TEST_2623", "Hostile broker: a topic name of ill-formed UTF-8", "REQ_0257"),
        TestCase("TEST_2624", "Hostile broker: U+0000 in a topic name", "REQ_0257"),
        TestCase("TEST_2625", "Hostile broker: a PUBLISH with QoS 3", "REQ_0257"),
        TestCase("TEST_2626", "Hostile broker: a QoS 0 PUBLISH with DUP", "REQ_0257"),
        TestCase("TEST_2627", "Hostile broker: packet identifier 0 at QoS 1", "REQ_0257"),
        TestCase("TEST_2628", "Hostile broker: reserved fixed-header flags", "REQ_0257"),
        TestCase("TEST_2629", "Hostile broker: a reserved packet type", "REQ_0257"),
        TestCase("TEST_2630", "Hostile broker: a remaining length that lies", "REQ_0257"),
        TestCase("TEST_2631", "Hostile broker: a SUBACK without return codes", "REQ_0257"),
        TestCase("TEST_2632", "Hostile broker: CONNACK refusal codes 1 to 5", "REQ_0257"),
        TestCase("TEST_2633", "Hostile broker: its bytes one at a time", "REQ_0257"),
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


def capability_of(tags: Iterable[str]) -> list[str]:
    return sorted(t for t in tags if t in CAPABILITIES)


def tests_of(tags: Iterable[str]) -> list[str]:
    return sorted(t for t in tags if t in TESTS)


def check_tags(scenario: str, tags: Iterable[str]) -> list[str]:
    """Problems with one scenario's tags (empty when they are right)."""
    tags = set(tags)
    problems = []
    reqs = [t for t in tags if t.startswith("REQ_")]
    caps = [t for t in tags if t.startswith("CAP_")]
    tests = [t for t in tags if t.startswith("TEST_")]
    for tag in reqs:
        if tag not in REQUIREMENTS:
            problems.append(f"{scenario}: unknown requirement tag @{tag}")
    for tag in caps:
        if tag not in CAPABILITIES:
            problems.append(f"{scenario}: unknown capability tag @{tag}")
    if reqs and caps:
        problems.append(
            f"{scenario}: a capability's scenario is no evidence for a requirement "
            f"(tagged {', '.join(sorted(reqs))} and {', '.join(sorted(caps))})"
        )
    for tag in tags:
        if tag.startswith("MQTT-") and tag not in STATEMENTS:
            problems.append(f"{scenario}: unknown MQTT 3.1.1 statement tag @{tag}")
    for tag in tests:
        if tag not in TESTS:
            problems.append(f"{scenario}: unknown test tag @{tag}")
        elif TESTS[tag].verifies not in tags:
            problems.append(
                f"{scenario}: @{tag} verifies {TESTS[tag].verifies}, which is not tagged"
            )
    if not reqs and not caps:
        problems.append(f"{scenario}: no @REQ_ or @CAP_ tag")
    if not tests:
        problems.append(f"{scenario}: no @TEST_ tag")
    return problems
