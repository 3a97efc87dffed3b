"""The kit's pytest plugin: options, step definitions, result collection and reports.

Registered through the ``pytest11`` entry point, so it is active in any pytest
run where taktora-connector is installed; it only checks and reports when the
kit's scenarios were collected.

Options: ``--connector-factory package.module:callable`` (default: the
reference ``MqttConnector``), ``--broker-url mqtt://host:port`` (default: an
in-process amqtt broker per scenario), ``--report-dir DIR``.

Rules of this module:
- a ``-m`` expression naming a REQ_/TEST_ id the kit does not know is refused
  before anything is collected;
- once the kit's scenarios are collected, and before any runs, the factory and
  the broker are checked (``preflight``); a problem is one message and a usage
  error, not one traceback per scenario;
- every step's status, time and place, and every packet of the scenario's
  proxies, are kept per scenario as evidence;
- reports are written only when at least one scenario was selected.
"""

from __future__ import annotations

import inspect
import platform
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from .brokers import (
    RabbitMQBroker,
    RabbitMQUnavailable,
    mosquitto_binary,
    mosquitto_version,
    rabbitmq_version,
)
from .factory import DEFAULT_FACTORY, ConnectorFactory, claimed_capabilities, load_factory
from .identity import RunKey, identity, run_ids
from .paths import DEFAULT_REPORT_DIR
from .preflight import (
    check_broker,
    check_broker_choice,
    check_factory,
    malformed_selection,
    parse_broker_url,
    report_dir_problem,
    unknown_tags,
)
from .probes import BrokerFacts, Probe, as_dicts, known, probe_broker, unfit
from .registry import CAPABILITIES, REQUIREMENTS, TESTS, capability_of, requirement_of, tests_of
from .reports import (
    FAILED,
    INAPPLICABLE,
    NOT_APPLICABLE,
    PASSED,
    SKIPPED,
    Matrix,
    ScenarioResult,
    StepRecord,
    build_matrix,
    table_lines,
    write_all,
)
from .statement_report import NOT_REACHED
from .statements import STATEMENTS, statements_of
from .wire_rules import audit
from .world import BROKER_FACTS, CLAIMS

pytest_plugins = ("taktora_connector.conformance.steps",)

