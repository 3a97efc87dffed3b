"""The kit's pytest plugin: options, step definitions, result collection and reports.

Registered through the ``pytest11`` entry point, so it is active in any pytest
run where taktora-connector is installed; it only reports when the kit's
scenarios were collected.

Options: ``--connector-factory package.module:callable`` (default: the
reference ``MqttConnector``), ``--broker-url mqtt://host:port`` (default: an
in-process amqtt broker per scenario), ``--report-dir DIR``.
"""

from __future__ import annotations

import platform
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from .factory import DEFAULT_FACTORY, ConnectorFactory, load_factory
from .paths import DEFAULT_REPORT_DIR
from .registry import REQUIREMENTS, TESTS, requirement_of, tests_of
from .reports import (
    FAILED,
    PASSED,
    SKIPPED,
    Matrix,
    ScenarioResult,
    build_matrix,
    table_lines,
    write_all,
)

pytest_plugins = ("taktora_connector.conformance.steps",)


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
        "--report-dir",
        default=None,
        help=f"where the traceability reports go (default: {DEFAULT_REPORT_DIR})",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for req in REQUIREMENTS.values():
        config.addinivalue_line("markers", f"{req.id}: verifies {req.id} ({req.title})")
    for test in TESTS.values():
        config.addinivalue_line("markers", f"{test.id}: test case {test.id} ({test.title})")
    config.addinivalue_line(
        "markers", "broker_config: needs a broker the kit configures (credentials, TLS)"
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

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:  # after -k and -m deselection
            tags = [mark.name for mark in item.iter_markers()]
            if not requirement_of(tags):
                continue
            scenario = _scenario_of(item)
            self.results[item.nodeid] = ScenarioResult(
                nodeid=item.nodeid,
                name=_scenario_name(item, scenario),
                feature=str(getattr(scenario.feature, "name", "")),
                requirements=requirement_of(tags),
                tests=tests_of(tags),
                detail="deselected or not run",
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results.get(report.nodeid)
        if result is None:
            return
        result.duration += report.duration
        if report.failed:
            result.outcome = FAILED
            result.detail = _evidence(report)
        elif report.skipped and result.outcome != FAILED:
            result.outcome = SKIPPED
            result.detail = _skip_reason(report)
        elif report.when == "call" and report.passed and result.outcome != FAILED:
            result.outcome = PASSED
            result.detail = ""

    def pytest_sessionfinish(self) -> None:
        if self.results:
            self.finish()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
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
        meta = {
            "connector": str(self.config.getoption("--connector-factory")),
            "broker": str(url) if url else "in-process amqtt (a fresh broker per scenario)",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration": time.monotonic() - self.started,
            "versions": _versions(),
        }
        self.matrix = build_matrix(self.results.values(), meta)
        write_all(self.matrix, self.directory)
        return self.matrix


def _scenario_of(item: pytest.Item) -> Any:
    """pytest-bdd's scenario template behind a test item (None if it has none)."""
    try:
        from pytest_bdd.scenario import scenario_wrapper_template_registry

        return scenario_wrapper_template_registry.get(getattr(item, "obj", None))  # type: ignore[arg-type]
    except (ImportError, TypeError):
        return None


def _scenario_name(item: pytest.Item, scenario: Any) -> str:
    name = str(getattr(scenario, "name", item.name))
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.id:
        name = f"{name} [{callspec.id}]"
    return name


def _evidence(report: pytest.TestReport) -> str:
    text = report.longreprtext or ""
    lines = text.strip().splitlines()
    return "\n".join(lines[-40:])


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
