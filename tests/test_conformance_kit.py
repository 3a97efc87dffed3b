"""The conformance kit: it passes the reference, fails each faulty connector on exactly
the requirement it breaks, runs against mosquitto, and writes reports tools accept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.feature import get_features

from taktora_connector.conformance.brokers import MosquittoBroker
from taktora_connector.conformance.paths import FEATURES_DIR
from taktora_connector.conformance.registry import REQUIREMENTS, TESTS, check_tags

from .conftest import require_mosquitto
from .faulty import req_0250
from .faulty.registry import Fault, breaks, load_all

ROOT = Path(__file__).resolve().parent.parent


def run_kit(
    report_dir: Path, *args: str, path: Path = ROOT, measure: bool = True
) -> tuple[int, dict[str, Any], str]:
    """Run ``taktora-conformance`` with ``path`` importable (factories live there).

    ``measure=False`` keeps coverage out of the run: the faulty connectors' runs
    add nothing to it, and tracing them made them CPU-bound (three of the suite's
    eight minutes).
    """
    env = dict(os.environ, PYTHONPATH=str(path))
    if not measure:
        env = {key: value for key, value in env.items() if not key.startswith("COVERAGE_")}
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "taktora_connector.conformance.cli",
            "-q",
            "--report-dir",
            str(report_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=report_dir.parent,
        check=False,
    )
    report_file = report_dir / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return done.returncode, report, done.stdout + done.stderr


def results(report: dict[str, Any]) -> dict[str, str]:
    return {row["id"]: row["result"] for row in report["requirements"]}


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
    code, report, output = run_kit(report_dir)
    return code, report, output, report_dir


def test_reference_passes_every_requirement(reference_run: Any) -> None:
    code, report, output, _ = reference_run
    assert code == 0, output[-3000:]
    assert set(results(report).values()) == {"PASS"}, results(report)
    assert report["verdict"] == "PASS"
    assert "REQ_0261" in output  # the table is printed
    assert report["meta"]["connector"].endswith("reference_factory")


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
    assert "| REQ_0254 | Wildcard subscriptions supported | PASS |" in markdown
    page = (report_dir / "report.html").read_text()
    assert page.startswith("<!doctype html>")
    assert "<link" not in page and "<script" not in page  # self-contained
    suite = ET.parse(report_dir / "junit.xml").getroot()
    cases = suite.findall("testcase")
    assert len(cases) == len(report["scenarios"]) > 30
    for case in cases:
        verifies = {p.get("value") for p in case.iter("property") if p.get("name") == "verifies"}
        assert verifies and verifies <= set(REQUIREMENTS)
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


# -- the kit can fail --------------------------------------------------------------------

FAULTS, FAIRS = load_all()
#: How many kit runs go at once: they mostly wait out the kit's patience.
POOL = 12


def failed_tests(report: dict[str, Any]) -> set[str]:
    return {test for s in report["scenarios"] if s["outcome"] == "failed" for test in s["tests"]}


def outcomes_of(report: dict[str, Any], test: str) -> set[str]:
    return {s["outcome"] for s in report["scenarios"] if test in s["tests"]}


def run_pool(base: Path, jobs: dict[str, list[str]]) -> dict[str, tuple[int, dict[str, Any], str]]:
    with ThreadPoolExecutor(max_workers=POOL) as pool:
        futures = {
            name: pool.submit(run_kit, base / name / "reports", *args, measure=False)
            for name, args in jobs.items()
        }
        return {name: future.result() for name, future in futures.items()}


def fault_args(fault: Fault) -> list[str]:
    if fault.broker == "mosquitto":
        require_mosquitto()
    return ["--connector-factory", fault.factory, "--broker", fault.broker]


def test_every_fault_names_scenarios_of_the_requirement_it_breaks() -> None:
    """The registry is checked against the kit's own: a typo in a decorator fails here."""
    assert len(FAULTS) >= 30 and FAIRS
    for fault in FAULTS.values():
        assert fault.requirement in REQUIREMENTS, fault
        for test in fault.caught_by:
            assert TESTS[test].verifies == fault.requirement, fault
        assert TESTS[fault.control].verifies != fault.requirement, fault
    for fair in FAIRS.values():
        assert fair.requirement in REQUIREMENTS, fair


