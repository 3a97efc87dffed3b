"""The second connector (examples/gmqtt_connector, on gmqtt) passes the whole kit, and
``taktora-conformance compare`` puts its run beside another, each cell linked to its evidence."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from taktora_connector.conformance.brokers import MosquittoBroker
from taktora_connector.conformance.compare import main as compare_main

from .conftest import require_mosquitto
from .kit_runs import ROOT, results, run_kit

pytest.importorskip("gmqtt")

FACTORY = "gmqtt_connector:make_connector"


@pytest.fixture(scope="module")
def gmqtt_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str, Path]:
    require_mosquitto()  # for the shared-subscription scenario, which amqtt cannot serve
    report_dir = tmp_path_factory.mktemp("gmqtt") / "reports"
    # amqtt in process, as `make conformance` runs it (mosquitto and RabbitMQ: `make matrix`)
    code, report, output = run_kit(
        report_dir, "--connector-factory", FACTORY, "--broker", "amqtt", path=ROOT / "examples"
    )
    return code, report, output, report_dir


def test_the_gmqtt_connector_passes_the_whole_kit(gmqtt_run: Any) -> None:
    code, report, output, _ = gmqtt_run
    assert code == 0, output[-4000:]
    assert report["verdict"] == "PASS"
    assert set(results(report).values()) == {"PASS"}
    # every scenario passed but the refusal check of a capability it claims (not applicable)
    outcomes = {s["id"]: s["outcome"] for s in report["scenarios"]}
    assert outcomes.pop("TEST_2544") == "not applicable"
    assert set(outcomes.values()) == {"passed"}
    assert [(c["id"], c["claimed"], c["result"]) for c in report["capabilities"]] == [
        ("CAP_SHARED_SUBSCRIPTIONS", True, "PASS")
    ]
    assert report["meta"]["identity"]["factory"] == FACTORY


def test_the_gmqtt_connector_uses_the_toolkit_and_nothing_of_the_reference_sidecar() -> None:
    """What the example takes from this library: the MQTT values, the public toolkit
    for connector authors, and the pure protocol (no paho, no socket, no thread)."""
    source = "\n".join(
        path.read_text() for path in (ROOT / "examples" / "gmqtt_connector").glob("*.py")
    )
    imports = set(re.findall(r"^(?:from|import) ([\w.]+)", source, flags=re.MULTILINE))
    assert "paho" not in " ".join(imports)
    reference = {i for i in imports if i.startswith("taktora_connector.adapters")}
    assert reference == {
        "taktora_connector.adapters.mqtt",
        "taktora_connector.adapters.toolkit",
        "taktora_connector.adapters.mqtt.protocol.broker_check",
        "taktora_connector.adapters.mqtt.protocol.packets",
    }
    for name in re.findall(r"from taktora_connector\.adapters\.mqtt import ([^\n]+)", source):
        assert set(name.replace(" ", "").split(",")) <= {"MqttConnectorOptions", "MqttRouting"}


@pytest.mark.slow  # the whole kit again, on a broker URL (the broker matrix)
def test_the_gmqtt_connector_against_mosquitto(tmp_path: Path) -> None:
    require_mosquitto()
    with MosquittoBroker() as broker:
        code, report, output = run_kit(
            tmp_path / "r",
            "--connector-factory",
            FACTORY,
            "--broker-url",
            broker.url,
            path=ROOT / "examples",
        )
    assert code == 3, output[-4000:]  # credentials and TLS need a broker the kit makes
    outcome = results(report)
    assert outcome.pop("REQ_0255") == outcome.pop("REQ_0256") == "NOT RUN"
    assert set(outcome.values()) == {"PASS"}, outcome


def test_compare_puts_runs_side_by_side_with_links_to_evidence(
    gmqtt_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, _, gmqtt_dir = gmqtt_run
    code, _, output = run_kit(
        tmp_path / "faulty",
        "-m",
        "TEST_0132",  # one failing scenario is enough (each waits out the patience)
        "--connector-factory",
        "tests.faulty.req_0253:ignores_retained",
    )
    assert code == 1, output[-2000:]
    out = tmp_path / "matrix"
    assert (
        compare_main([str(gmqtt_dir / "report.json"), str(tmp_path / "faulty"), "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert re.search(r"requirement\s+gmqtt_connector\s+ignores_retained", printed)
    assert re.search(r"REQ_0253\s+PASS\s+FAIL", printed)
    assert re.search(r"REQ_0250\s+PASS\s+NOT RUN", printed)
    page = (out / "compare.html").read_text()
    markdown = (out / "compare.md").read_text()
    for text in (page, markdown):
        assert FACTORY in text and "tests.faulty.req_0253:ignores_retained" in text
    # Every cell links to the anchor of its scenario or requirement in that run's report.
    links = re.findall(r'href="([^"]+)"', page)
    for link in links:
        target, _, anchor = link.partition("#")
        report_page = (out / target).resolve()
        assert report_page.is_file(), link
        if anchor:
            assert f'id="{anchor}"' in report_page.read_text(), link
    assert any(link.endswith("#TEST_0132") for link in links)
    assert "| TEST_0132 |" in markdown
    assert "[FAIL](" in markdown and "[PASS](" in markdown and "NOT RUN" in markdown
    # A file that is not a kit report is refused, nothing written.
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"hello": 1}))
    assert compare_main([str(bogus), "--out", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "none").exists()


def test_qos0_on_a_stalled_path_is_bounded_and_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    """gmqtt buffers writes without bound; the example stops feeding it and refuses instead."""
    from returns.pipeline import is_successful

    from taktora_connector.adapters.codecs import BytesCodec
    from taktora_connector.adapters.mqtt import MqttConnectorOptions, MqttRouting
    from taktora_connector.conformance.brokers import EmbeddedBroker
    from taktora_connector.conformance.proxy import FaultProxy
    from taktora_connector.domain import BackPressure, ChannelDescriptor, HealthKind

    from .conftest import wait_until

    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    from gmqtt_connector import make_connector

    with EmbeddedBroker() as broker, FaultProxy(broker.port) as proxy:
        options = MqttConnectorOptions(
            host="127.0.0.1", port=proxy.port, client_id="gmqtt-qos0", outbound_capacity=8
        )
        connector = make_connector(options, BytesCodec())
        try:
            connector.start().unwrap()
            wait_until(lambda: connector.health().kind is HealthKind.UP, 10, "Up")
            writer = connector.create_writer(
                ChannelDescriptor("w", MqttRouting(topic="stall/t"))
            ).unwrap()
            proxy.pause()
            payload = bytes(65_536)
            accepted = 0
            refusal = None
            refused_since: float | None = None
            # Send until the connector keeps refusing for half a second (a steady stall),
            # or until 2,000 x 64 KiB went in, which no bounded path can hold.
            while accepted < 2_000:
                result = writer.send(payload)
                if is_successful(result):
                    accepted += 1
                    refused_since = None
                    continue
                refusal = result.failure()
                refused_since = refused_since or time.monotonic()
                if time.monotonic() - refused_since > 0.5:
                    break
                time.sleep(0.01)  # the loop may still move what the socket takes
            assert isinstance(refusal, BackPressure)
            assert accepted < 2_000  # 128 MiB would have gone into gmqtt's buffer
            wait_until(lambda: connector.health().kind is HealthKind.DEGRADED, 10, "Degraded")
            proxy.resume()
            wait_until(lambda: connector.health().kind is HealthKind.UP, 20, "Up again")
            assert is_successful(writer.send(b"after"))
        finally:
            connector.close(2.0)
