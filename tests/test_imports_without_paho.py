"""The MQTT values and the conformance kit import and collect with paho absent; the
reference connector loads paho only when ``MqttConnector`` is first named."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BLOCKED = "import sys\nsys.modules['paho'] = None  # any `import paho...` now fails\n"


def run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_mqtt_values_import_without_paho(tmp_path: Path) -> None:
    done = run(
        """
        from taktora_connector.adapters.mqtt import (
            Credentials, MqttConnectorOptions, MqttQos, MqttRouting, TlsOptions, topic_matches,
        )
        MqttRouting(topic="a/b", qos=MqttQos.AT_LEAST_ONCE)
        MqttConnectorOptions(host="127.0.0.1", credentials=Credentials("u", "p"))
        assert topic_matches("a/+", "a/b")
        print("values ok")
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "values ok" in done.stdout


def test_the_kit_imports_and_judges_a_connector_on_another_stack_without_paho(
    tmp_path: Path,
) -> None:
    """The kit's modules import, and it runs the worked example (gmqtt, no paho)."""
    done = run(
        f"""
        import importlib, pkgutil, sys
        import taktora_connector.conformance as kit
        for info in pkgutil.walk_packages(kit.__path__, kit.__name__ + "."):
            if not info.name.endswith(".suite"):  # binds scenarios: only inside pytest
                importlib.import_module(info.name)
        sys.path.insert(0, {str(EXAMPLES)!r})
        from taktora_connector.conformance.cli import main
        code = main(["-q", "-m", "REQ_0250", "--report-dir", {str(tmp_path / "reports")!r},
                     "--connector-factory", "gmqtt_connector:make_connector"])
        print("kit exit", code)
        print("paho loaded:", [m for m in sys.modules if m.startswith("paho.")])
        """,
        tmp_path,
    )
    assert "kit exit 3" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]  # PARTIAL: -m
    assert "paho loaded: []" in done.stdout
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    (row,) = [r for r in report["requirements"] if r["id"] == "REQ_0250"]
    assert row["result"] == "PASS", row


def test_the_reference_connector_is_what_needs_paho(tmp_path: Path) -> None:
    done = run(
        """
        import taktora_connector.adapters.mqtt as mqtt
        try:
            mqtt.MqttConnector
        except ImportError as err:
            print("needs paho:", err)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "needs paho:" in done.stdout


def test_the_lazy_connector_is_the_real_class() -> None:
    from taktora_connector.adapters import mqtt
    from taktora_connector.adapters.mqtt.connector import MqttConnector

    assert mqtt.MqttConnector is MqttConnector
    assert "MqttConnector" in mqtt.__all__
