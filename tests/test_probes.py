"""The kit's broker probes: what they find on real brokers, and on one unfit for the kit."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from taktora_connector.conformance.brokers import EmbeddedBroker, MosquittoBroker, RabbitMQBroker
from taktora_connector.conformance.probes import KNOWN, Probe, known, probe_broker, unfit

from .conftest import require_mosquitto
from .hostile import CONNACK_OK, FakeBroker
from .kit_runs import run_kit


def connack_code(port: int, username: str, password: str) -> int:
    """The CONNACK return code a CONNECT with these credentials gets."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
    client.username_pw_set(username, password)
    codes: list[int] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: codes.append(reason.value)
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while not codes and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    assert codes, "no CONNACK within 10 s"
    return codes[0]


def found(probes: list[Probe]) -> list[tuple[str, bool, bool]]:
    return [(p.name, p.ok, p.required) for p in probes]


def test_the_kit_s_amqtt_is_what_the_kit_says_it_is() -> None:
    """The known table the kit reports for its own amqtt (no probe at run time) is
    what a probe of one finds, the RETAIN flag of a session's backlog corrected."""
    with EmbeddedBroker() as broker:
        assert found(probe_broker("127.0.0.1", broker.port)) == list(KNOWN["amqtt"])
    assert found(known("amqtt")) == list(KNOWN["amqtt"])


@pytest.mark.mosquitto
def test_the_kit_s_mosquitto_is_what_the_kit_says_it_is() -> None:
    require_mosquitto()
    with MosquittoBroker(extra_config="sys_interval 1") as broker:
        assert found(probe_broker("127.0.0.1", broker.port)) == list(KNOWN["mosquitto"])


def test_a_broker_that_acknowledges_nothing_is_unfit_in_one_message() -> None:
    with FakeBroker([CONNACK_OK], close=False) as broker:
        probes = probe_broker("127.0.0.1", broker.port)
    assert found(probes) == [("retained", False, True)]  # the rest would only wait
    why = unfit(probes)
    assert why is not None
    assert "unfit for the conformance kit" in why
    assert "retained: no (a retained QoS 1 PUBLISH got no PUBACK)" in why
    assert "No connector was judged on it" in why


def test_the_kit_refuses_an_unfit_broker_and_judges_no_connector(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with FakeBroker([CONNACK_OK], close=False) as broker:
        code, _, output = run_kit(
            tmp_path / "reports", "--broker-url", f"mqtt://127.0.0.1:{broker.port}"
        )
    assert code == 2, output[-2000:]
    assert "the broker is unfit for the conformance kit" in output
    assert not (tmp_path / "reports" / "report.json").exists()


@pytest.mark.slow
def test_rabbitmq_grants_share_but_treats_it_as_a_literal_topic() -> None:
    """Debian's RabbitMQ 3.10: fit for the kit; no shared subscriptions (the probe's
    evidence names the literal topic), no $SYS; its session backlog is honest."""
    with RabbitMQBroker() as broker:
        probes = {p.name: p for p in probe_broker("127.0.0.1", broker.port)}
        # a name and password that look like rabbitmqctl switches are still a user
        broker.add_user("-user", "-hJV4w1_OvnZ9GvpWtmqKA")
        assert connack_code(broker.port, "-user", "-hJV4w1_OvnZ9GvpWtmqKA") == 0
        assert connack_code(broker.port, "-user", "wrong") != 0
    assert unfit(list(probes.values())) is None
    assert probes["retain flag on a session's backlog"].ok
    assert not probes["shared subscriptions"].ok
    assert "literal topic" in probes["shared subscriptions"].evidence
    assert not probes["$SYS"].ok
