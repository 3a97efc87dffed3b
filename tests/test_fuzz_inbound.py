"""Bounded fuzzing of inbound topic and payload handling, and properties of the topic rules."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttRouting
from taktora_connector.adapters.mqtt.topics import validate_filter, validate_topic_name
from taktora_connector.domain import ChannelDescriptor, ConfigurationError

from .conftest import ConnectFn
from .hostile import CONNACK_OK, FakeBroker, publish

SUBACK = b"\x90\x03\x00\x01\x00"

raw_topics = st.one_of(
    st.text(
        st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=30
    ).map(lambda t: t.encode("utf-8")),
    st.binary(min_size=1, max_size=30),  # often not UTF-8 at all
)


def is_topic_name(topic: bytes) -> bool:
    """UTF-8, not empty, no wildcard, no U+0000: what a broker may send."""
    try:
        text = topic.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and not any(c in text for c in "+#\x00")


def arrives(topic: bytes) -> bool:
    """What the connector must deliver to a '#' reader: topic names not starting with
    '$'."""
    return is_topic_name(topic) and not topic.startswith(b"$")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(raw_topics, st.binary(max_size=300), st.sampled_from([0, 1])),
        min_size=1,
        max_size=15,
    )
)
def test_any_inbound_publish_is_delivered_exactly_until_one_is_no_topic_name(
    connect: ConnectFn, messages: list[tuple[bytes, bytes, int]]
) -> None:
    """Every message is delivered exactly, in order, up to the first whose topic is no
    topic name: that one closes the connection (MQTT-4.8.0-1), is counted, and nothing
    after it on that connection reaches the reader (the broker here plays the same
    messages again on the next connection: the reader sees the same ones again)."""
    script = [CONNACK_OK, SUBACK]
    for index, (topic, payload, qos) in enumerate(messages):
        script.append(publish(topic, payload, qos, packet_id=index + 2))
    script.append(publish(b"end/marker", b"END"))
    bad = next((i for i, (t, _, _) in enumerate(messages) if not is_topic_name(t)), None)
    before = messages if bad is None else messages[:bad]
    expected = [(t.decode(), p, q) for t, p, q in before if arrives(t)]
    with FakeBroker(script, close=False) as fake:
        conn = connect(fake.port, codec=BytesCodec(), start=False)
        reader = conn.create_reader(ChannelDescriptor("all", MqttRouting(filter="#"))).unwrap()
        conn.start().unwrap()
        got: list[Any] = []
        while len(got) < len(expected) or (bad is None and got[-1:] != [END]):
            envelope = reader.recv(10).unwrap()
            assert envelope is not None, f"only {got} arrived of {expected}"
            got.append((envelope.routing.topic, envelope.payload, int(envelope.routing.qos)))
        if bad is None:
            assert got == [*expected, END]
            assert conn.rejected_inbound == 0
        else:
            assert got == expected
            deadline = time.monotonic() + 10
            while conn.rejected_inbound == 0 or fake.connects < 2:
                assert time.monotonic() < deadline, "the bad one never closed the connection"
                extra = reader.recv(0.05).unwrap()
                assert extra is None or extra.payload != b"END", "read past the bad one"
            assert conn.rejected_inbound >= 1
        assert conn.sidecar is not None
        assert conn.sidecar.is_alive()
        conn.close(timeout=0.5)


END = ("end/marker", b"END", 0)


names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=50)


@given(names)
def test_topic_names_are_valid_exactly_when_the_rules_say(name: str) -> None:
    valid = "\x00" not in name and "+" not in name and "#" not in name
    try:
        validate_topic_name(name)
    except ConfigurationError:
        assert not valid
    else:
        assert valid


@given(
    st.lists(
        st.one_of(
            st.just("+"),
            st.just("#"),
            st.text(
                st.characters(exclude_categories=["Cs"], exclude_characters="\x00/"), max_size=5
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_filters_are_valid_exactly_when_the_rules_say(levels: list[str]) -> None:
    text = "/".join(levels)
    valid = bool(text) and all(
        ("#" not in level or (level == "#" and index == len(levels) - 1))
        and ("+" not in level or level == "+")
        for index, level in enumerate(levels)
    )
    try:
        validate_filter(text)
    except ConfigurationError:
        assert not valid
    else:
        assert valid
