"""Shared subscriptions: the routing rule, the registry, and two brokers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.adapters.mqtt.protocol.subscribe_handshake import FilterChange
from taktora_connector.adapters.mqtt.sidecar.subscriptions import Subscriptions
from taktora_connector.conformance.brokers import EmbeddedBroker, MosquittoBroker
from taktora_connector.domain import ChannelDescriptor, ConfigurationError

from .conftest import ConnectFn, require_mosquitto, unique_id, wait_until


def test_shared_routing_subscribes_with_the_prefix_and_matches_without() -> None:
    routing = MqttRouting(filter="plant/+/temperature", share_group="ingest")
    assert routing.broker_filter() == "$share/ingest/plant/+/temperature"
    assert routing.subscription_filter() == "plant/+/temperature"
    plain = MqttRouting(filter="plant/+/temperature")
    assert plain.broker_filter() == plain.subscription_filter() == "plant/+/temperature"
    by_topic = MqttRouting(topic="plant/a/t", share_group="g")
    assert by_topic.broker_filter() == "$share/g/plant/a/t"


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("", "must not be empty"),
        ("a/b", "'/'"),
        ("a+", "'\\+'"),
        ("#", "'#'"),
        ("a\x00", "NUL"),
        ("\udc80", "not valid UTF-8"),
        (7, "must be a str"),
        ("g" * 65_535, "at most 65535"),
    ],
)
def test_bad_share_groups_are_configuration_errors(group: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MqttRouting(filter="plant/#", share_group=group)


def test_share_prefix_in_a_filter_points_to_share_group() -> None:
    with pytest.raises(ConfigurationError, match="share_group="):
        MqttRouting(filter="$share/g/plant/#")


def test_groups_are_distinct_subscriptions_with_one_matcher_filter() -> None:
    subs: Subscriptions[str] = Subscriptions(lambda: None)
    plain = MqttRouting(filter="plant/+/t").broker_filter()
    ingest = MqttRouting(filter="plant/+/t", share_group="ingest").broker_filter()
    audit = MqttRouting(filter="plant/+/t", share_group="audit").broker_filter()
    subs.add(plain, "r-plain", 0)
    subs.add(ingest, "r-ingest", 1)
    subs.add(audit, "r-audit", 0)
    assert subs.changes() == [
        FilterChange("$share/audit/plant/+/t", 0),
        FilterChange("$share/ingest/plant/+/t", 1),
        FilterChange("plant/+/t", 0),
    ]
    assert sorted(subs.matcher.match("plant/a/t")) == ["r-audit", "r-ingest", "r-plain"]
    subs.remove(ingest, "r-ingest")
    assert subs.changes() == [FilterChange("$share/ingest/plant/+/t", None)]
    assert sorted(subs.matcher.match("plant/a/t")) == ["r-audit", "r-plain"]
    assert subs.readers_of(audit) == ["r-audit"]


def _shared_reader(conn: Any, name: str, group: str | None, prefix: str) -> Any:
    routing = MqttRouting(filter=f"{prefix}/+/t", share_group=group, qos=MqttQos.AT_LEAST_ONCE)
    return conn.create_reader(ChannelDescriptor(name, routing)).unwrap()


def test_mosquitto_hands_each_message_to_one_member(
    brokers: Callable[..., EmbeddedBroker | MosquittoBroker], connect: ConnectFn
) -> None:
    broker = brokers("mosquitto")
    prefix = f"share/{unique_id()}"
    members = [connect(broker.port, inbound_capacity=512) for _ in range(2)]
    readers = [_shared_reader(m, "in", "ingest", prefix) for m in members]
    watcher = connect(broker.port, inbound_capacity=512)
    everything = _shared_reader(watcher, "all", None, prefix)
    publisher = connect(broker.port, outbound_capacity=512)
    writers = [
        publisher.create_writer(
            ChannelDescriptor(
                f"w{i}", MqttRouting(topic=f"{prefix}/{i}/t", qos=MqttQos.AT_LEAST_ONCE)
            )
        ).unwrap()
        for i in range(4)
    ]
    # Subscriptions are asynchronous: probe until both members and the watcher hear.
    heard: dict[int, set[int]] = {0: set(), 1: set()}

    def probe() -> bool:
        writers[0].send({"probe": True}).unwrap().delivery.wait(5).unwrap()
        for index, reader in enumerate(readers):
            while reader.recv(timeout=0.05).unwrap() is not None:
                heard[index].add(1)
        return all(heard.values())

    wait_until(probe, 10, "both group members to receive")
    for reader in [*readers, everything]:
        while reader.recv(timeout=0.2).unwrap() is not None:
            pass
    sent = [{"n": n} for n in range(200)]
    for n, value in enumerate(sent):
        writers[n % 4].send(value).unwrap()
    for writer in writers:
        writer.flush(5).unwrap()
    got: list[list[int]] = [[], []]
    for index, reader in enumerate(readers):
        while (envelope := reader.recv(timeout=0.5).unwrap()) is not None:
            got[index].append(envelope.value["n"])
            assert envelope.routing.topic.startswith(prefix)
    watched = []
    while (envelope := everything.recv(timeout=0.5).unwrap()) is not None:
        watched.append(envelope.value["n"])
    assert sorted(got[0] + got[1]) == list(range(200))  # each exactly once across the group
    assert got[0] and got[1]  # and both members had a share
    assert sorted(watched) == list(range(200))  # the unshared subscription saw every one


def test_amqtt_accepts_a_shared_subscription_but_delivers_nothing(
    amqtt_broker: EmbeddedBroker, connect: ConnectFn
) -> None:
    """Why the kit's shared-subscription scenario is NOT RUN on amqtt: if amqtt
    learns ``$share``, this fails and the scenario's skip can go."""
    conn = connect(amqtt_broker.port)
    reader = _shared_reader(conn, "in", "ingest", "amqtt")
    plain = _shared_reader(connect(amqtt_broker.port), "plain", None, "amqtt")
    writer = conn.create_writer(
        ChannelDescriptor("w", MqttRouting(topic="amqtt/a/t", qos=MqttQos.AT_LEAST_ONCE))
    ).unwrap()

    def heard_plain() -> bool:
        writer.send({"n": 0}).unwrap().delivery.wait(5).unwrap()
        return plain.recv(timeout=0.1).unwrap() is not None

    wait_until(heard_plain, 10, "the plain subscription to receive")
    assert reader.recv(timeout=0.5).unwrap() is None


