"""The conformance kit: its scenarios are traced, it passes the reference, runs against
mosquitto, and writes reports tools accept (that it fails faulty connectors is
tests/test_faulty_connectors.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.feature import get_features

from taktora_connector.conformance.brokers import MosquittoBroker
from taktora_connector.conformance.paths import FEATURES_DIR
from taktora_connector.conformance.registry import CAPABILITIES, REQUIREMENTS, TESTS, check_tags

from .conftest import require_mosquitto
from .kit_runs import ROOT, results, run_kit

# -- the registry and the feature files ---------------------------------------------------


def all_scenarios() -> list[tuple[str, set[str]]]:
    found = []
    for feature in get_features([str(FEATURES_DIR)]):
        for name, scenario in feature.scenarios.items():
            found.append((f"{Path(feature.filename).name}: {name}", set(scenario.tags)))
    return found


def test_every_scenario_is_tagged_with_known_ids() -> None:
    problems = [p for name, tags in all_scenarios() for p in check_tags(name, tags)]
    assert problems == []


def test_every_requirement_has_a_scenario_and_every_test_id_is_used() -> None:
    tags = set().union(*(tags for _, tags in all_scenarios()))
    assert set(REQUIREMENTS) <= tags
    assert set(TESTS) <= tags
    assert {f"REQ_{n:04d}" for n in range(250, 262)} == set(REQUIREMENTS)


def test_check_tags_catches_mistakes() -> None:
    assert check_tags("s", {"REQ_0999", "TEST_0130"}) == [
        "s: unknown requirement tag @REQ_0999",
        "s: @TEST_0130 verifies REQ_0252, which is not tagged",
    ]
    assert check_tags("s", {"REQ_0252"}) == ["s: no @TEST_ tag"]


# -- the reference passes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[int, dict[str, Any], str, Path]:
    report_dir = tmp_path_factory.mktemp("kit") / "reports"
    code, report, output = run_kit(report_dir, measure=True)
    return code, report, output, report_dir


def test_reference_passes_every_requirement(reference_run: Any) -> None:
    code, report, output, _ = reference_run
    assert code == 0, output[-3000:]
    assert set(results(report).values()) == {"PASS"}, results(report)
    assert report["verdict"] == "PASS"
    assert "REQ_0261" in output  # the table is printed
    assert report["meta"]["connector"].endswith("reference_factory")


def test_every_report_has_the_protocol_profile(reference_run: Any, tmp_path: Path) -> None:
    """Issue 18: "client statements checked: N of M", each statement with its scenarios
    and result, the unchecked ones with their reason; in every format and in compare."""
    _, report, output, report_dir = reference_run
    profile = report["protocol_profile"]
    summary = profile["summary"]
    assert summary["of"] == 65 and summary["checked"] >= 40
    assert summary["failed"] == 0 and summary["passed"] >= 40
    rows = {row["id"]: row for row in profile["statements"]}
    assert rows["MQTT-4.6.0-2"]["result"] == "PASS"
    assert {c["scenario"] for c in rows["MQTT-4.6.0-2"]["scenarios"]} >= {"TEST_2615", "TEST_2633"}
    assert rows["MQTT-6.0.0-1"]["result"] == "NOT CHECKED" and rows["MQTT-6.0.0-1"]["unchecked"]
    assert rows["MQTT-3.1.3-10"]["result"] == "NOT SEEN"  # the reference sends no will
    headline = f"client statements checked: {summary['checked']} of 65"
    assert headline in output
    page = (report_dir / "report.html").read_text()
    assert "MQTT 3.1.1 protocol profile" in page and headline in page
    assert '<tr id="MQTT-4.6.0-2">' in page
    assert headline in (report_dir / "matrix.md").read_text()
    (version,) = json.loads((report_dir / "needs.json").read_text())["versions"].values()
    need = version["needs"]["MQTT_4_6_0_2"]
    assert need["status"] == "pass" and "TEST_2615" in need["links"]
    assert "MQTT_4_6_0_2" in version["needs"]["TEST_2615"]["links"]
    from taktora_connector.conformance.compare import main as compare

    assert compare([str(report_dir / "report.json"), "--out", str(tmp_path)]) == 0
    compared = (tmp_path / "compare.md").read_text()
    assert "**MQTT 3.1.1 protocol profile**" in compared and "| MQTT-4.6.0-2 |" in compared


def test_reports_are_written_in_every_format(reference_run: Any) -> None:
    _, report, _, report_dir = reference_run
    for name in (
        "matrix.md",
        "report.html",
        "report.json",
        "junit.xml",
        "needs.json",
        "cucumber.json",
    ):
        assert (report_dir / name).stat().st_size > 0, name
    markdown = (report_dir / "matrix.md").read_text()
    assert (
        "| REQ_0254 | **Wildcard subscriptions supported**<br>The connector shall accept inbound "
        "subscriptions whose topic includes the MQTT wildcards" in markdown
    )
    assert "| CAP_SHARED_SUBSCRIPTIONS | Shared subscriptions" in markdown
    assert "| claimed: checked that it works | PASS |" in markdown
    page = (report_dir / "report.html").read_text()
    assert page.startswith("<!doctype html>")
    assert "<link" not in page and "<script" not in page  # self-contained
    suite = ET.parse(report_dir / "junit.xml").getroot()
    cases = suite.findall("testcase")
    assert len(cases) == len(report["scenarios"]) > 30
    for case in cases:
        verifies = {p.get("value") for p in case.iter("property") if p.get("name") == "verifies"}
        assert verifies and verifies <= set(REQUIREMENTS) | set(CAPABILITIES)
    cucumber = json.loads((report_dir / "cucumber.json").read_text())
    assert {element["name"] for feature in cucumber for element in feature["elements"]}
    ids = [s["id"] for s in report["scenarios"]]
    assert len(set(ids)) == len(ids) == len(report["scenarios"])  # one id per run
    needs = next(iter(json.loads((report_dir / "needs.json").read_text())["versions"].values()))
    tests = [n for n in needs["needs"].values() if n["type"] == "test"]
    assert len(tests) == len(report["scenarios"])


def test_needs_json_is_accepted_by_sphinx_needs(reference_run: Any, tmp_path: Path) -> None:
    pytest.importorskip("sphinx_needs")
    from sphinx.cmd.build import build_main
    from sphinx_needs.needsfile import check_needs_file

    _, _, _, report_dir = reference_run
    needs_file = report_dir / "needs.json"
    assert check_needs_file(str(needs_file)).schema == []
    data = json.loads(needs_file.read_text())
    (version,) = data["versions"].values()
    assert version["needs"]["TEST_0131"]["links"] == ["REQ_0252"]
    assert version["needs"]["REQ_0252"]["status"] == "pass"
    source = tmp_path / "docs"
    source.mkdir()
    (source / "conf.py").write_text(
        "extensions = ['sphinx_needs']\n"
        "needs_types = [\n"
        "  {'directive': 'req', 'title': 'Requirement', 'prefix': 'REQ_', 'color': '#BFD8D2', 'style': 'node'},\n"
        "  {'directive': 'test', 'title': 'Test case', 'prefix': 'TEST_', 'color': '#DCB239', 'style': 'node'},\n"
        "]\n"
        "needs_id_regex = '^[A-Z0-9_]{5,}'\n"
    )
    (source / "needs.json").write_bytes(needs_file.read_bytes())
    (source / "index.rst").write_text("Traceability\n============\n\n.. needimport:: needs.json\n")
    out = tmp_path / "html"
    warnings = tmp_path / "warnings.txt"
    code = build_main(["-q", "-b", "html", "-W", "-w", str(warnings), str(source), str(out)])
    assert code == 0, warnings.read_text()
    built = (out / "index.html").read_text()
    assert "REQ_0250" in built and "TEST_0160" in built


# -- other brokers and the command line ----------------------------------------------------


@pytest.mark.slow  # the whole kit again, on a broker URL (the broker matrix)
def test_kit_passes_against_mosquitto(tmp_path: Path) -> None:
    require_mosquitto()
    with MosquittoBroker(extra_config="sys_interval 1") as broker:
        code, report, output = run_kit(tmp_path / "reports", "--broker-url", broker.url)
    assert code == 3, output[-3000:]  # PARTIAL: credentials and TLS need a kit-made broker
    assert report["verdict"] == "PARTIAL"
    outcome = results(report)
    assert outcome.pop("REQ_0255") == outcome.pop("REQ_0256") == "NOT RUN"
    assert set(outcome.values()) == {"PASS"}, outcome
    skipped = [s for s in report["scenarios"] if s["outcome"] == "skipped"]
    assert skipped
    assert all(
        "not run against a broker that serves the whole run" in s["detail"] for s in skipped
    ), skipped


def test_readme_factory_example_and_a_third_party_pytest_run(tmp_path: Path) -> None:
    code, report, output = run_kit(
        tmp_path / "r",
        "-m",
        "REQ_0257",
        "--connector-factory",
        "my_connector:make_connector",
        path=ROOT / "examples",
    )
    assert code == 3, output[-2000:]  # one requirement selected: PARTIAL
    assert report["meta"]["connector"] == "my_connector:make_connector"
    assert results(report)["REQ_0257"] == "PASS"
    # The same scenarios inside a third party's own pytest run, through the plugin.
    env = dict(os.environ, PYTHONPATH=str(ROOT / "examples"))
    (tmp_path / "test_mine.py").write_text(
        "from taktora_connector.conformance.suite import *  # noqa: F403\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "TEST_2570 or TEST_2571",
            "--connector-factory",
            "my_connector:make_connector",
            "--report-dir",
            str(tmp_path / "mine"),
            str(tmp_path / "test_mine.py"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "2 passed" in done.stdout  # TEST_2570, TEST_2571
    assert "REQ_0257     MQTT 3.1.1 baseline" in done.stdout
    assert (tmp_path / "mine" / "needs.json").exists()


def test_selection_and_bad_factories(tmp_path: Path) -> None:
    code, report, _ = run_kit(tmp_path / "one", "-m", "REQ_0253", measure=True)
    assert code == 3
    assert results(report)["REQ_0253"] == "PASS"
    assert results(report)["REQ_0250"] == "NOT RUN"
    code, _, output = run_kit(
        tmp_path / "bad", "--connector-factory", "no_such_module:factory", measure=True
    )
    assert code == 2
    assert "cannot be imported" in output
    code, _, output = run_kit(tmp_path / "none", "-k", "no-scenario-has-this-name", measure=True)
    assert code == 2


def test_a_send_that_waits_for_its_delivery_fails_the_stalled_path(tmp_path: Path) -> None:
    """The port's send never blocks. A send that waits (here up to 1 s for PUBACK)
    passed all 43 scenarios before the kit bounded every send it makes."""
    code, report, output = run_kit(
        tmp_path / "r",
        "-m",
        "TEST_0139 or TEST_0131",
        "--connector-factory",
        "tests.faulty.blocking_send:send_waits_for_delivery",
        measure=False,
    )
    assert code == 1, output[-3000:]
    failed = {s["id"]: s for s in report["scenarios"] if s["outcome"] == "failed"}
    assert set(failed) == {"TEST_0139", "TEST_0131"}, output[-3000:]
    assert all("send must never block" in str(s) for s in failed.values()), output[-3000:]
