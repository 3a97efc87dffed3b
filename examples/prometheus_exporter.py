"""Expose a connector's ``metrics()`` to Prometheus, with ``prometheus_client``.

    python examples/with_embedded_broker.py examples/prometheus_exporter.py
    curl http://127.0.0.1:9464/metrics

A collector reads one snapshot per scrape (``ConnectorCollector``): counters as
``taktora_*_total``, gauges as they are, each labelled with the connector's
``client_id``, and each reader's queue depth, drops, consumed, oversized and
undecodable messages labelled with its name and filter (bounded: one series per
reader, never one per message topic). One collector serves several connectors
(``serve(first, second)``): one family per metric, a series per connector. Health is a state
set, ``taktora_health{state=...}`` (1 for the state now, 0 for the other three; with
connectors sharing a client id, how many are in each), so an alert can tell Degraded
from Down; ``taktora_up`` is 1 only while Up;
``taktora_connection_info{server=...,session=...}`` names the server in use ("" while
none). The HTTP server listens on 127.0.0.1 only unless told otherwise.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.domain import HealthKind

log = logging.getLogger("taktora_connector.examples.prometheus")

_COUNTERS = (
    ("messages_sent", "PUBLISH packets written to the broker"),
    ("bytes_sent", "bytes written to the broker"),
    ("messages_delivered", "deliveries completed (QoS 0 written, QoS 1 acknowledged)"),
    ("deliveries_failed", "deliveries that failed"),
    ("sends_refused", "sends refused with BackPressure (outbound bridge full)"),
    ("messages_received", "PUBLISH packets received"),
    ("bytes_received", "bytes read from the broker"),
    ("messages_consumed", "messages readers handed to the application"),
    ("decode_failures", "payloads a reader could not decode"),
    ("dropped_inbound", "inbound messages dropped by full reader queues"),
    ("unrouted_inbound", "inbound messages no reader matched"),
    ("rejected_inbound", "inbound messages on something that is no topic name"),
    ("oversized_inbound", "inbound messages above every matching reader's limit"),
    ("reconnects", "connections made after the first"),
    ("failed_attempts", "connection attempts that failed"),
    ("session_resumes", "reconnects that resumed a persistent session for dropped messages"),
    ("unresent_inbound", "dropped QoS 1 messages the broker did not send again"),
)
_GAUGES = (
    ("outbound_queued", "messages waiting in the outbound bridge"),
    ("inflight", "QoS 1 messages waiting for PUBACK"),
    ("unacknowledged_inbound", "persistent session: received, not yet acknowledged"),
)


class ConnectorCollector:
    """A ``prometheus_client`` collector over the ``metrics()`` of one or more
    connectors: one family per metric, one series per ``client_id``.

    Connectors that share a client id (the same id on two brokers, or a connector
    made again under its old id) are one series, their figures summed, so the page
    never holds a series twice. The asyncio connector and its ``threaded`` view are
    one connector. A connector closed on purpose leaves the page (its series go
    stale); one whose ``metrics()`` raises is left out of that scrape and logged once.
    """

    def __init__(self, *connectors: Any) -> None:
        if not connectors:
            raise TypeError("ConnectorCollector needs at least one connector")
        unique: dict[int, Any] = {}
        for connector in connectors:
            if isinstance(connector, type) or not callable(getattr(connector, "metrics", None)):
                raise TypeError(
                    f"ConnectorCollector takes connectors (with metrics()), got "
                    f"{connector!r} ({type(connector).__name__})"
                )
            one = getattr(connector, "threaded", connector)  # asyncio: the same connector
            unique[id(one)] = one
        self._connectors = tuple(unique.values())
        self._broken: set[int] = set()

    def _snapshots(self) -> list[Any]:
        taken = []
        for connector in self._connectors:
            try:
                snapshot = connector.metrics()
            except Exception as err:
                if id(connector) not in self._broken:
                    self._broken.add(id(connector))
                    log.warning("metrics of %r not read: %r", connector, err)
                continue
            if not snapshot.closed:
                taken.append(snapshot)
        return taken

    def collect(self) -> Iterator[Metric]:
        snapshots = self._snapshots()
        by_client: dict[str, list[Any]] = {}
        for snapshot in snapshots:
            by_client.setdefault(snapshot.client_id, []).append(snapshot)
        kinds: tuple[tuple[Any, Any], ...] = (
            (_COUNTERS, CounterMetricFamily),
            (_GAUGES, GaugeMetricFamily),
        )
        for names, make in kinds:
            for name, help_text in names:
                metric = make(f"taktora_{name}", help_text, labels=["client_id"])
                for client, group in by_client.items():
                    metric.add_metric([client], sum(getattr(s, name) for s in group))
                yield metric
        transitions = CounterMetricFamily(
            "taktora_health_transitions", "health transitions by target", labels=["client_id", "to"]
        )
        up = GaugeMetricFamily(
            "taktora_up", "1 while health is Up (all of a client id's)", labels=["client_id"]
        )
        health = GaugeMetricFamily(
            "taktora_health",
            "health now: how many connectors of the client id are in each state",
            labels=["client_id", "state"],
        )
        info = GaugeMetricFamily(
            "taktora_connection_info",
            "the server in use and the session kind",
            labels=["client_id", "server", "session"],
        )
        for client, group in by_client.items():
            counts: dict[HealthKind, int] = {}
            for snapshot in group:
                for kind, count in snapshot.health_transitions.items():
                    counts[kind] = counts.get(kind, 0) + count
            for kind, count in counts.items():
                transitions.add_metric([client, kind.name.lower()], count)
            up.add_metric([client], 1 if all(s.health is HealthKind.UP for s in group) else 0)
            for kind in HealthKind:
                health.add_metric([client, kind.name.lower()], sum(s.health is kind for s in group))
            shown: dict[tuple[str, str], int] = {}
            for snapshot in group:
                where = (snapshot.server or "", snapshot.session)
                shown[where] = shown.get(where, 0) + 1
            for (server, session), count in shown.items():
                info.add_metric([client, server, session], count)
        yield from (transitions, up, health, info)
        # Each reader: labelled by its name too (two readers may share a filter).
        labels = ["client_id", "reader", "filter"]
        queued = GaugeMetricFamily(
            "taktora_reader_queued", "messages in a reader's queue", labels=labels
        )
        families = {
            "dropped": CounterMetricFamily(
                "taktora_reader_dropped", "messages a reader dropped", labels=labels
            ),
            "consumed": CounterMetricFamily(
                "taktora_reader_consumed", "messages a reader handed out", labels=labels
            ),
            "oversized": CounterMetricFamily(
                "taktora_reader_oversized", "messages above a reader's limit", labels=labels
            ),
            "decode_failures": CounterMetricFamily(
                "taktora_reader_decode_failures",
                "payloads a reader could not decode",
                labels=labels,
            ),
        }
        readers: dict[tuple[str, str, str], dict[str, int]] = {}
        for snapshot in snapshots:
            for reader in snapshot.readers:
                key = (snapshot.client_id, reader.name, reader.topic_filter)
                values = readers.setdefault(key, dict.fromkeys(("queued", *families), 0))
                for field in values:
                    values[field] += getattr(reader, field)
        for key, values in readers.items():
            queued.add_metric(list(key), values["queued"])
            for field, family in families.items():
                family.add_metric(list(key), values[field])
        yield queued
        yield from families.values()


def serve(
    *connectors: Any, port: int = 9464, addr: str = "127.0.0.1"
) -> tuple[Any, CollectorRegistry]:
    """Serve the connectors' metrics on ``http://addr:port/metrics``; returns the server
    (``server.shutdown()`` stops it; ``server.server_port`` is the port, also for 0).
    Raises ``TypeError`` at once for anything that is no connector or no port."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise TypeError(f"port must be an int from 0 to 65535, got {port!r}")
    registry = CollectorRegistry()
    registry.register(ConnectorCollector(*connectors))
    server, _thread = start_http_server(port, addr, registry)
    return server, registry


def main() -> None:
    broker = os.environ.get("MQTT_URL", "mqtt://localhost:1883")
    options = MqttConnectorOptions.from_url(broker, client_id="prometheus-example")
    with MqttConnector[Any](options) as connector:
        server, _ = serve(connector, port=int(os.environ.get("METRICS_PORT", "9464")))
        seconds = float(os.environ.get("SERVE_SECONDS", "10"))
        print(f"metrics on http://127.0.0.1:{server.server_port}/metrics for {seconds:g} s")
        time.sleep(seconds)
        server.shutdown()


if __name__ == "__main__":
    main()