#: Frames of these packages are pytest's machinery, not evidence.
_MACHINERY = ("/_pytest/", "/pluggy/", "/pytest_bdd/", "/pytest_timeout")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taktora-conformance", "taktora connector conformance kit")
    group.addoption(
        "--connector-factory",
        default=DEFAULT_FACTORY,
        help="connector under test, as package.module:callable taking (options, codec)",
    )
    group.addoption(
        "--broker-url",
        default=None,
        help="mqtt://host:port of an external broker (default: an in-process amqtt per scenario)",
    )
    group.addoption(
        "--broker",
        default="amqtt",
        choices=("amqtt", "mosquitto", "rabbitmq"),
        help="the broker the kit starts: amqtt (in process, one per scenario, the default), "
        "mosquitto (a process per scenario) or rabbitmq (one RabbitMQ node for the run)",
    )
    group.addoption(
        "--report-dir",
        default=None,
        help=f"where the traceability reports go (default: {DEFAULT_REPORT_DIR})",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for req in REQUIREMENTS.values():
        config.addinivalue_line("markers", f"{req.id}: verifies {req.id} ({req.title})")
    for cap in CAPABILITIES.values():
        config.addinivalue_line("markers", f"{cap.id}: optional capability ({cap.title})")
    for test in TESTS.values():
        config.addinivalue_line("markers", f"{test.id}: test case {test.id} ({test.title})")
    for statement in STATEMENTS.values():
        config.addinivalue_line(
            "markers", f"{statement.id}: MQTT 3.1.1 statement ({statement.rule})"
        )
    config.addinivalue_line(
        "markers", "broker_config: needs a broker the kit configures (credentials, TLS)"
    )
    runs = sorted(set(run_ids().values()) - set(TESTS))
    for run in runs:  # TEST_2511_3: one scenario run, so -m can select exactly it
        config.addinivalue_line("markers", f"{run}: one run of {run.rsplit('_', 1)[0]}")
    markexpr = str(config.getoption("markexpr", "") or "")
    malformed = malformed_selection(str(config.getoption("keyword", "") or ""), markexpr)
    if malformed is None:
        malformed = report_dir_problem(config.getoption("--report-dir") or DEFAULT_REPORT_DIR)
    if malformed is not None:
        raise pytest.UsageError(malformed)
    # Markers the host run registered (its own, pytest's, other plugins') are known
    # too: the kit's plugin is active in any pytest run, whose -m may be its own.
    registered = [line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")]
    unknown = unknown_tags(
        markexpr, [*REQUIREMENTS, *CAPABILITIES, *TESTS, *STATEMENTS, *runs, *registered]
    )
    if unknown:
        raise pytest.UsageError(
            f"-m {markexpr!r} names {', '.join(unknown)}, which the kit does not know; "
            f"requirements are {min(REQUIREMENTS)}..{max(REQUIREMENTS)}, test ids are "
            f"listed by `pytest --markers` or in the report"
        )
    config.pluginmanager.register(KitSession(config), "taktora-conformance-session")


@pytest.fixture(scope="session")
def connector_factory(request: pytest.FixtureRequest) -> ConnectorFactory:
    """The factory named by ``--connector-factory``."""
    return load_factory(str(request.config.getoption("--connector-factory")))


class KitSession:
    """Collects the kit's scenario results during one pytest run and reports them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, ScenarioResult] = {}
        self.started = time.monotonic()
        self.matrix: Matrix | None = None
        self.selected = 0
        self.interrupted = False
        self._ids: dict[RunKey, str] | None = None
        self._scenario_start: dict[str, float] = {}
        self._step_start: dict[str, float] = {}
        self._worlds: dict[str, Any] = {}
        self.rabbitmq: RabbitMQBroker | None = None  # a --broker rabbitmq run's node
        self.probes: list[Probe] = []
        self.claims: frozenset[str] = frozenset()

    # -- collection --------------------------------------------------------------------

    def _result_for(self, item: pytest.Item, detail: str = "") -> ScenarioResult | None:
        tags = [mark.name for mark in item.iter_markers()]
        if not requirement_of(tags) and not capability_of(tags):
            return None
        scenario = _scenario_of(item)
        feature = getattr(scenario, "feature", None)
        feature_file = Path(str(getattr(feature, "filename", "") or "")).name
        line = int(getattr(scenario, "line_number", 0) or 0)
        example: dict[str, str] = {}
        row = -1
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "_pytest_bdd_example" in callspec.params:
            example = dict(callspec.params["_pytest_bdd_example"])
            row = int(callspec.indices.get("_pytest_bdd_example", 0))
        if self._ids is None:
            self._ids = run_ids()
        run_id = self._ids.get((feature_file, line, row), "")
        title = str(getattr(scenario, "name", item.name))
        name = title
        if example:
            name = f"{title} [{', '.join(f'{k}={v}' for k, v in example.items())}]"
        return ScenarioResult(
            nodeid=item.nodeid,
            name=name,
            feature=str(getattr(feature, "name", "")),
            requirements=requirement_of(tags),
            tests=tests_of(tags),
            capabilities=capability_of(tags),
            statements=statements_of(tags),
            id=run_id,
            title=title,
            feature_file=feature_file,
            line=line,
            example=example,
            detail=detail,
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Mark each scenario run with its run id (before -m deselects)."""
        for item in items:
            result = self._result_for(item)
            if result is not None and result.id and result.id not in result.tests:
                item.add_marker(result.id)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        keyword = self.config.getoption("keyword", "")
        markexpr = self.config.getoption("markexpr", "")
        chosen = " and ".join(
            f"{flag} {value!r}" for flag, value in (("-k", keyword), ("-m", markexpr)) if value
        )
        for item in items:
            result = self._result_for(item, f"not selected by {chosen or 'the selection'}")
            if result is not None:
                self.results[item.nodeid] = result

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        selected = 0
        for item in session.items:  # after -k and -m deselection
            result = self._result_for(item, "not run")
            if result is not None:
                self.results[item.nodeid] = result
                selected += 1
        self.selected = selected
        if not selected:
            return
        problem = check_factory(str(self.config.getoption("--connector-factory")))
        url = self.config.getoption("--broker-url")
        if problem is None:
            problem = check_broker_choice(str(self.config.getoption("--broker")), url)
        if problem is None and url:
            problem = check_broker(str(url))
        if problem is None:
            claims = claimed_capabilities(
                load_factory(str(self.config.getoption("--connector-factory")))
            )
            if isinstance(claims, str):
                problem = claims
            else:
                self.claims = claims
                self.config.stash[CLAIMS] = claims
        if problem is None:
            problem = self._find_out_the_broker(str(self.config.getoption("--broker")), url)
        if problem is not None:
            self.results.clear()  # nothing ran: no report
            self.selected = 0
            self._stop_broker()
            raise pytest.UsageError(problem)

    def _find_out_the_broker(self, managed: str, url: object) -> str | None:
        """Start the run's broker (rabbitmq), probe what the broker can do (one that
        serves the whole run; the kit's own per-scenario brokers are known), and keep
        the facts for every scenario; why not, for a person."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if managed == "rabbitmq":
            if reporter is not None:
                reporter.write_line("starting a RabbitMQ node for the run (about 15 s) ...")
            try:
                self.rabbitmq = RabbitMQBroker(tls=True).start()
            except RabbitMQUnavailable as err:
                return f"--broker rabbitmq: {err}"
            url = self.rabbitmq.url
        if url:
            if reporter is not None:
                reporter.write_line(f"probing the broker at {url} (a few seconds) ...")
            parsed = parse_broker_url(str(url))
            assert not isinstance(parsed, str)  # checked before
            try:
                found = probe_broker(*parsed)
            except OSError as err:
                return f"the broker at {url} broke off while the kit probed it: {err}"
        else:
            found = known(managed)
        self.probes = found
        why = unfit(found)
        if why is not None:
            return why
        self.config.stash[BROKER_FACTS] = BrokerFacts(
            managed, str(url) if url else None, tuple(found), self.rabbitmq
        )
        return None

    def _stop_broker(self) -> None:
        if self.rabbitmq is not None:
            self.rabbitmq.close()
            self.rabbitmq = None

    # -- steps -------------------------------------------------------------------------

    def pytest_bdd_before_scenario(self, request: Any, feature: Any, scenario: Any) -> None:
        nodeid = request.node.nodeid
        result = self.results.get(nodeid)
        self._scenario_start[nodeid] = time.monotonic()
        if result is not None:
            result.steps = [
                StepRecord(step.keyword, step.name, step.line_number) for step in scenario.steps
            ]

    def _step(self, request: Any, step: Any) -> StepRecord | None:
        result = self.results.get(request.node.nodeid)
        if result is None:
            return None
        for record in result.steps:
            if record.line == step.line_number and record.text == step.name:
                return record
        return None

    def pytest_bdd_before_step(
        self, request: Any, feature: Any, scenario: Any, step: Any, step_func: Any
    ) -> None:
        self._step_start[request.node.nodeid] = time.monotonic()
        record = self._step(request, step)
        if record is not None:
            record.definition = _where(step_func)

    def _step_done(self, request: Any, step: Any, status: str, error: str = "") -> None:
        record = self._step(request, step)
        if record is None:
            return
        started = self._step_start.get(request.node.nodeid, time.monotonic())
        record.status = status
        record.duration = time.monotonic() - started
        record.error = error
        if status == FAILED:
            result = self.results[request.node.nodeid]
            where = f"{result.feature_file}:{record.line}"
            result.failed_step = f"{record.keyword} {record.text} ({where})"

    def pytest_bdd_after_step(  # noqa: PLR0917 - pytest-bdd's hook signature
        self,
        request: Any,
        feature: Any,
        scenario: Any,
        step: Any,
        step_func: Any,
        step_func_args: Any,
    ) -> None:
        self._step_done(request, step, PASSED)

    def pytest_bdd_step_error(  # noqa: PLR0917 - pytest-bdd's hook signature
        self,
        request: Any,
        feature: Any,
        scenario: Any,
        step: Any,
        step_func: Any,
        step_func_args: Any,
        exception: BaseException,
    ) -> None:
        self._step_done(request, step, FAILED, _explain(exception))

    def pytest_bdd_step_func_lookup_error(
        self, request: Any, feature: Any, scenario: Any, step: Any, exception: BaseException
    ) -> None:
        self._step_start[request.node.nodeid] = time.monotonic()
        self._step_done(request, step, FAILED, f"no step definition matches: {exception}")

    def pytest_bdd_after_scenario(self, request: Any, feature: Any, scenario: Any) -> None:
        nodeid = request.node.nodeid
        if nodeid in self.results and "conformance_world" in request.fixturenames:
            try:
                self._worlds[nodeid] = request.getfixturevalue("conformance_world")
            except Exception:
                pass

    # -- results -----------------------------------------------------------------------

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        """The kit prints its own line per scenario: pytest's letters and node ids go."""
        if report.nodeid not in self.results:
            return None
        if report.when == "call" or report.skipped:
            return report.outcome, "", ""
        if report.failed:
            return "error", "", ""
        return "", "", ""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results.get(report.nodeid)
        if result is None:
            return
        result.duration += report.duration
        if report.failed:
            if result.outcome != FAILED:
                result.detail = self._evidence(result, report)
            result.outcome = FAILED
        elif report.skipped and result.outcome != FAILED:
            reason = _skip_reason(report)
            if reason.startswith(NOT_APPLICABLE):
                result.outcome = INAPPLICABLE
                result.detail = reason.removeprefix(NOT_APPLICABLE)
            else:
                result.outcome = SKIPPED
                result.detail = reason
        elif report.when == "call" and report.passed and result.outcome != FAILED:
            result.outcome = PASSED
            result.detail = ""
        if report.when == "teardown":
            self._finish_scenario(result)

    def _evidence(self, result: ScenarioResult, report: pytest.TestReport) -> str:
        failed = [st for st in result.steps if st.status == FAILED]
        if failed and report.when == "call":
            return f"Step failed: {result.failed_step}\n{failed[0].error}"
        text = (report.longreprtext or "").strip().splitlines()
        return f"Failed during {report.when} (outside the steps):\n" + "\n".join(text[-30:])

    def _finish_scenario(self, result: ScenarioResult) -> None:
        world = self._worlds.pop(result.nodeid, None)
        since = self._scenario_start.pop(result.nodeid, self.started)
        if world is not None:
            try:
                result.wire, result.wire_omitted = world.wire_log(since)
            except Exception as err:
                result.wire, result.wire_omitted = [], 0
                result.detail += f"\n(wire log unavailable: {err})"
        if result.statements:
            result.findings = statement_findings(result, world)
        self._print(result)

    def _print(self, result: ScenarioResult) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        if result.outcome == PASSED and self.config.get_verbosity() < -1:
            return
        status = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP", INAPPLICABLE: "N/A"}[
            result.outcome
        ]
        markup = {
            PASSED: {"green": True},
            FAILED: {"red": True},
            SKIPPED: {"yellow": True},
            INAPPLICABLE: {},
        }
        reporter.ensure_newline()
        reporter.write(f"{status:<5}", **markup[result.outcome])
        reporter.write_line(
            f"{result.anchor:<12} {result.name}  [{result.location}, {result.duration:.2f} s]"
        )
        if result.outcome == SKIPPED:
            reporter.write_line(f"      not run: {result.detail}")
        elif result.outcome == INAPPLICABLE:
            reporter.write_line(f"      not applicable: {result.detail}")
        elif result.outcome == FAILED:
            for line in result.detail.strip().splitlines()[:12]:
                reporter.write_line(f"      {line}")

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self._stop_broker()
        if exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR):
            self.interrupted = True  # no verdict, so no report that would claim one
            return
        if self.selected:  # nothing selected: no report at all
            self.finish()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.interrupted:
            terminalreporter.write_line("the run broke off: no verdict, no report written")
        if self.matrix is None:
            return
        terminalreporter.section("requirement traceability (taktora conformance)")
        for line in table_lines(self.matrix):
            terminalreporter.write_line(line)
        terminalreporter.write_line("")
        terminalreporter.write_line(f"reports written to {self.directory}/")

    @property
    def directory(self) -> Path:
        return Path(self.config.getoption("--report-dir") or DEFAULT_REPORT_DIR)

    def finish(self) -> Matrix:
        url = self.config.getoption("--broker-url")
        factory = str(self.config.getoption("--connector-factory"))
        broker, limits = describe_broker(str(self.config.getoption("--broker")), url)
        meta = {
            "connector": factory,
            "identity": identity(factory),
            "broker": broker,
            "broker_limits": limits,
            "broker_probes": as_dicts(self.probes),
            "capabilities_claimed": sorted(self.claims),
            "selection": {
                "-k": self.config.getoption("keyword", "") or "",
                "-m": self.config.getoption("markexpr", "") or "",
            },
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration": time.monotonic() - self.started,
            "versions": _versions(),
        }
        meta["rerun"] = rerun_command(self.config)
        ordered = sorted(self.results.values(), key=lambda r: (r.feature_file, r.line, r.anchor))
        self.matrix = build_matrix(ordered, meta)
        write_all(self.matrix, self.directory)
        return self.matrix


