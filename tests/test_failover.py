"""Several servers: each attempt takes the next, the backoff grows per round, reasons
name the server, the server in use is observable, and TLS checks each server's name."""

from __future__ import annotations

import logging
import random
import socket
import time
from typing import Any

import pytest

from taktora_connector.adapters.aio import AsyncMqttConnector
from taktora_connector.adapters.health import HealthBroadcaster
from taktora_connector.adapters.mqtt import (
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
    TlsOptions,
)
from taktora_connector.adapters.mqtt.health_control import HealthController, Phase
from taktora_connector.adapters.mqtt.protocol.backoff import Backoff
from taktora_connector.adapters.mqtt.sidecar.connecting import Reconnect
from taktora_connector.conformance.brokers import EmbeddedBroker, MosquittoBroker, TlsMaterial
from taktora_connector.domain import ChannelDescriptor, Connecting, Down, HealthKind

from .conftest import ConnectFn, require_mosquitto, unique_id, wait_until

SERVERS = (("h1", 1883), ("h2", 1884), ("h3", 1885))


def reconnect(ceiling: int | None = 10, servers: Any = SERVERS) -> tuple[Reconnect, Any]:
    broadcaster = HealthBroadcaster(Connecting(0))
    controller = HealthController(broadcaster, 1)
    options = MqttConnectorOptions(servers=servers)
    backoff = Backoff(1.0, 100.0, jitter=0.0, rng=random.Random(0))
    return Reconnect(backoff, ceiling, controller, options.server_list, options.server_url), (
        controller
    )


def delay(r: Reconnect) -> float:
    return round(r.next_attempt - time.monotonic(), 1)


def test_each_attempt_takes_the_next_server_and_the_backoff_grows_per_round() -> None:
    r, _ = reconnect()
    seen: list[tuple[tuple[str, int], float]] = []
    for _ in range(7):
        server = r.server
        r.attempt_started()
        r.failed("refused")
        seen.append((server, delay(r)))
    # back to back within a round; after each whole round 1 s, then 2 s, ...
    assert seen == [
        (("h1", 1883), 0.0),
        (("h2", 1884), 0.0),
        (("h3", 1885), 1.0),
        (("h1", 1883), 0.0),
        (("h2", 1884), 0.0),
        (("h3", 1885), 2.0),
        (("h1", 1883), 0.0),
    ]


def test_the_ceiling_counts_rounds_and_the_reason_names_the_last_server() -> None:
    r, controller = reconnect(ceiling=1)
    for _ in range(5):
        r.attempt_started()
        r.failed("refused")
        assert not r.gave_up
    r.attempt_started()
    r.failed("refused")  # the sixth failure ends the second round: past a ceiling of 1
    assert r.gave_up and controller.phase is Phase.DOWN
    assert r.last_error == (
        "gave up after 6 failed connection attempts (2 rounds over 3 servers); "
        "last: refused (at mqtt://h3:1885)"
    )


def test_one_server_backs_off_as_before() -> None:
    r, _ = reconnect(ceiling=2, servers=())
    delays = []
    for _ in range(2):
        r.attempt_started()
        r.failed("refused")
        delays.append(delay(r))
        assert r.server == ("localhost", 1883)
    assert delays == [1.0, 2.0]
    r.failed("refused")
    assert r.last_error == (
        "gave up after 3 failed connection attempts; last: refused (at mqtt://localhost:1883)"
    )


def connected_to(r: Reconnect) -> str | None:
    return r.connected_to  # (read afresh: mypy would keep an earlier narrowing)


def test_a_lost_connection_moves_on_and_a_resume_stays() -> None:
    r, _ = reconnect()
    r.attempt_started()
    r.connected()
    assert connected_to(r) == "mqtt://h1:1883"
    r.resuming("resume")
    r.lost(True, False, "closed")
    assert r.server == ("h1", 1883)  # the session is on this server
    r.attempt_started()
    r.connected()
    r.lost(True, False, "the broker closed the connection")
    assert connected_to(r) is None
    assert r.last_error == "connection lost: the broker closed the connection (at mqtt://h1:1883)"
    assert r.server == ("h2", 1884)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_server_is_passed_over_and_the_server_in_use_is_observable(
    brokers: Any, connect: ConnectFn
) -> None:
    dead = free_port()
    broker = brokers("amqtt")  # (a fixture: the connectors close before it does)
    conn = connect(
        0,
        servers=[("127.0.0.1", dead), ("127.0.0.1", broker.port)],
    )
    assert conn.server == f"mqtt://127.0.0.1:{broker.port}"
    # the most recent failure stays readable once connected: the dead server's
    assert conn.last_error == f"cannot connect to mqtt://127.0.0.1:{dead}: Connection refused"
    assert conn.options.broker_url() == f"mqtt://127.0.0.1:{dead},127.0.0.1:{broker.port}"