def test_the_registry_refuses_what_it_cannot_check() -> None:
    with pytest.raises(ValueError, match="caught_by names test ids"):
        breaks("REQ_0250", caught_by="REQ_0250")
    with pytest.raises(ValueError, match="a requirement is REQ_"):
        breaks("TEST_2500", caught_by="TEST_2500")
    with pytest.raises(ValueError, match="control TEST_0130 is a scenario it fails"):
        breaks("REQ_0252", caught_by="TEST_0130", control="TEST_0130")(lambda o, c: None)
    with pytest.raises(ValueError, match="registered twice"):
        breaks("REQ_0250", caught_by="TEST_2505")(req_0250.lazy_with)


@pytest.fixture(scope="module")
def quick_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[int, dict[str, Any], str]]:
    """Each fault's catching scenario plus its control; each fair connector's whole kit."""
    jobs = {
        name: [*fault_args(fault), "-m", fault.quick_selection()] for name, fault in FAULTS.items()
    }
    jobs |= {name: ["--connector-factory", fair.factory] for name, fair in FAIRS.items()}
    return run_pool(tmp_path_factory.mktemp("quick"), jobs)


@pytest.mark.timeout(600)  # the first test waits for every run of the pool
@pytest.mark.parametrize("name", sorted(FAULTS))
def test_faulty_connector_fails_its_scenarios_and_passes_the_control(
    quick_runs: dict[str, tuple[int, dict[str, Any], str]], name: str
) -> None:
    fault = FAULTS[name]
    code, report, output = quick_runs[name]
    assert code == 1, f"exit {code}\n{output[-3000:]}"
    assert report["verdict"] == "FAIL"
    outcome = results(report)
    failed = {req for req, result in outcome.items() if result == "FAIL"}
    assert failed == {fault.requirement}, output[-4000:]
    assert failed_tests(report) == {fault.caught_by[0]}, output[-4000:]
    assert outcomes_of(report, fault.control) == {"passed"}, output[-4000:]
    # PARTIAL where the control is not every scenario of its requirement
    assert outcome[TESTS[fault.control].verifies] in ("PASS", "PARTIAL")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(FAIRS))
def test_fair_connector_passes(
    quick_runs: dict[str, tuple[int, dict[str, Any], str]], name: str
) -> None:
    """Unusual but correct connectors pass the whole kit, the requirement their oddity
    touches included."""
    code, report, output = quick_runs[name]
    outcome = results(report)
    assert "FAIL" not in outcome.values(), output[-3000:]
    assert outcome[FAIRS[name].requirement] == "PASS"
    assert code in (0, 3), output[-3000:]  # PASS, or PARTIAL where the broker cannot run one


@pytest.fixture(scope="module")
def whole_kit_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[int, dict[str, Any], str]]:
    jobs = {name: fault_args(fault) for name, fault in FAULTS.items()}
    return run_pool(tmp_path_factory.mktemp("whole"), jobs)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", sorted(FAULTS))
def test_faulty_connector_fails_exactly_its_scenarios_in_the_whole_kit(
    whole_kit_runs: dict[str, tuple[int, dict[str, Any], str]], name: str
) -> None:
    """No other scenario of the kit fails it: the catch is the one its decorator names."""
    fault = FAULTS[name]
    code, report, output = whole_kit_runs[name]
    assert code == 1, f"exit {code}\n{output[-3000:]}"
    failed = {req for req, result in results(report).items() if result == "FAIL"}
    assert failed == {fault.requirement}, output[-4000:]
    assert report["verdict"] == "FAIL"
    assert failed_tests(report) == set(fault.caught_by), output[-4000:]


# -- other brokers and the command line ----------------------------------------------------


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
    assert all("not run against --broker-url" in s["detail"] for s in skipped), skipped


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
            "REQ_0257",
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
    code, report, _ = run_kit(tmp_path / "one", "-m", "REQ_0257")
    assert code == 3
    assert results(report)["REQ_0257"] == "PASS"
    assert results(report)["REQ_0250"] == "NOT RUN"
    code, _, output = run_kit(tmp_path / "bad", "--connector-factory", "no_such_module:factory")
    assert code == 2
    assert "cannot be imported" in output
    code, _, output = run_kit(tmp_path / "none", "-k", "no-scenario-has-this-name")
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
