"""The kit can fail: each faulty connector fails the scenario written for it.

Every faulty connector is registered where it is defined (``tests/faulty/``), with the
requirement it breaks and the scenarios that catch it. ``make test`` runs, for each, the
scenario written for it plus a control scenario it must pass; the whole kit per fault
is marked slow (``make test-slow``).
"""

from __future__ import annotations

from typing import Any

import pytest

from taktora_connector.conformance.registry import CAPABILITIES, REQUIREMENTS, TESTS

from .conftest import require_mosquitto
from .faulty import req_0250
from .faulty.registry import CONTROL, REFUSED, Fault, breaks, load_all, refused
from .kit_runs import failed_statements, failed_tests, outcomes_of, results, run_pool

# -- the kit can fail --------------------------------------------------------------------

FAULTS, FAIRS = load_all()
#: How many kit runs go at once. A one- or two-scenario run mostly waits out the
#: kit's patience; a whole-kit run keeps a core busier, and more of them at once than
#: this two-core machine serves makes timing scenarios fail for the wrong reason.
QUICK_AT_ONCE = 12
WHOLE_AT_ONCE = 4


def fault_args(fault: Fault) -> list[str]:
    if fault.broker == "mosquitto":
        require_mosquitto()
    return ["--connector-factory", fault.factory, "--broker", fault.broker]


def test_every_fault_names_scenarios_of_the_requirement_it_breaks() -> None:
    """The registry is checked against the kit's own: a typo in a decorator fails here."""
    assert len(FAULTS) >= 30 and FAIRS
    for fault in FAULTS.values():
        assert fault.requirement in {**REQUIREMENTS, **CAPABILITIES}, fault
        for test in (*fault.caught_by, *fault.may_also_fail):
            assert TESTS[test].verifies == fault.requirement, fault
        assert TESTS[fault.control].verifies != fault.requirement, fault
    for fair in FAIRS.values():
        assert fair.requirement in {**REQUIREMENTS, **CAPABILITIES}, fair


def test_the_registry_refuses_what_it_cannot_check() -> None:
    with pytest.raises(ValueError, match="caught_by names test ids"):
        breaks("REQ_0250", caught_by="REQ_0250")
    with pytest.raises(ValueError, match=r"a requirement is REQ_\.\.\. \(or a capability"):
        breaks("TEST_2500", caught_by="TEST_2500")
    with pytest.raises(ValueError, match="control TEST_0130 is a scenario it fails"):
        breaks("REQ_0252", caught_by="TEST_0130", control="TEST_0130")(lambda o, c: None)
    with pytest.raises(ValueError, match="needs its reason"):
        breaks("REQ_0252", caught_by="TEST_0131", may_also_fail=("TEST_2521",))
    with pytest.raises(ValueError, match="repeats caught_by"):
        breaks("REQ_0252", caught_by="TEST_0131", may_also_fail=("TEST_0131",), because="x")
    with pytest.raises(ValueError, match="registered twice"):
        breaks("REQ_0250", caught_by="TEST_2505")(req_0250.lazy_with)
    with pytest.raises(ValueError, match=r"names MQTT 3\.1\.1 statements"):
        refused("REQ_0257", because="x")
    with pytest.raises(ValueError, match="needs its reason"):
        refused("MQTT-3.1.2-3", because="")


@pytest.fixture(scope="module")
def quick_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[int, dict[str, Any], str]]:
    """Each fault's catching scenario plus its control; each fair connector's whole kit."""
    jobs = {
        name: [*fault_args(fault), "-m", fault.quick_selection()]
        for name, fault in FAULTS.items()
        if fault.quick
    }
    # A fair connector's quick run: the requirement its oddity touches, and the control;
    # the whole kit runs on it in make test-slow (test_fair_connector_passes_the_whole_kit).
    jobs |= {
        name: ["--connector-factory", fair.factory, "-m", f"{fair.requirement} or {CONTROL}"]
        for name, fair in FAIRS.items()
    }
    return run_pool(tmp_path_factory.mktemp("quick"), jobs, at_once=QUICK_AT_ONCE)


@pytest.mark.timeout(600)  # the first test waits for every run of the pool
@pytest.mark.parametrize("name", sorted(name for name, fault in FAULTS.items() if fault.quick))
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
    assert failed_statements(report) == set(fault.statements), output[-4000:]
    assert outcomes_of(report, fault.control) == {"passed"}, output[-4000:]
    # PARTIAL where the control is not every scenario of its requirement
    assert outcome[TESTS[fault.control].verifies] in ("PASS", "PARTIAL")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(FAIRS))
