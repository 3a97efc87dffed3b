"""``taktora-conformance``: run the kit against a connector and write the reports.

    taktora-conformance [--connector-factory REF] [--broker-url URL]
                        [--report-dir DIR] [-k EXPR] [-m MARKEXPR] [-q]
    taktora-conformance compare A/report.json B/report.json ... --out DIR

Before any scenario runs, the selection, the factory and the broker are checked;
a problem is one message and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from .factory import DEFAULT_FACTORY
from .identity import run_ids
from .paths import DEFAULT_REPORT_DIR, SUITE
from .preflight import (
    check_broker,
    check_broker_choice,
    check_factory,
    malformed_selection,
    report_dir_problem,
    unknown_tags,
)
from .registry import CAPABILITIES, REQUIREMENTS, TESTS
from .reports import Matrix
from .statements import STATEMENTS

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_PARTIAL, EXIT_BROKEN = 0, 1, 2, 3, 4

EXIT_STATUS_HELP = """exit status:
  0  PASS     every requirement and every optional capability row passed: every
              scenario that applies to the connector ran and passed
  1  FAIL     at least one scenario failed
  2  usage    bad option, unknown -m tag, a selection matching no scenario, a
              factory that cannot be loaded or does not make a Connector, a bad
              --broker-url or a broker that does not answer (nothing ran)
  3  PARTIAL  nothing failed, but some scenarios did not run (not selected, or
              not possible on this broker); the reports list them and why
  4  broken   the run was interrupted or the kit itself failed (no verdict)
"""


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="taktora-conformance",
        description="Run the taktora connector conformance kit (REQ_0250..REQ_0261). "
        "'taktora-conformance compare --help' explains the side-by-side matrix.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--connector-factory",
        default=DEFAULT_FACTORY,
        help="package.module:callable taking (options, codec) and returning a Connector "
        "(default: the reference MqttConnector); its module must be importable (PYTHONPATH)",
    )
    parser.add_argument(
        "--broker-url",
        default=None,
        help="run against this broker (mqtt://host:port, anonymous) instead of an in-process "
        "amqtt; scenarios that need a configured broker (credentials, TLS) are then not run",
    )
    parser.add_argument(
        "--broker",
        choices=("amqtt", "mosquitto", "rabbitmq"),
        default="amqtt",
        help="the broker the kit starts: amqtt (in process, one per scenario, the default; "
        "the shared-subscription scenario, which amqtt cannot run, gets a mosquitto), "
        "mosquitto (a process per scenario) or rabbitmq (Debian's rabbitmq-server with its "
        "MQTT plugin: one node for the whole run, about 15 s to start, probed first)",
    )
    parser.add_argument(
        "--report-dir", default=str(DEFAULT_REPORT_DIR), help="where reports are written"
    )
    parser.add_argument("-k", dest="keyword", default=None, help="only scenarios matching EXPR")
    parser.add_argument(
        "-m", dest="markexpr", default=None, help="only scenarios with these tags (REQ_/TEST_ ids)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="less progress output")
    return parser.parse_args(argv)


class _Verdict:
    """Picks the kit's matrix up at the end of the pytest session."""

    def __init__(self) -> None:
        self.matrix: Matrix | None = None
        self.selected = 0

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        kit: Any = session.config.pluginmanager.get_plugin("taktora-conformance-session")
        if kit is not None:
            self.matrix = kit.matrix
            self.selected = kit.selected


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        from .compare import main as compare_main

        return compare_main(argv[1:])
    try:
        args = parse(argv)
    except SystemExit as stop:  # argparse: --help is 0, a bad option 2
        return int(stop.code or 0)
    problem = _preflight(args)
    if problem is not None:
        print(f"taktora-conformance: {problem}", file=sys.stderr)
        return EXIT_USAGE
    pytest_args = [
        str(SUITE),
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(SUITE.parent),
        "-c",
        "/dev/null",
        "--strict-markers",
        "-o",
        "python_files=suite.py",
        "--tb=no",  # the kit prints and reports each failure from its step
        "-rN",
        "--no-header",
        f"--connector-factory={args.connector_factory}",
        f"--report-dir={args.report_dir}",
        f"--broker={args.broker}",
        "-q",
        # Only the plugins the kit needs, whatever else is installed.
        "--disable-plugin-autoload",
        "-p",
        "pytest_bdd.plugin",
        "-p",
        "taktora_connector.conformance.plugin",
    ]
    if args.quiet:
        pytest_args.append("-q")
    if _has_timeout():
        pytest_args += ["-p", "pytest_timeout", "-o", "timeout=120"]
    if args.broker_url:
        pytest_args.append(f"--broker-url={args.broker_url}")
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.markexpr:
        pytest_args += ["-m", args.markexpr]
    verdict = _Verdict()
    code = pytest.main(pytest_args, plugins=[verdict])
    if code == pytest.ExitCode.USAGE_ERROR:
        return EXIT_USAGE
    if code in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR):
        return EXIT_BROKEN
    if verdict.matrix is None:
        chosen = " and ".join(
            f"{flag} {value!r}"
            for flag, value in (("-k", args.keyword), ("-m", args.markexpr))
            if value
        )
        print(
            f"taktora-conformance: no scenario matches {chosen or 'the selection'}; "
            "nothing ran and no report was written",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return verdict.matrix.exit_code


def _preflight(args: argparse.Namespace) -> str | None:
    malformed = malformed_selection(args.keyword, args.markexpr) or report_dir_problem(
        args.report_dir
    )
    if malformed is not None:
        return malformed
    if args.markexpr:
        known = [*REQUIREMENTS, *CAPABILITIES, *TESTS, *STATEMENTS, *run_ids().values()]
        unknown = unknown_tags(args.markexpr, known)
        if unknown:
            return (
                f"-m {args.markexpr!r} names {', '.join(unknown)}, which the kit does not "
                f"know; requirements are {min(REQUIREMENTS)}..{max(REQUIREMENTS)}, optional "
                f"capabilities {', '.join(sorted(CAPABILITIES))}, test ids "
                f"{', '.join(sorted(TESTS))}, MQTT 3.1.1 statements MQTT-1.5.3-1 .. "
                "MQTT-6.0.0-1 (listed in every report's protocol profile)"
            )
    problem = check_factory(args.connector_factory)
    if problem is None:
        problem = check_broker_choice(args.broker, args.broker_url)
    if problem is None and args.broker_url:
        problem = check_broker(args.broker_url)
    return problem


def _has_timeout() -> bool:
    return importlib.util.find_spec("pytest_timeout") is not None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
