"""Requirement traceability from scenario results: the matrix and its report files.

Rules of this module:
- the matrix is built from the collected scenarios (their tags as markers),
  not from pytest-bdd's cucumber file, which drops some tags;
- failures are sticky: one failed scenario makes its requirement FAIL; a
  requirement with no passed and no failed scenario is NOT RUN;
- every report is written from the same ``Matrix``, so the formats agree;
- pure data in, files out: nothing here runs a test.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from .registry import FEATURE, REQUIREMENTS, TESTS

PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class ScenarioResult:
    nodeid: str
    name: str
    feature: str
    requirements: list[str]
    tests: list[str]
    outcome: str = SKIPPED  # passed, failed or skipped (not run)
    duration: float = 0.0
    detail: str = ""  # the failure or the reason it was not run


@dataclass
class RequirementRow:
    id: str
    title: str
    statement: str
    result: str
    scenarios: list[ScenarioResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for s in self.scenarios if s.outcome == outcome)


@dataclass
class Matrix:
    rows: list[RequirementRow]
    scenarios: list[ScenarioResult]
    meta: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(s.outcome != FAILED for s in self.scenarios)


def build_matrix(scenarios: Iterable[ScenarioResult], meta: dict[str, Any]) -> Matrix:
    scenarios = list(scenarios)
    rows = []
    for req in REQUIREMENTS.values():
        mine = [s for s in scenarios if req.id in s.requirements]
        if any(s.outcome == FAILED for s in mine):
            result = FAIL
        elif any(s.outcome == PASSED for s in mine):
            result = PASS
        else:
            result = NOT_RUN
        rows.append(RequirementRow(req.id, req.title, req.statement, result, mine))
    return Matrix(rows, scenarios, meta)


# -- terminal and Markdown --------------------------------------------------------------


def table_lines(matrix: Matrix) -> list[str]:
    """The requirement table for a terminal."""
    width = max(len(r.title) for r in matrix.rows)
    lines = [f"{'requirement':<11}  {'title':<{width}}  {'result':<7}  passed failed not-run"]
    for row in matrix.rows:
        lines.append(
            f"{row.id:<11}  {row.title:<{width}}  {row.result:<7}  "
            f"{row.count(PASSED):>6} {row.count(FAILED):>6} {row.count(SKIPPED):>7}"
        )
    return lines


def write_markdown(matrix: Matrix, path: Path) -> None:
    meta = matrix.meta
    out = [
        "# Conformance report",
        "",
        f"- Connector under test: `{meta['connector']}`",
        f"- Broker: {meta['broker']}",
        f"- Date: {meta['date']}; duration {meta['duration']:.1f} s",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        f"- Verdict: **{'PASS' if matrix.passed else 'FAIL'}**",
        "",
        "## Requirements",
        "",
        "| Requirement | Title | Result | Scenarios |",
        "|---|---|---|---|",
    ]
    for row in matrix.rows:
        cells = (
            "<br>".join(f"{_md(s.name)} ({', '.join(s.tests)}): {s.outcome}" for s in row.scenarios)
            or "none"
        )
        out.append(f"| {row.id} | {_md(row.title)} | {row.result} | {cells} |")
    out += [
        "",
        "## Scenarios",
        "",
        "| Scenario | Verifies | Test | Result | Time (s) |",
        "|---|---|---|---|---|",
    ]
    for s in matrix.scenarios:
        out.append(
            f"| {_md(s.name)} | {', '.join(s.requirements)} | {', '.join(s.tests)} | "
            f"{s.outcome} | {s.duration:.2f} |"
        )
    failures = [s for s in matrix.scenarios if s.outcome != PASSED and s.detail]
    if failures:
        out += ["", "## Evidence", ""]
        for s in failures:
            out += [f"### {s.name} ({s.outcome})", "", "```", s.detail.strip(), "```", ""]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- HTML -------------------------------------------------------------------------------

_STYLE: Final = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;width:100%}
th,td{border:1px solid #ccc;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.PASS,.passed{background:#e3f6e3}.FAIL,.failed{background:#fbe0e0}
.NOT-RUN,.skipped{background:#f2f2f2;color:#555}pre{white-space:pre-wrap;font-size:.85em}
"""