def test_fair_connector_passes(
    quick_runs: dict[str, tuple[int, dict[str, Any], str]], name: str
) -> None:
    """Unusual but correct connectors pass the scenarios of the requirement their oddity
    touches, and the control."""
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
    jobs |= {name: ["--connector-factory", fair.factory] for name, fair in FAIRS.items()}
    return run_pool(tmp_path_factory.mktemp("whole"), jobs, at_once=WHOLE_AT_ONCE)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", sorted(FAIRS))
def test_fair_connector_passes_the_whole_kit(
    whole_kit_runs: dict[str, tuple[int, dict[str, Any], str]], name: str
) -> None:
    """Unusual but correct connectors pass the whole kit, the protocol profile included."""
    code, report, output = whole_kit_runs[name]
    outcome = results(report)
    assert "FAIL" not in outcome.values(), output[-3000:]
    assert outcome[FAIRS[name].requirement] == "PASS"
    assert not [r for r in report["protocol_profile"]["statements"] if r["result"] == "FAIL"]
    assert code in (0, 3), output[-3000:]  # PASS, or PARTIAL where the broker cannot run one


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
    failing = failed_tests(report)
    assert set(fault.caught_by) <= failing <= {*fault.caught_by, *fault.may_also_fail}, output[
        -4000:
    ]
    assert failed_statements(report) == set(fault.statements), output[-4000:]


# -- the statements no broker lets a connector break ---------------------------------------


@pytest.fixture(scope="module")
def refused_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[int, dict[str, Any], str]]:
    """The kit on each ``refused`` fault, selecting the scenarios of its statement."""
    jobs = {
        name: [
            "--connector-factory",
            fault.factory,
            "--broker",
            fault.broker,
            "-m",
            fault.selection(),
        ]
        for name, fault in REFUSED.items()
    }
    return run_pool(tmp_path_factory.mktemp("refused"), jobs, at_once=WHOLE_AT_ONCE)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_fault_fails_exactly_its_statements(
    refused_runs: dict[str, tuple[int, dict[str, Any], str]], name: str
) -> None:
    """The broker takes no connection of it, yet the profile names the statement it
    broke (from what the proxy saw), and no other."""
    fault = REFUSED[name]
    code, report, output = refused_runs[name]
    assert code == 1, f"exit {code}\n{output[-3000:]}"
    assert report["verdict"] == "FAIL"
    assert failed_statements(report) == set(fault.statements), output[-4000:]


def test_every_statement_the_kit_judges_is_failed_by_some_careless_connector() -> None:
    """Each statement the kit judges, by a wire rule (``conformance.wire_rules.RULES``)
    or by a step of its own, has a registered connector that breaks it: no check is
    one that every connector keeps."""
    from taktora_connector.conformance.statements import STATEMENTS
    from taktora_connector.conformance.wire_rules import RULES

    broken = {s for fault in FAULTS.values() for s in fault.statements}
    broken |= {s for fault in REFUSED.values() for s in fault.statements}
    assert set(RULES) - broken == set()
    assert broken <= set(STATEMENTS)  # no typo in a decorator
    assert _tagged_statements() - broken == set()  # a step's own judgement, too


def _tagged_statements() -> set[str]:
    """Every statement some scenario of the kit is tagged with (the profile judges it)."""
    import re
    from pathlib import Path

    features = Path(__file__).resolve().parents[1] / "features"
    found: set[str] = set()
    for feature in features.glob("*.feature"):
        found |= set(re.findall(r"@(MQTT-[0-9.]+-[0-9]+)", feature.read_text(encoding="utf-8")))
    assert len(found) > 50
    return found


def test_every_line_of_the_contract_page_is_failed_by_some_faulty_connector() -> None:
    """docs/connector-contract.md: each line names the scenarios that check it; at least
    one of them is failed by a registered wrong connector, so no line's check is one that
    every connector passes (issue 17 point 4). Lines marked "not checked" say why."""
    import re
    from pathlib import Path

    caught = {test for fault in FAULTS.values() for test in fault.caught_by}
    page = Path(__file__).resolve().parents[1] / "docs" / "connector-contract.md"
    uncaught = []
    for line in page.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        checked_by = line.rstrip().rstrip("|").rsplit("|", 1)[-1]
        tests = set(re.findall(r"TEST_\d{4}", checked_by))
        if tests and not tests & caught:
            uncaught.append(f"{sorted(tests)}: {line[:100]}")
    assert not uncaught, "\n".join(uncaught)
