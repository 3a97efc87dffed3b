"""``taktora-conformance``: run the kit against a connector and write the reports.

    taktora-conformance [--connector-factory REF] [--broker-url URL]
                        [--report-dir DIR] [-k EXPR] [-m MARKEXPR]

Exit status 0 only when every selected scenario passed (skipped scenarios do
not fail the run; they show as NOT RUN in the reports).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from .factory import DEFAULT_FACTORY, load_factory
from .paths import DEFAULT_REPORT_DIR, SUITE


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="taktora-conformance",
        description="Run the taktora connector conformance kit (REQ_0250..REQ_0261).",
    )
    parser.add_argument(
        "--connector-factory",
        default=DEFAULT_FACTORY,
        help="package.module:callable taking (options, codec) and returning a Connector "
        "(default: the reference MqttConnector)",
    )
    parser.add_argument(
        "--broker-url",
        default=None,
        help="run against this broker (mqtt://host:port) instead of an in-process amqtt; "
        "scenarios that need a configured broker (credentials, TLS) are then not run",
    )
    parser.add_argument(
        "--report-dir", default=str(DEFAULT_REPORT_DIR), help="where reports are written"
    )
    parser.add_argument("-k", dest="keyword", default=None, help="only scenarios matching EXPR")
    parser.add_argument("-m", dest="markexpr", default=None, help="only scenarios with these tags")
    parser.add_argument("-q", "--quiet", action="store_true", help="less progress output")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        load_factory(args.connector_factory)  # fail fast, with a clear message
    except ValueError as err:
        print(f"taktora-conformance: {err}", file=sys.stderr)
        return 2
    Path(args.report_dir).mkdir(parents=True, exist_ok=True)
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
        f"--connector-factory={args.connector_factory}",
        f"--report-dir={args.report_dir}",
        f"--cucumberjson={args.report_dir}/cucumber.json",
        "-q" if args.quiet else "-v",
        # Only the plugins the kit needs, whatever else is installed.
        "--disable-plugin-autoload",
        "-p",
        "pytest_bdd.plugin",
        "-p",
        "taktora_connector.conformance.plugin",
    ]
    if _has_timeout():
        pytest_args += ["-p", "pytest_timeout"]
    if _has_timeout():
        pytest_args += ["-o", "timeout=120"]
    if args.broker_url:
        pytest_args.append(f"--broker-url={args.broker_url}")
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.markexpr:
        pytest_args += ["-m", args.markexpr]
    code = pytest.main(pytest_args)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("taktora-conformance: no scenario was selected", file=sys.stderr)
        return 5
    return 0 if code == pytest.ExitCode.OK else 1


def _has_timeout() -> bool:
    return importlib.util.find_spec("pytest_timeout") is not None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
