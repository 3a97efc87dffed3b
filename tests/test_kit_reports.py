"""The kit's verdicts, exit codes and preflight checks (the evidence in its reports:
tests/test_kit_evidence.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taktora_connector.conformance import preflight
from taktora_connector.conformance.brokers import MosquittoBroker, free_port
from taktora_connector.conformance.identity import features_sha256, run_ids
from taktora_connector.conformance.registry import TESTS
from taktora_connector.conformance.reports import (
    FAILED,
    INAPPLICABLE,
    PASSED,
    SKIPPED,
    ScenarioResult,
    build_matrix,
    claim_text,
    needs_data,
)

from . import kit_factories
from .conftest import require_mosquitto
from .kit_runs import run_kit

META: dict[str, Any] = {
    "connector": "x:y",
    "broker": "b",
    "date": "2026-01-01T00:00:00+00:00",
    "duration": 1.0,
    "versions": {"taktora-connector": "0.1.0"},
}


def scenario(req: str, outcome: str, run_id: str = "TEST_2500") -> ScenarioResult:
    return ScenarioResult(
        nodeid=run_id,
        name=run_id,
        feature="f",
        requirements=[req],
        tests=[run_id],
        id=run_id,
        outcome=outcome,
        detail="" if outcome == PASSED else "why",
    )


# -- verdicts --------------------------------------------------------------------------


def test_verdict_is_pass_only_when_every_requirement_ran_and_passed() -> None:
    every = [scenario(f"REQ_{n:04d}", PASSED, f"T{n}") for n in range(250, 262)]
    assert build_matrix(every, META).verdict == "PASS"
    assert build_matrix(every, META).exit_code == 0
    one_skipped = [*every, scenario("REQ_0255", SKIPPED, "T_extra")]
    matrix = build_matrix(one_skipped, META)
    assert matrix.verdict == "PARTIAL"
    assert matrix.exit_code == 3
    assert {r.id: r.result for r in matrix.rows}["REQ_0255"] == "PARTIAL"
    assert matrix.why_not_pass() == ["why: 1 scenario (T_extra)"]
    missing = build_matrix(every[1:], META)
    assert missing.verdict == "PARTIAL"
    assert missing.why_not_pass() == ["REQ_0250 has no scenario in this run"]
    failed = build_matrix([*one_skipped, scenario("REQ_0251", FAILED, "T_bad")], META)
    assert failed.verdict == "FAIL"
    assert failed.exit_code == 1
    assert build_matrix([], META).verdict == "PARTIAL"


def test_needs_json_has_one_test_need_per_run() -> None:
    runs = [scenario("REQ_0251", PASSED, f"TEST_2511_{n}") for n in (1, 2)]
    for run in runs:
        run.tests = ["TEST_2511"]
    needs = next(iter(needs_data(build_matrix(runs, META))["versions"].values()))["needs"]
    tests = {k: v for k, v in needs.items() if v["type"] == "test"}
    assert set(tests) == {"TEST_2511_1", "TEST_2511_2"}
    assert tests["TEST_2511_1"]["links"] == ["REQ_0251"]
    assert tests["TEST_2511_1"]["title"].startswith(TESTS["TEST_2511"].title)


# -- unique run ids and identity -------------------------------------------------------


def test_every_scenario_and_outline_row_has_its_own_run_id() -> None:
    ids = run_ids()
    assert len(set(ids.values())) == len(ids)  # unique
    twenty_five_eleven = sorted(v for v in ids.values() if v.startswith("TEST_2511"))
    assert twenty_five_eleven == [f"TEST_2511_{n}" for n in range(1, 8)]
    assert "TEST_0131" in ids.values()  # a test id with one run keeps its own name
    used = {v.rsplit("_", 1)[0] if v.count("_") == 2 else v for v in ids.values()}
    assert set(TESTS) <= used


def test_feature_hash_changes_with_the_feature_files(tmp_path: Path) -> None:
    (tmp_path / "a.feature").write_text("Feature: a\n")
    first = features_sha256(tmp_path)
    assert first == features_sha256(tmp_path)
    (tmp_path / "a.feature").write_text("Feature: b\n")
    assert features_sha256(tmp_path) != first
    assert len(features_sha256()) == 64


# -- preflight: factories ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("no_such_module:make", "PYTHONPATH"),
        ("no-colon", "package.module:callable"),
        ("tests.kit_factories:nothing_here", "no attribute"),
        ("tests.kit_factories:raises", "raised RuntimeError"),
        ("tests.kit_factories:returns_none", "returned None"),
        ("tests.kit_factories:wrong_arguments", "raised TypeError"),
        ("tests.kit_factories:half_connector", "missing health, subscribe_health, start"),
    ],
)
def test_bad_factories_are_one_clear_message(factory: str, words: str) -> None:
    problem = preflight.check_factory(factory)
    assert problem is not None
    assert words in problem


def test_factory_probe_closes_what_it_made() -> None:
    kit_factories.CLOSED.clear()
    assert preflight.check_factory("tests.kit_factories:recorded") is None
    assert len(kit_factories.CLOSED) == 1
    assert preflight.check_factory("tests.kit_factories:half_connector") is not None
    assert kit_factories.CLOSED[-1] == "half"


def test_bad_factory_stops_the_cli_before_any_scenario(tmp_path: Path) -> None:
    code, report, output = run_kit(
        tmp_path / "r", "--connector-factory", "tests.kit_factories:returns_none", measure=True
    )
    assert code == 2
    assert "returned None, not a Connector" in output
    assert "Traceback" not in output
    assert report == {}
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


# -- preflight: broker URL and broker --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("localhost:1883", "no scheme"),
        ("http://localhost:1883", "scheme 'http'"),
        ("mqtts://localhost:8883", "mqtts is not supported"),
        ("mqtt://:1883", "names no host"),
        ("mqtt://localhost:99999", "not a valid URL"),
        ("mqtt://user:pw@localhost:1883", "carries credentials"),
        ("mqtt://localhost:1883/topic", "path or query"),
    ],
)
def test_bad_broker_urls_are_refused(url: str, words: str) -> None:
    problem = preflight.parse_broker_url(url)
    assert isinstance(problem, str)
    assert words in problem
    assert "pw" not in problem


def test_broker_choice_is_checked() -> None:
    problem = preflight.check_broker_choice("mosquitto", "mqtt://127.0.0.1:1883")
    assert problem is not None and "both name a broker" in problem
    assert preflight.check_broker_choice("amqtt", "mqtt://127.0.0.1:1883") is None
    assert preflight.check_broker_choice("amqtt", None) is None


def test_broker_mosquitto_runs_credentials_and_tls_on_a_broker_the_kit_starts(
    tmp_path: Path,
) -> None:
    require_mosquitto()
    code, report, output = run_kit(
        tmp_path / "r", "--broker", "mosquitto", "-m", "REQ_0255 or REQ_0256", measure=True
    )
    assert code == 3, output[-2000:]  # PARTIAL: two requirements selected
    outcome = {r["id"]: r["result"] for r in report["requirements"]}
    assert outcome["REQ_0255"] == outcome["REQ_0256"] == "PASS"
    assert report["meta"]["broker"].startswith("mosquitto ")
    assert "started by the kit" in report["meta"]["broker"]
    assert report["meta"]["broker_limits"] == []


def test_good_broker_urls_parse() -> None:
    assert preflight.parse_broker_url("mqtt://127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert preflight.parse_broker_url("mqtt://localhost") == ("localhost", 1883)


def test_dead_broker_is_one_message() -> None:
    problem = preflight.check_broker(f"mqtt://127.0.0.1:{free_port()}")
    assert problem is not None
    assert "connection refused" in problem


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    for sock in accepted:
        sock.close()
    server.close()


def test_silent_broker_is_one_message(silent_server: int) -> None:
    problem = preflight.probe_broker("127.0.0.1", silent_server, timeout=0.3)
    assert problem is not None
    assert "no CONNACK" in problem


def test_broker_refusing_anonymous_clients_is_named() -> None:
    require_mosquitto()
    with MosquittoBroker(users={"u": "secret-pw"}) as broker:
        problem = preflight.check_broker(broker.url)
    assert problem is not None
    assert "CONNACK return code 5" in problem


def test_cli_refuses_bad_urls_and_dead_brokers(tmp_path: Path) -> None:
    code, report, output = run_kit(tmp_path / "a", "--broker-url", "localhost:1883", measure=True)
    assert (code, report) == (2, {})
    assert "mqtt://host:port" in output
    code, report, output = run_kit(
        tmp_path / "b", "--broker-url", f"mqtt://127.0.0.1:{free_port()}", measure=True
    )
    assert (code, report) == (2, {})
    assert "connection refused" in output
    assert output.count("taktora-conformance:") == 1


# -- selections ------------------------------------------------------------------------


def test_unknown_tags_are_refused_before_anything_runs(tmp_path: Path) -> None:
    assert preflight.unknown_tags("REQ_0254 or (TEST_0131 and not REQ_9999)", TESTS) == [
        "REQ_0254",
        "REQ_9999",
    ]
    # any name that tags no scenario: pytest would refuse it only after the run
    assert preflight.unknown_tags("slow and not TEST_0131", TESTS) == ["slow"]
    assert preflight.unknown_tags("broker_config or TEST_0131", TESTS) == []
    code, report, output = run_kit(tmp_path / "r", "-m", "REQ_9999", measure=True)
    assert (code, report) == (2, {})
    assert "REQ_9999, which the kit does not know" in output
    assert "Verdict" not in output


@pytest.mark.parametrize(
    ("flag", "expression"),
    [
        ("-m", "nonsense"),
        ("-m", "REQ_0250 and"),
        ("-m", "REQ_0250 or (REQ_0251"),
        ("-k", "qos and"),
    ],
)
def test_a_malformed_selection_is_refused_before_anything_runs_and_writes_nothing(
    tmp_path: Path, flag: str, expression: str
) -> None:
    """It once printed a table and 'Verdict: PARTIAL', wrote reports saying so (over
    a good earlier report), and only then pytest refused the expression."""
    earlier = tmp_path / "r" / "report.json"
    earlier.parent.mkdir()
    earlier.write_text('{"verdict": "PASS"}')
    code, _, output = run_kit(tmp_path / "r", flag, expression, measure=True)
    assert code == 2, output[-2000:]
    assert "Verdict" not in output
    assert "not a valid selection expression" in output or "which the kit does not know" in output
    assert earlier.read_text() == '{"verdict": "PASS"}'
    assert sorted(p.name for p in earlier.parent.iterdir()) == ["report.json"]


def test_a_report_dir_that_cannot_be_one_is_refused_before_the_run(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    code, _, output = run_kit(a_file, "-m", "TEST_2570", measure=True)
    assert code == 2, output[-2000:]
    assert f"--report-dir {str(a_file)!r} is a file, not a directory" in output
    assert "Traceback" not in output
    assert preflight.report_dir_problem(a_file / "below") == (
        f"--report-dir {str(a_file / 'below')!r}: {str(a_file)!r} is not a directory"
    )
    assert preflight.report_dir_problem(tmp_path / "new" / "dir") is None


def test_a_selection_matching_nothing_writes_no_report(tmp_path: Path) -> None:
    code, report, output = run_kit(tmp_path / "r", "-k", "no-scenario-has-this-name", measure=True)
    assert (code, report) == (2, {})
    assert "no scenario matches -k 'no-scenario-has-this-name'" in output
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_a_partial_selection_is_partial_and_says_so(tmp_path: Path) -> None:
    code, report, output = run_kit(tmp_path / "r", "-m", "REQ_0253", measure=True)
    assert code == 3, output[-2000:]
    assert report["verdict"] == "PARTIAL"
    assert report["exit_code"] == 3
    assert report["meta"]["selection"] == {"-k": "", "-m": "REQ_0253"}
    assert any("not selected by -m 'REQ_0253'" in line for line in report["not_run"])
    assert "Verdict: PARTIAL (exit status 3)" in output
    page = (tmp_path / "r" / "report.html").read_text()
    assert "PARTIAL" in page and "-m &#x27;REQ_0253&#x27;" in page


# -- optional capabilities -------------------------------------------------------------------


def capability_scenario(test: str, outcome: str) -> ScenarioResult:
    return ScenarioResult(
        nodeid=test,
        name=test,
        feature="f",
        requirements=[],
        tests=[test],
        id=test,
        capabilities=["CAP_SHARED_SUBSCRIPTIONS"],
        outcome=outcome,
        detail="not selected" if outcome == SKIPPED else "",
    )


def every_requirement_passed() -> list[ScenarioResult]:
    return [scenario(f"REQ_{n:04d}", PASSED, f"T{n}") for n in range(250, 262)]


def test_an_unclaimed_capability_is_judged_by_its_refusal_and_the_other_branch_does_not_apply() -> (
    None
):
    """Read from the connector's claim, not from what ran: the claimed branch of a
    connector that claims nothing is not applicable even when -m left it out."""
    works = capability_scenario("TEST_2542", SKIPPED)  # not selected
    refused = capability_scenario("TEST_2544", PASSED)
    meta = {**META, "capabilities_claimed": []}
    matrix = build_matrix([*every_requirement_passed(), works, refused], meta)
    (row,) = matrix.capabilities
    assert (row.claimed, row.result) == (False, "PASS")
    assert works.outcome == INAPPLICABLE
    assert matrix.verdict == "PASS"  # the branch that does not apply makes no PARTIAL
    assert not [s for s in matrix.not_run() if s.capabilities]


def test_a_claimed_capability_that_did_not_run_is_not_run_and_says_it_is_claimed() -> None:
    works = capability_scenario("TEST_2542", SKIPPED)  # e.g. a broker without them
    refused = capability_scenario("TEST_2544", SKIPPED)
    meta = {**META, "capabilities_claimed": ["shared-subscriptions"]}
    matrix = build_matrix([*every_requirement_passed(), works, refused], meta)
    (row,) = matrix.capabilities
    assert (row.claimed, row.result) == (True, "NOT RUN")
    assert refused.outcome == INAPPLICABLE and works.outcome == SKIPPED
    assert claim_text(row) == "claimed: not checked in this run"
    assert matrix.verdict == "PARTIAL"


def test_a_broken_claimed_capability_fails_the_run_but_no_requirement() -> None:
    works = capability_scenario("TEST_2542", FAILED)
    refused = capability_scenario("TEST_2544", INAPPLICABLE)
    meta = {**META, "capabilities_claimed": ["shared-subscriptions"]}
    matrix = build_matrix([*every_requirement_passed(), works, refused], meta)
    assert [r.result for r in matrix.rows] == ["PASS"] * 12
    assert matrix.capabilities[0].result == "FAIL"
    assert matrix.verdict == "FAIL"


def test_a_claim_the_kit_does_not_know_is_refused_before_anything_runs(tmp_path: Path) -> None:
    code, _, output = run_kit(
        tmp_path / "reports", "--connector-factory", "tests.kit_factories:unknown_capability"
    )
    assert code == 2, output[-2000:]
    assert "claims 'shared-subs', which the kit does not know" in output
    assert "the optional capabilities are: shared-subscriptions" in output


def test_a_statement_selects_the_scenarios_that_check_it(tmp_path: Path) -> None:
    """``-m "MQTT-3.8.4-5"`` runs exactly the scenarios tagged with that statement; a
    statement id that tags none is refused before anything runs."""
    code, report, output = run_kit(tmp_path / "r", "-m", "MQTT-3.8.4-5", measure=True)
    assert code == 3, output[-2000:]
    ran = {
        t for s in report["scenarios"] if s["outcome"] in ("passed", "failed") for t in s["tests"]
    }
    assert ran == {"TEST_2631"}
    rows = {row["id"]: row for row in report["protocol_profile"]["statements"]}
    assert rows["MQTT-3.8.4-5"]["result"] == "PASS"
    code, _, output = run_kit(tmp_path / "bad", "-m", "MQTT-9.9.9-9", measure=True)
    assert code == 2
    assert "MQTT-9.9.9-9, which the kit does not know" in output