def write_html(matrix: Matrix, path: Path) -> None:
    e = html.escape
    meta = matrix.meta
    verdict = "PASS" if matrix.passed else "FAIL"
    rows = []
    for row in matrix.rows:
        scenarios = (
            "<br>".join(
                f'<span class="{s.outcome}">{e(s.name)} ({e(", ".join(s.tests))})</span>'
                for s in row.scenarios
            )
            or "none"
        )
        css = row.result.replace(" ", "-")
        rows.append(
            f"<tr><td>{e(row.id)}</td><td>{e(row.title)}<br><small>{e(row.statement)}</small></td>"
            f'<td class="{css}">{e(row.result)}</td><td>{scenarios}</td></tr>'
        )
    details = []
    for s in matrix.scenarios:
        evidence = f"<pre>{e(s.detail.strip())}</pre>" if s.detail else ""
        details.append(
            f"<tr><td>{e(s.name)}<br><small>{e(s.feature)}</small></td>"
            f"<td>{e(', '.join(s.requirements))}</td><td>{e(', '.join(s.tests))}</td>"
            f'<td class="{s.outcome}">{e(s.outcome)}</td><td>{s.duration:.2f}</td>'
            f"<td>{evidence}</td></tr>"
        )
    versions = ", ".join(f"{e(k)} {e(str(v))}" for k, v in meta["versions"].items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Conformance report</title>
<style>{_STYLE}</style></head><body>
<h1>Conformance report: <span class="{verdict}">{verdict}</span></h1>
<p>Connector under test <code>{e(meta["connector"])}</code>; broker {e(meta["broker"])};
{e(meta["date"])}; {meta["duration"]:.1f} s.<br>{versions}</p>
<h2>Requirements ({e(FEATURE)})</h2>
<table><tr><th>Requirement</th><th>Title and statement</th><th>Result</th><th>Scenarios</th></tr>
{"".join(rows)}</table>
<h2>Scenarios</h2>
<table><tr><th>Scenario</th><th>Verifies</th><th>Test</th><th>Result</th><th>Time (s)</th><th>Evidence</th></tr>
{"".join(details)}</table>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


# -- JSON, JUnit, sphinx-needs ------------------------------------------------------------


def write_json(matrix: Matrix, path: Path) -> None:
    data = {
        "meta": matrix.meta,
        "verdict": "PASS" if matrix.passed else "FAIL",
        "requirements": [
            {
                "id": row.id,
                "title": row.title,
                "statement": row.statement,
                "result": row.result,
                "scenarios": [s.nodeid for s in row.scenarios],
            }
            for row in matrix.rows
        ],
        "scenarios": [asdict(s) for s in matrix.scenarios],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_junit(matrix: Matrix, path: Path) -> None:
    suite = ET.Element(
        "testsuite",
        name="taktora-conformance",
        tests=str(len(matrix.scenarios)),
        failures=str(sum(s.outcome == FAILED for s in matrix.scenarios)),
        skipped=str(sum(s.outcome == SKIPPED for s in matrix.scenarios)),
        errors="0",
        time=f"{matrix.meta['duration']:.3f}",
        timestamp=matrix.meta["date"],
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="connector", value=matrix.meta["connector"])
    ET.SubElement(properties, "property", name="broker", value=matrix.meta["broker"])
    for s in matrix.scenarios:
        case = ET.SubElement(
            suite, "testcase", classname=s.feature, name=s.name, time=f"{s.duration:.3f}"
        )
        props = ET.SubElement(case, "properties")
        for req in s.requirements:
            ET.SubElement(props, "property", name="verifies", value=req)
        for test in s.tests:
            ET.SubElement(props, "property", name="test_id", value=test)
        if s.outcome == FAILED:
            ET.SubElement(case, "failure", message=_first_line(s.detail)).text = s.detail
        elif s.outcome == SKIPPED:
            ET.SubElement(case, "skipped", message=_first_line(s.detail) or "not run")
    tree = ET.ElementTree(suite)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def needs_data(matrix: Matrix) -> dict[str, Any]:
    """A sphinx-needs ``needs.json``: requirements and test cases, linked, with status."""
    version = str(matrix.meta["versions"].get("taktora-connector", "0"))
    needs: dict[str, dict[str, Any]] = {}
    for row in matrix.rows:
        needs[row.id] = {
            "id": row.id,
            "type": "req",
            "title": row.title,
            "content": row.statement,
            "status": row.result.lower(),
            "tags": [FEATURE],
            "links": [],
        }
    by_test: dict[str, list[ScenarioResult]] = {}
    for s in matrix.scenarios:
        for test in s.tests:
            by_test.setdefault(test, []).append(s)
    for test_id, case in TESTS.items():
        results = by_test.get(test_id, [])
        if any(s.outcome == FAILED for s in results):
            status = "failed"
        elif any(s.outcome == PASSED for s in results):
            status = "passed"
        else:
            status = "not run"
        text = "; ".join(f"{s.name}: {s.outcome}" for s in results) or "no scenario ran"
        needs[test_id] = {
            "id": test_id,
            "type": "test",
            "title": case.title,
            "content": text,
            "status": status,
            "tags": ["conformance"],
            "links": [case.verifies],
        }
    return {
        "created": matrix.meta["date"],
        "project": "taktora-connector",
        "current_version": version,
        "versions": {
            version: {
                "created": matrix.meta["date"],
                "creator": {"program": "taktora-conformance", "version": version},
                "needs": needs,
                "needs_amount": len(needs),
            }
        },
    }


def write_needs(matrix: Matrix, path: Path) -> None:
    path.write_text(json.dumps(needs_data(matrix), indent=2) + "\n", encoding="utf-8")


REPORT_FILES: Final = {
    "matrix.md": write_markdown,
    "report.html": write_html,
    "report.json": write_json,
    "junit.xml": write_junit,
    "needs.json": write_needs,
}


def write_all(matrix: Matrix, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, writer in REPORT_FILES.items():
        target = directory / name
        writer(matrix, target)
        written.append(target)
    return written