def statement_findings(result: ScenarioResult, world: Any) -> dict[str, dict[str, str]]:
    """What a scenario found on each statement it is tagged with. Judged explicitly (the
    wire audit, a check step) or by the scenario's outcome: passed, it held; failed
    after its fault was in place (``World.judging``), it broke; failed before, it was not
    reached, except where the traffic so far already shows the breach (a connector whose
    CONNECT the broker refuses never reaches its audit step: the audit runs here)."""
    explicit: dict[str, tuple[str, str]] = dict(getattr(world, "findings", {}) or {})
    judging = bool(getattr(world, "judging", False))
    if result.outcome == FAILED and not judging and world is not None:
        for name in list(getattr(world, "parties", {})):
            try:
                found = audit(world.traffic(name), result.statements)
            except Exception:  # a party without a proxy: nothing to audit
                continue
            for finding in found.values():
                if finding.problems:
                    explicit[finding.statement] = ("failed", "\n".join(finding.problems))
    findings = {}
    for statement in result.statements:
        if statement in explicit:
            outcome, detail = explicit[statement]
        elif result.outcome == PASSED:
            outcome, detail = "passed", ""
        elif result.outcome == FAILED:
            outcome = "failed" if judging else NOT_REACHED
            detail = _first_line(result.detail) if judging else ""
        else:
            outcome, detail = result.outcome, result.detail
        findings[statement] = {"outcome": outcome, "detail": detail}
    return findings


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[1].strip() if len(lines) > 1 else (lines[0] if lines else "")


