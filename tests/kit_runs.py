"""Running ``taktora-conformance`` from the tests: one run, or a pool of runs at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .conftest import unmeasured_env

ROOT = Path(__file__).resolve().parent.parent


def run_kit(
    report_dir: Path, *args: str, path: Path = ROOT, measure: bool = False
) -> tuple[int, dict[str, Any], str]:
    """Run ``taktora-conformance`` with ``path`` importable (factories live there).

    Unmeasured by default: a kit run under coverage takes about twice the CPU, and
    on two cores ``make test`` is CPU-bound. ``measure=True`` for the runs that reach
    kit code nothing else does (the reference's whole kit, failure reports,
    selections, refusals); whole-kit runs against other connectors and brokers, and
    the faulty-connector pools, repeat what those cover.
    """
    env = (
        dict(os.environ, PYTHONPATH=str(path)) if measure else unmeasured_env(PYTHONPATH=str(path))
    )
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
    """Each requirement's result, and each optional capability's."""
    rows = report["requirements"] + report.get("capabilities", [])
    return {row["id"]: row["result"] for row in rows}


def failed_statements(report: dict[str, Any]) -> set[str]:
    """The MQTT 3.1.1 statements the report's protocol profile FAILs."""
    rows = report.get("protocol_profile", {}).get("statements", [])
    return {row["id"] for row in rows if row["result"] == "FAIL"}


def failed_tests(report: dict[str, Any]) -> set[str]:
    return {test for s in report["scenarios"] if s["outcome"] == "failed" for test in s["tests"]}


def outcomes_of(report: dict[str, Any], test: str) -> set[str]:
    return {s["outcome"] for s in report["scenarios"] if test in s["tests"]}


def run_pool(
    base: Path, jobs: dict[str, list[str]], *, at_once: int
) -> dict[str, tuple[int, dict[str, Any], str]]:
    """Each job's kit run, ``at_once`` of them at a time, without coverage."""
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        futures = {
            name: pool.submit(run_kit, base / name / "reports", *args, measure=False)
            for name, args in jobs.items()
        }
        return {name: future.result() for name, future in futures.items()}
