"""``BrokerCheck``, the public check of a broker's bytes for connectors on other MQTT
libraries (the gmqtt example uses it): byte for byte, without a network."""

from __future__ import annotations

import pytest

from taktora_connector.adapters.mqtt.protocol.broker_check import BrokerCheck, topic_name_flaw
from taktora_connector.adapters.mqtt.protocol.packets import (
    PubAck,
    Publish,
    Subscribe,
    encode,
)

CONNACK = b"\x20\x02\x00\x00"
SUBSCRIBE = encode(Subscribe(1, [("a/+", 1), ("b/#", 0)]))
SUBACK = b"\x90\x04\x00\x01\x01\x00"
GOOD = encode(Publish(b"a/x", b"payload", 1, False, False, 7))


def subscribed() -> BrokerCheck:
    check = BrokerCheck()
    check.sent(SUBSCRIBE)
    assert check.received(CONNACK + SUBACK) == (len(CONNACK + SUBACK), None)
    assert check.connected
    check.sent(encode(Subscribe(2, [("c", 1), ("d", 1)])))  # in flight
    return check


def test_what_a_broker_may_send_passes_whole_in_any_chunking() -> None:
    stream = CONNACK + SUBACK + GOOD + encode(PubAck(3)) + b"\xd0\x00"
    for size in (1, 2, 5, len(stream)):
        check = BrokerCheck()
        check.sent(SUBSCRIBE)
        for start in range(0, len(stream), size):
            chunk = stream[start : start + size]
            assert check.received(chunk) == (len(chunk), None)


@pytest.mark.parametrize(
    ("bad", "statement"),
    [
        (encode(Publish(b"a/+", b"x", 1, False, False, 8)), "MQTT-3.3.2-2"),
        (encode(Publish(b"", b"x", 0)), "MQTT-4.7.3-1"),
        (b"\x30\x05\x00\x02\xff\xfex", "MQTT-1.5.3-1"),
        (encode(Publish(b"a\x00b", b"x", 0)), "MQTT-1.5.3-2"),
        (b"\x36\x06\x00\x01a\x00\x01x", "MQTT-3.3.1-4"),
        (b"\x32\x06\x00\x01a\x00\x00x", "MQTT-2.3.1-1"),
        (b"\x38\x04\x00\x01ax", "MQTT-3.3.1-2"),
        (b"\xd1\x00", "MQTT-2.2.2-2"),
        (b"\x90\x03\x00\x02\x01", "MQTT-3.8.4-5"),  # one code for two filters
        (b"\x90\x03\x00\x09\x01", "MQTT-3.8.4-2"),  # answers no SUBSCRIBE
        (b"\x20\x02\x00\x00", "MQTT-3.2.0-1"),  # a second CONNACK
    ],
)
def test_the_good_before_a_violation_is_handed_on_and_the_violation_named(
    bad: bytes, statement: str
) -> None:
    check = subscribed()
    fine, violation = check.received(GOOD + bad + GOOD)
    assert fine == len(GOOD)
    assert violation is not None
    assert statement in str(violation)


def test_anything_before_connack_is_a_violation_and_a_new_connection_starts_over() -> None:
    check = BrokerCheck()
    fine, violation = check.received(GOOD + CONNACK)
    assert fine == 0
    assert violation is not None and "MQTT-3.2.0-1" in str(violation)
    check.connection_opened()
    assert check.received(CONNACK + GOOD) == (len(CONNACK + GOOD), None)


def test_a_packet_that_began_in_an_earlier_chunk_is_not_counted_twice() -> None:
    check = subscribed()
    bad = encode(Publish(b"a/#", b"x", 0))
    assert check.received(bad[:3]) == (3, None)  # not judged yet: handed on as it comes
    fine, violation = check.received(bad[3:])
    assert fine == 0
    assert violation is not None


@pytest.mark.parametrize(
    ("raw", "flaw"),
    [(b"a/b", None), (b"\xef\xbb\xbfa", None), (b"a/+", "MQTT-3.3.2-2"), (b"", "MQTT-4.7.3-1")],
)
def test_topic_name_flaw_names_the_statement(raw: bytes, flaw: str | None) -> None:
    found = topic_name_flaw(raw)
    assert (found is None) if flaw is None else (found is not None and flaw in found)
