"""The evidence in the kit's reports (a failing run, a partial one), its pytest plugin
in a third party's run, and run ids (verdicts and preflight: tests/test_kit_reports.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from taktora_connector.conformance import preflight
from taktora_connector.conformance.brokers import MosquittoBroker, mosquitto_binary
from taktora_connector.conformance.identity import features_sha256

from .conftest import require_mosquitto
from .kit_runs import ROOT, run_kit

# -- evidence --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str, Path]:
    report_dir = tmp_path_factory.mktemp("evidence") / "reports"
    code, report, output = run_kit(
        report_dir,
        "-m",
        "REQ_0253 or REQ_0255",
        "--connector-factory",
        "tests.faulty.req_0253:ignores_retained",
        measure=True,
    )
    return code, report, output, report_dir


def test_a_failure_is_named_by_its_step_with_the_wire_log(failing_run: Any) -> None:
    code, report, output, _ = failing_run
    assert code == 1
    failed = next(s for s in report["scenarios"] if s["id"] == "TEST_0132")
    assert failed["outcome"] == "failed"
    assert failed["feature_file"] == "retained.feature" and failed["line"] > 0
    assert failed["failed_step"].startswith('Then "in" receives the value 21 flagged as retained')
    assert failed["detail"].startswith("Step failed: Then")
    assert "_pytest" not in failed["detail"] and "pluggy" not in failed["detail"]
    statuses = [step["status"] for step in failed["steps"]]
    assert statuses[0] == "passed" and "failed" in statuses
    assert all(step["definition"].startswith("conformance/") for step in failed["steps"][:2])
    publishes = [p for p in failed["wire"] if p["type"] == "PUBLISH" and p["dir"] == "out"]
    assert publishes and all(p["size"] > 0 for p in publishes)
    assert not any(p["retain"] for p in publishes)  # the fault, visible on the wire
    assert {"t", "conn", "dir", "type", "id", "qos", "retain", "topic", "size"} <= set(publishes[0])
    # The console names the scenario and the step, not pytest's node id.
    assert "FAIL TEST_0132" in output
    assert "suite.py::" not in output


def test_passes_have_evidence_too_and_no_password_anywhere(failing_run: Any) -> None:
    _, report, _, report_dir = failing_run
    auth = [s for s in report["scenarios"] if "REQ_0255" in s["requirements"]]
    assert auth and all(s["outcome"] == "passed" for s in auth)
    good = next(s for s in auth if s["id"] == "TEST_0135_1")
    connect = next(p for p in good["wire"] if p["type"] == "CONNECT")
    assert "password yes (not shown)" in connect["info"]
    page = (report_dir / "report.html").read_text()
    assert page.count("<details id=") == len(report["scenarios"])
    assert 'id="TEST_0135_1"' in page and "Wire log (" in page
    for name in ("report.json", "report.html", "matrix.md", "cucumber.json", "junit.xml"):
        assert "password=" not in (report_dir / name).read_text(), name


def test_reports_record_identity_selection_and_step_locations(failing_run: Any) -> None:
    _, report, _, report_dir = failing_run
    meta = report["meta"]
    assert meta["identity"]["factory"] == "tests.faulty.req_0253:ignores_retained"
    assert meta["identity"]["features_sha256"] == features_sha256()
    assert meta["identity"]["kit_version"]
    assert "distribution" in meta["identity"]
    assert meta["selection"]["-m"] == "REQ_0253 or REQ_0255"
    assert meta["broker"].startswith("in-process amqtt")
    if mosquitto_binary() is None:  # the shared-subscription scenario needs it
        assert any("shared subscriptions" in limit for limit in meta["broker_limits"])
    else:
        assert meta["broker_limits"] == []
    cucumber = json.loads((report_dir / "cucumber.json").read_text())
    steps = [st for feature in cucumber for el in feature["elements"] for st in el["steps"]]
    assert steps and all(st["match"]["location"] for st in steps)
    assert all(
        st["match"]["location"].startswith("conformance/")
        for st in steps
        if st["result"]["status"] == "passed"
    )


def test_a_broker_with_limits_is_partial_and_recorded(tmp_path: Path) -> None:
    require_mosquitto()
    with MosquittoBroker() as broker:
        code, report, output = run_kit(
            tmp_path / "r", "--broker-url", broker.url, "-m", "REQ_0255", measure=True
        )
    assert code == 3, output[-2000:]
    assert report["verdict"] == "PARTIAL"
    assert report["meta"]["broker_limits"]
    skipped = [
        s
        for s in report["scenarios"]
        if s["outcome"] == "skipped" and "REQ_0255" in s["requirements"]
    ]
    assert skipped and all(
        "not run against a broker that serves the whole run" in s["detail"] for s in skipped
    )
    assert "not run: needs a broker configured by the kit" in output  # reasons on the console


def test_a_third_party_pytest_run_gets_the_same_checks(tmp_path: Path) -> None:
    """Through the plugin (no CLI): unknown tags and bad factories stop the run at once."""
    (tmp_path / "test_mine.py").write_text(
        "from taktora_connector.conformance.suite import *  # noqa: F403\n"
    )

    def pytest_run(*args: str) -> tuple[int, str]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                *args,
                "--report-dir",
                str(tmp_path / "r"),
                str(tmp_path / "test_mine.py"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            check=False,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        return done.returncode, done.stdout + done.stderr

    code, output = pytest_run("-m", "TEST_9999")
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "TEST_9999, which the kit does not know" in output
    code, output = pytest_run("--connector-factory", "tests.kit_factories:returns_none")
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "returned None, not a Connector" in output
    assert " passed" not in output and " failed" not in output
    assert not (tmp_path / "r").exists()
    # A marker the host run registered is its own business, not an unknown kit tag.
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: long tests\n")
    code, output = pytest_run("-m", "REQ_0253 and not slow")
    assert code == pytest.ExitCode.OK, output[-2000:]
    assert "2 passed" in output
    code, output = pytest_run("-m", "REQ_0253 and not quick")  # not registered anywhere
    assert code == pytest.ExitCode.USAGE_ERROR
    assert "quick, which the kit does not know" in output


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from taktora_connector.conformance.cli import main

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for line in ("0  PASS", "1  FAIL", "2  usage", "3  PARTIAL", "4  broken"):
        assert line in text
    assert main(["--no-such-option"]) == 2


def test_a_missing_dependency_is_not_blamed_on_pythonpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_more.py").write_text("import no_such_dependency_xyz  # noqa\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    problem = preflight.check_factory("needs_more:make")
    assert problem is not None
    assert "no_such_dependency_xyz" in problem
    assert "install the connector's dependencies" in problem
    assert "PYTHONPATH" not in problem


def test_a_run_id_selects_exactly_that_run_and_reports_say_how_to_rerun(tmp_path: Path) -> None:
    code, report, output = run_kit(tmp_path / "r", "-m", "TEST_2511_3", measure=True)
    assert code == 3, output[-2000:]
    ran = [
        s["id"] for s in report["scenarios"] if s["outcome"] not in ("skipped", "not applicable")
    ]
    assert ran == ["TEST_2511_3"]
    assert report["meta"]["rerun"].endswith(" -m {id}")
    page = (tmp_path / "r" / "report.html").read_text()
    assert "reference_factory -m TEST_2511_3</code>" in page
    code, report, output = run_kit(tmp_path / "bad", "-m", "TEST_2511_99", measure=True)
    assert (code, report) == (2, {})
    assert "TEST_2511_99, which the kit does not know" in output