def _scenario(report: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in report["scenarios"] if s["id"] == "TEST_2542"]
    assert len(found) == 1
    return found[0]


def test_kit_scenario_passes_the_reference_on_a_broker_url(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    from .kit_runs import run_kit

    # (that ignores_share_group fails it is the faulty-connector pool's check)
    url = ["--broker-url", mosquitto_broker.url, "-m", "TEST_2542"]
    _, report, output = run_kit(tmp_path / "reference", *url, measure=True)
    assert _scenario(report)["outcome"] == "passed", output[-3000:]


def test_kit_scenario_runs_on_a_mosquitto_it_starts(tmp_path: Path) -> None:
    from .kit_runs import run_kit

    require_mosquitto()
    _, report, output = run_kit(tmp_path / "own", "-m", "TEST_2542", measure=True)
    assert _scenario(report)["outcome"] == "passed", output[-3000:]


def test_kit_scenario_is_not_run_without_mosquitto_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taktora_connector.conformance.steps import shared_subscriptions as steps
    from taktora_connector.conformance.world import World

    monkeypatch.setattr(steps, "mosquitto_binary", lambda: None)
    world = World(lambda options, codec: None, None)  # type: ignore[arg-type,return-value]
    with pytest.raises(pytest.skip.Exception, match="mosquitto, which the kit would start"):
        steps._sharing_broker(world, None)  # type: ignore[arg-type]
    assert world.broker is None and world.port == 0  # nothing was started


def test_a_writer_with_a_share_group_is_refused() -> None:
    from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions

    connector: MqttConnector[Any] = MqttConnector(MqttConnectorOptions(client_id="share-w"))
    try:
        routing = MqttRouting(topic="plant/a/t", share_group="ingest")
        refused = connector.create_writer(ChannelDescriptor("w", routing))
        assert isinstance(refused.failure(), ConfigurationError)
        assert "only for reading" in str(refused.failure())
    finally:
        connector.close()
