"""examples/prometheus_exporter.py: scraped over loopback, it shows what metrics() says."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.domain import ChannelDescriptor

from .conftest import ConnectFn, unique_id, wait_until

ROOT = Path(__file__).resolve().parent.parent


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_scrape_shows_the_snapshot(brokers: Any, connect: ConnectFn) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from prometheus_exporter import serve
    finally:
        sys.path.remove(str(ROOT / "examples"))
    conn = connect(brokers("amqtt").port, codec=BytesCodec(), inbound_capacity=2)
    topic = f"prom/{unique_id()}"
    routing = MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE)
    conn.create_reader(ChannelDescriptor("in", routing)).unwrap()
    writer = conn.create_writer(ChannelDescriptor("out", routing)).unwrap()
    for n in range(5):
        writer.send(b"%d" % n).unwrap().delivery.wait(5).unwrap()
    wait_until(lambda: conn.metrics().messages_received == 5, 10, "5 received")
    other = connect(brokers("amqtt").port)  # a second connector on the same page
    server, _ = serve(conn, other, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"  # loopback unless told otherwise
        samples = scrape(server.server_port)
    finally:
        server.shutdown()
    me = (("client_id", conn.options.client_id),)
    assert samples[("taktora_messages_sent_total", me)] == 5
    assert samples[("taktora_messages_received_total", me)] == 5
    assert samples[("taktora_dropped_inbound_total", me)] == 3
    assert samples[("taktora_up", me)] == 0  # Degraded: the reader dropped 3
    states = {
        state: samples[("taktora_health", tuple(sorted((*me, ("state", state)))))]
        for state in ("connecting", "up", "degraded", "down")
    }
    assert states == {"connecting": 0, "up": 0, "degraded": 1, "down": 0}
    info = (*me, ("server", f"mqtt://127.0.0.1:{conn.options.port}"), ("session", "clean"))
    assert samples[("taktora_connection_info", tuple(sorted(info)))] == 1
    assert samples[("taktora_messages_consumed_total", me)] == 0
    assert samples[("taktora_deliveries_failed_total", me)] == 0
    reader_labels = tuple(
        sorted({"client_id": conn.options.client_id, "reader": "in", "filter": topic}.items())
    )
    assert samples[("taktora_reader_queued", reader_labels)] == 2
    assert samples[("taktora_reader_dropped_total", reader_labels)] == 3
    for to in ("up", "degraded"):
        labels = tuple(sorted((*me, ("to", to))))
        assert samples[("taktora_health_transitions_total", labels)] == 1
    assert samples[("taktora_messages_sent_total", (("client_id", other.options.client_id),))] == 0
    assert samples[("taktora_reader_consumed_total", reader_labels)] == 0


def test_the_page_parses_as_openmetrics_and_bad_input_fails_at_once(
    brokers: Any, connect: ConnectFn
) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from prometheus_exporter import ConnectorCollector, serve
    finally:
        sys.path.remove(str(ROOT / "examples"))
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om

    port = brokers("amqtt").port
    first, second = connect(port), connect(port)
    registry = CollectorRegistry()
    registry.register(ConnectorCollector(first, second))
    page = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    families = list(om(page))  # type: ignore[no-untyped-call]  # raises on clashing names
    assert len({f.name for f in families}) == len(families)
    for wrong in (None, "x", first.options):
        with pytest.raises(TypeError, match="takes connectors"):
            serve(first, wrong, port=0)


def test_one_series_per_client_id_and_closed_connectors_leave(
    brokers: Any, connect: ConnectFn
) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from prometheus_exporter import serve
    finally:
        sys.path.remove(str(ROOT / "examples"))
    port = brokers("amqtt").port
    first = connect(port, codec=BytesCodec(), client_id="same-id")
    again = connect(brokers("mosquitto").port, codec=BytesCodec(), client_id="same-id")
    gone = connect(port)
    routing = MqttRouting(topic=f"prom/{unique_id()}")
    for conn, count in ((first, 3), (again, 7)):
        writer = conn.create_writer(ChannelDescriptor("out", routing)).unwrap()
        for _ in range(count):
            writer.send(b"x").unwrap().delivery.wait(5).unwrap()
    gone.close(timeout=2)
    server, _ = serve(first, again, first, gone, port=0)  # first twice: shown once
    try:
        samples = scrape(server.server_port)
    finally:
        server.shutdown()
    assert samples[("taktora_messages_sent_total", (("client_id", "same-id"),))] == 10
    assert not [key for key in samples if ("client_id", gone.options.client_id) in key[1]]
    for wrong_port in ("x", -1, True):
        with pytest.raises(TypeError, match="port must be an int"):
            serve(first, port=wrong_port)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes connectors"):
        serve(type(first))