def rerun_command(config: pytest.Config) -> str:
    """The command that runs one scenario again as this run did ({id} is its run id)."""
    parts = [
        "taktora-conformance",
        "--connector-factory",
        str(config.getoption("--connector-factory")),
    ]
    url = config.getoption("--broker-url")
    if url:
        parts += ["--broker-url", str(url)]
    elif config.getoption("--broker") != "amqtt":
        parts += ["--broker", str(config.getoption("--broker"))]
    return " ".join(parts) + " -m {id}"


def describe_broker(managed: str, url: object) -> tuple[str, list[str]]:
    """The broker of a run for the reports, and what it cannot check."""
    if url:
        return str(url), [
            "an external broker: scenarios that need a broker the kit configures "
            "(credentials, TLS) are not run"
        ]
    if managed == "mosquitto":
        return f"mosquitto {mosquitto_version()} started by the kit (a fresh one per scenario)", []
    if managed == "rabbitmq":
        return (
            f"RabbitMQ {rabbitmq_version()} with rabbitmq_mqtt, started by the kit (one node "
            "for the whole run, on loopback, with a TLS listener; users added per scenario)",
            [],
        )
    if mosquitto_binary() is not None:
        return (
            "in-process amqtt (a fresh broker per scenario; the shared-subscription "
            "scenario on a mosquitto the kit starts, as amqtt has none)",
            [],
        )
    return "in-process amqtt (a fresh broker per scenario)", [
        "amqtt has no shared subscriptions and mosquitto is not installed: "
        "the shared-subscription scenario is not run"
    ]


