"""The benchmark harness runs and writes its three files (tiny runs; no timing is checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import require_mosquitto, unmeasured_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # every contender of the benchmark harness, tiny but 25 s of CPU
def test_bench_harness_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    require_mosquitto()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=unmeasured_env(),  # the harness, not the connector, is what runs here
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] is True
    assert set(results["mosquitto"]["outbound"]["QoS 1, 64 B"]) == {
        "connector",
        "paho default",
        "paho tuned",
        "aiomqtt",
    }
    assert {t["target"].split(":")[0] for t in results["targets"]} >= {"demux", "latency"}
    assert "## Targets" in (tmp_path / "results.md").read_text()
    _check_asyncio(results)
    assert set(results["mosquitto"]["scale_out"]) == {"1", "2"}
    assert "## Scale-out" in (tmp_path / "results.md").read_text()
    contenders = {"connector", "gmqtt", "mqttium", "paho", "bare socket"}
    read_paths = {f"connector {p}" for p in ("recv()", "try_recv()", "await recv()", "async for")}
    for qos in ("QoS 0", "QoS 1"):
        assert set(results["capacity"]["publish"][qos]) == contenders
        # The drain also reads through every documented read path, a row each.
        assert set(results["capacity"]["drain"][qos]) == contenders | read_paths
    for path in read_paths:
        assert f"drain QoS 0: {path} / gmqtt" in {t["target"] for t in results["targets"]}
    assert {t["target"].split(":")[0] for t in results["targets"]} >= {
        "demux",
        "latency",
        "publish capacity QoS 0",
        "publish capacity QoS 1",
        "drain QoS 0",
    }
    report = (tmp_path / "results.md").read_text()
    assert "## Targets" in report
    assert "connector / gmqtt" in report
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")


ASYNCIO_CASES = {
    f"{direction} QoS {qos}{kind}"
    for qos in (0, 1)
    for direction, kind in (("outbound", ""), ("inbound", ", live"), ("inbound", ", backlog"))
}


def _check_asyncio(results: dict[str, Any]) -> None:
    """Every asyncio case ran every contender: inbound ones also the bare-socket ceiling."""
    measured = results["mosquitto"]["asyncio"]
    assert set(measured) == ASYNCIO_CASES
    for case, rates in measured.items():
        expected = {"connector (asyncio)", "aiomqtt"}
        if case.startswith("inbound"):
            expected.add("bare socket")
        assert set(rates) == expected, case
        assert all(rate > 0 for rate in rates.values()), case
    publisher = results["mosquitto"]["asyncio_publisher"]
    assert set(publisher) == {"inbound QoS 0, live", "inbound QoS 1, live"}
    assert all(rate > 0 for rate in publisher.values())


def test_bench_runs_the_asyncio_part_alone(tmp_path: Path) -> None:
    require_mosquitto()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--only",
            "asyncio",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=unmeasured_env(),  # the harness, not the connector, is what runs here
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    _check_asyncio(results)
    assert "outbound" not in results["mosquitto"] and "capacity" not in results
    assert {t["target"] for t in results["targets"]} == {
        f"asyncio {case}: connector / aiomqtt" for case in ASYNCIO_CASES
    }
    report = (tmp_path / "results.md").read_text()
    assert "## asyncio" in report and "| inbound QoS 0, backlog |" in report