@pytest.mark.mosquitto
def test_failover_to_the_next_live_server_resubscribes(
    connect: ConnectFn, caplog: pytest.LogCaptureFixture
) -> None:
    """Two brokers: the one in use stops; the connector is Up on the other, its reader
    subscribed again there, and ``server`` and the log say what happened."""
    caplog.set_level(logging.INFO, "taktora_connector")
    topic = f"fo/{unique_id()}"
    routing = MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE)
    require_mosquitto()  # (a stopped mosquitto drops its connections at once; amqtt may not)
    with MosquittoBroker() as second:
        first = MosquittoBroker().start()
        try:
            conn = connect(
                0,
                servers=[("127.0.0.1", first.port), ("127.0.0.1", second.port)],
                reconnect_initial_backoff=0.05,
            )
            reader = conn.create_reader(ChannelDescriptor("in", routing)).unwrap()
            assert conn.server == f"mqtt://127.0.0.1:{first.port}"
        finally:
            first.close()
        wait_until(lambda: conn.server == f"mqtt://127.0.0.1:{second.port}", 10, "on the second")
        wait_until(lambda: conn.health().kind is HealthKind.UP, 10, "Up")
        said = [r.getMessage() for r in caplog.records]
        assert f"connected to mqtt://127.0.0.1:{first.port}" in said
        assert any(m.startswith(f"connection to mqtt://127.0.0.1:{first.port} lost") for m in said)
        assert f"connected to mqtt://127.0.0.1:{second.port}" in said
        # subscribed again on the second: a message published there arrives
        publisher = connect(second.port)
        writer = publisher.create_writer(ChannelDescriptor("out", routing)).unwrap()
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            writer.send({"n": 1}).unwrap()
            got = reader.recv(timeout=0.5).unwrap()
        assert got is not None and got.value == {"n": 1}


def test_down_names_the_server_of_the_last_attempt(connect: ConnectFn) -> None:
    ports = [free_port(), free_port()]
    conn = connect(
        0,
        wait_up=False,
        servers=[("127.0.0.1", p) for p in ports],
        reconnect_attempt_ceiling=1,
        reconnect_initial_backoff=0.01,
    )
    wait_until(lambda: conn.health().kind is HealthKind.DOWN, 10, "Down")
    health = conn.health()
    assert isinstance(health, Down)
    assert health.reason.startswith("gave up after 4 failed connection attempts (2 rounds")
    assert f"cannot connect to mqtt://127.0.0.1:{ports[1]}" in health.reason
    assert conn.server is None


def test_tls_checks_each_server_s_own_name(brokers: Any, connect: ConnectFn, tmp_path: Any) -> None:
    """A certificate for ``localhost`` only: the attempt to 127.0.0.1 fails its name
    check (naming that server); the next, to ``localhost``, is trusted."""
    material = TlsMaterial.create(str(tmp_path), names=("localhost",))
    # (from the fixture, so that the connectors close before the broker does)
    broker = brokers("amqtt", tls=True, tls_material=material)
    tls = TlsOptions(ca_pem=material.ca_pem)
    wrong_first = connect(
        0,
        wait_up=False,
        tls=tls,
        servers=[("127.0.0.1", broker.tls_port), ("localhost", broker.tls_port)],
    )
    wait_until(lambda: wrong_first.health().kind is HealthKind.UP, 10, "Up")
    assert wrong_first.server == f"mqtts://localhost:{broker.tls_port}"
    only_wrong = connect(broker.tls_port, wait_up=False, tls=tls, reconnect_attempt_ceiling=0)
    wait_until(lambda: only_wrong.health().kind is HealthKind.DOWN, 10, "Down")
    reason = str(only_wrong.last_error)
    assert "certificate verification failed" in reason
    assert f"mqtts://127.0.0.1:{broker.tls_port}" in reason


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("mqtt://h1:1883,h2:1884", (("h1", 1883), ("h2", 1884))),
        ("mqtt://h1,h2", (("h1", 1883), ("h2", 1883))),
        ("mqtts://h1,[::1]:9", (("h1", 8883), ("::1", 9))),
    ],
)
def test_from_url_reads_several_servers(url: str, servers: Any) -> None:
    options = MqttConnectorOptions.from_url(url)
    assert options.servers == servers
    assert options.server_list == servers
    assert (options.host, options.port) == servers[0]
    assert MqttConnectorOptions.from_url(options.broker_url()).servers == servers


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_asyncio_connector_says_its_server_too() -> None:
    dead = free_port()
    with EmbeddedBroker() as broker:
        options = MqttConnectorOptions(
            servers=[("127.0.0.1", dead), ("127.0.0.1", broker.port)], client_id=unique_id()
        )
        async with AsyncMqttConnector[Any](options) as connector:
            assert connector.server is None or connector.server.endswith(f":{broker.port}")
            events = connector.health_events()
            async for event in events:
                if event.to.kind is HealthKind.UP:
                    break
            assert connector.server == f"mqtt://127.0.0.1:{broker.port}"