def _scenario_of(item: pytest.Item) -> Any:
    """pytest-bdd's scenario template behind a test item (None if it has none)."""
    try:
        from pytest_bdd.scenario import scenario_wrapper_template_registry

        return scenario_wrapper_template_registry.get(getattr(item, "obj", None))  # type: ignore[arg-type]
    except (ImportError, TypeError):
        return None


def _where(func: Any) -> str:
    """file:line of a step's code, relative to the package or the working directory."""
    try:
        target = inspect.unwrap(func)
        path = Path(inspect.getsourcefile(target) or "")
        line = inspect.getsourcelines(target)[1]
    except (TypeError, OSError):
        return ""
    parts = path.parts
    if "conformance" in parts:
        path = Path(*parts[parts.index("conformance") :])
    else:
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            pass
    return f"{path}:{line}"


def _explain(exception: BaseException) -> str:
    """The failure as evidence: the exception, then the frames that are not pytest's."""
    message = f"{type(exception).__name__}: {exception}".strip()
    frames = [
        frame
        for frame in traceback.extract_tb(exception.__traceback__)
        if not any(part in frame.filename for part in _MACHINERY)
    ]
    lines = [message]
    if frames:
        lines.append("Raised at:")
        for frame in frames[-8:]:
            code = (frame.line or "").strip()
            lines.append(f"  {_short(frame.filename)}:{frame.lineno} in {frame.name}: {code}")
    return "\n".join(lines)


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("conformance", "site-packages"):
        if anchor in parts:
            return str(Path(*parts[parts.index(anchor) + (anchor == "site-packages") :]))
    return filename


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "skipped")


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("taktora-connector", "paho-mqtt", "amqtt", "pytest", "pytest-bdd"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found
