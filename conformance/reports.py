"""Requirement traceability from scenario results: the matrix and its report files.

Rules of this module:
- the matrix is built from the kit's scenarios (their tags as markers), every
  one of them: selected or not, run or skipped;
- failures are sticky: one failed scenario makes its requirement FAIL; a
  requirement whose scenarios all passed is PASS; one with passed and not-run
  scenarios is PARTIAL; one with no scenario run is NOT RUN;
- the verdict is PASS only when every requirement is PASS and every optional
  capability row is PASS, FAIL when any scenario failed, and PARTIAL otherwise
  (the not-run scenarios are listed, each with its reason);
- optional capabilities (``registry.CAPABILITIES``) are rows of their own, never
  evidence for a requirement: claimed, their scenarios check that it works; not
  claimed, that the connector refuses it. The scenario of the branch that does not
  apply is "not applicable": listed, not counted, no PARTIAL;
- each requirement carries the seed's title and text verbatim, and our reading
  beside it ("in this implementation");
- the protocol profile (``statement_report``) is a section of its own: every MQTT
  3.1.1 client statement with the scenarios that checked it; a failed one fails
  the verdict;
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

from .registry import CAPABILITIES, FEATURE, REQUIREMENTS, TESTS
from .statement_report import FAIL as STATEMENT_FAIL
from .statement_report import StatementRow, need_id, statement_rows
from .statement_report import html_section as statement_html_section
from .statement_report import json_section as statement_json
from .statement_report import markdown_lines as statement_markdown_lines
from .statement_report import needs as statement_needs
from .statement_report import terminal_lines as statement_terminal_lines

PASS, FAIL, PARTIAL, NOT_RUN = "PASS", "FAIL", "PARTIAL", "NOT RUN"
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
#: A scenario of a capability's branch that does not apply to this connector.
INAPPLICABLE = "not applicable"
#: How a step says so: ``pytest.skip(NOT_APPLICABLE + why)``.
NOT_APPLICABLE = "not applicable: "
#: Exit status of ``taktora-conformance`` for each verdict.
EXIT_CODES: Final = {PASS: 0, FAIL: 1, PARTIAL: 3}


@dataclass
class StepRecord:
    """One step of a scenario as it ran (or did not)."""

    keyword: str
    text: str
    line: int
    status: str = "not run"  # passed, failed, not run
    duration: float = 0.0
    definition: str = ""  # where the step's code is, file:line
    error: str = ""


@dataclass
class ScenarioResult:
    nodeid: str
    name: str  # the title, with the example row's values for an outline row
    feature: str
    requirements: list[str]
    tests: list[str]
    id: str = ""
    capabilities: list[str] = field(
        default_factory=list
    )  # unique per scenario and outline row (TEST_2511_3); the HTML anchor
    title: str = ""
    feature_file: str = ""
    line: int = 0
    example: dict[str, str] = field(default_factory=dict)
    outcome: str = SKIPPED  # passed, failed, skipped (not run) or not applicable
    duration: float = 0.0
    detail: str = ""  # the failure or the reason it was not run
    failed_step: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    wire: list[dict[str, Any]] = field(default_factory=list)
    wire_omitted: int = 0
    #: The MQTT 3.1.1 statements the scenario is tagged with, and what it found on each
    #: (statement -> {"outcome": passed | failed | unseen | not reached | ..., "detail"}).
    statements: list[str] = field(default_factory=list)
    findings: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        return self.id or self.nodeid

    @property
    def location(self) -> str:
        return f"{self.feature_file}:{self.line}" if self.feature_file else ""


@dataclass
class RequirementRow:
    id: str
    title: str
    statement: str
    result: str
    scenarios: list[ScenarioResult] = field(default_factory=list)
    seed_text: str = ""  # the seed's words (a requirement); "" for a capability
    #: A capability's row: whether the connector claims it (None: nothing ran to tell).
    claimed: bool | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for s in self.scenarios if s.outcome == outcome)


@dataclass
class Matrix:
    rows: list[RequirementRow]
    scenarios: list[ScenarioResult]
    meta: dict[str, Any]
    capabilities: list[RequirementRow] = field(default_factory=list)
    #: The protocol profile: every MQTT 3.1.1 statement and what checked it.
    statements: list[StatementRow] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if any(s.outcome == FAILED for s in self.scenarios):
            return FAIL
        if any(row.result == STATEMENT_FAIL for row in self.statements):
            return FAIL
        # A capability no scenario of this kit names (none here, but a matrix built from
        # other scenarios) does not count; one whose scenarios did not run does.
        judged = self.rows + [row for row in self.capabilities if row.scenarios]
        if self.scenarios and all(row.result == PASS for row in judged):
            return PASS
        return PARTIAL

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def not_run(self) -> list[ScenarioResult]:
        """Scenarios that did not run (a not-applicable one is not among them)."""
        return [s for s in self.scenarios if s.outcome == SKIPPED]

    def why_not_pass(self) -> list[str]:
        """For a PARTIAL verdict: what did not run, and why (one line each)."""
        lines = [f"{row.id} has no scenario in this run" for row in self.rows if not row.scenarios]
        by_reason: dict[str, list[str]] = {}
        for s in self.not_run():
            by_reason.setdefault(s.detail or "not run", []).append(s.anchor)
        for reason, ids in by_reason.items():
            count = f"{len(ids)} scenario{'s' * (len(ids) != 1)}"
            lines.append(f"{reason}: {count} ({', '.join(ids)})")
        return lines


def build_matrix(scenarios: Iterable[ScenarioResult], meta: dict[str, Any]) -> Matrix:
    scenarios = list(scenarios)
    rows = []
    for req in REQUIREMENTS.values():
        mine = [s for s in scenarios if req.id in s.requirements]
        ran = [s for s in mine if s.outcome != SKIPPED]
        if any(s.outcome == FAILED for s in mine):
            result = FAIL
        elif mine and len(ran) == len(mine):
            result = PASS
        elif ran:
            result = PARTIAL
        else:
            result = NOT_RUN
        rows.append(RequirementRow(req.id, req.title, req.statement, result, mine, req.seed_text))
    capabilities = []
    claims = meta.get("capabilities_claimed")
    for cap in CAPABILITIES.values():
        mine = [s for s in scenarios if cap.id in s.capabilities]
        if claims is not None:  # the other branch does not apply, selected or not
            branch = "claimed" if cap.name in claims else "unclaimed"
            for s in mine:
                whens = {TESTS[t].when for t in s.tests if t in TESTS}
                if whens and branch not in whens and s.outcome == SKIPPED:
                    s.outcome = INAPPLICABLE
                    s.detail = (
                        f"the connector {'claims' if branch == 'claimed' else 'does not claim'} "
                        f"{cap.name!r}: the other branch is checked"
                    )
        applicable = [s for s in mine if s.outcome != INAPPLICABLE]
        ran = [s for s in applicable if s.outcome != SKIPPED]
        if any(s.outcome == FAILED for s in applicable):
            result = FAIL
        elif applicable and len(ran) == len(applicable):
            result = PASS
        elif ran:
            result = PARTIAL
        else:
            result = NOT_RUN
        if claims is not None:
            claimed: bool | None = cap.name in claims
        else:  # a matrix of results only: what ran tells
            whens = {TESTS[t].when for s in applicable for t in s.tests if t in TESTS}
            claimed = True if "claimed" in whens else False if "unclaimed" in whens else None
        capabilities.append(
            RequirementRow(cap.id, cap.title, cap.statement, result, mine, claimed=claimed)
        )
    return Matrix(rows, scenarios, meta, capabilities, statement_rows(scenarios))


def claim_text(row: RequirementRow) -> str:
    """A capability row's claim, for people: what was checked."""
    if row.claimed is None:
        return "not checked in this run"
    claim = "claimed" if row.claimed else "not claimed"
    if row.result == NOT_RUN:
        return f"{claim}: not checked in this run"
    return (
        f"{claim}: checked that it works" if row.claimed else f"{claim}: checked that it is refused"
    )


def _css(result: str) -> str:
    return result.replace(" ", "-")


# -- terminal and Markdown --------------------------------------------------------------


def table_lines(matrix: Matrix) -> list[str]:
    """The requirement table and the verdict for a terminal."""
    width = max(len(r.title) for r in matrix.rows)
    lines = [f"{'requirement':<11}  {'title':<{width}}  {'result':<7}  passed failed not-run"]
    for row in matrix.rows:
        lines.append(
            f"{row.id:<11}  {row.title:<{width}}  {row.result:<7}  "
            f"{row.count(PASSED):>6} {row.count(FAILED):>6} {row.count(SKIPPED):>7}"
        )
    if matrix.capabilities:
        lines += ["", "optional capabilities (never evidence for a requirement):"]
        for row in matrix.capabilities:
            lines.append(f"{row.id:<26} {row.result:<7}  {claim_text(row)}")
    if any(row.checks for row in matrix.statements):
        lines += statement_terminal_lines(matrix.statements)
    lines += ["", f"Verdict: {matrix.verdict} (exit status {matrix.exit_code})"]
    if matrix.verdict == PARTIAL:
        lines.append("Not run:")
        lines += [f"  {line}" for line in matrix.why_not_pass()]
    return lines


def _meta_lines(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs describing the run, shared by every human-readable report."""
    ident = meta.get("identity", {})
    selection = meta.get("selection", {})
    chosen = ", ".join(f"{k} {v!r}" for k, v in selection.items() if v) or "every scenario"
    limits = (
        "; ".join(meta.get("broker_limits", []))
        or "none (every selected scenario can run on this broker set-up)"
    )
    probes = "; ".join(
        f"{p['name']}: {'yes' if p['ok'] else 'no'} ({p['evidence']})"
        for p in meta.get("broker_probes", [])
    )
    return [
        ("Connector under test", f"{meta['connector']}"),
        ("Connector distribution", ident.get("distribution", "unknown")),
        ("Broker", str(meta["broker"])),
        ("Broker limits", limits),
        ("What the broker can do", probes or "not probed"),
        ("Selection", chosen),
        (
            "Kit",
            f"taktora-connector {ident.get('kit_version', '?')}, "
            f"features sha256 {ident.get('features_sha256', '?')[:16]}",
        ),
        ("Date", f"{meta['date']}; duration {meta['duration']:.1f} s"),
        ("Versions", ", ".join(f"{k} {v}" for k, v in meta["versions"].items())),
    ]


def write_markdown(matrix: Matrix, path: Path) -> None:
    out = ["# Conformance report", ""]
    out += [f"- {label}: {_md(text)}" for label, text in _meta_lines(matrix.meta)]
    out.append(f"- Verdict: **{matrix.verdict}**")
    if matrix.verdict == PARTIAL:
        out += [f"  - not run: {_md(line)}" for line in matrix.why_not_pass()]
    out += [
        "",
        "## Requirements",
        "",
        "The seed's title and text, verbatim, then what it means in this implementation.",
        "",
        "| Requirement | The seed's words | In this implementation | Result | Scenarios |",
        "|---|---|---|---|---|",
    ]
    for row in matrix.rows:
        cells = "<br>".join(f"{s.anchor} {_md(s.name)}: {s.outcome}" for s in row.scenarios)
        out.append(
            f"| {row.id} | **{_md(row.title)}**<br>{_md(row.seed_text)} | {_md(row.statement)} "
            f"| {row.result} | {cells or 'none'} |"
        )
    if matrix.capabilities:
        out += [
            "",
            "## Optional capabilities",
            "",
            "Beyond the requirements, and never evidence for one: a claimed capability must",
            "work; one not claimed must be refused (Failure(ConfigurationError)).",
            "",
            "| Capability | Title | Claim | Result | Scenarios |",
            "|---|---|---|---|---|",
        ]
        for row in matrix.capabilities:
            cells = "<br>".join(f"{s.anchor} {_md(s.name)}: {s.outcome}" for s in row.scenarios)
            out.append(
                f"| {row.id} | {_md(row.title)} | {claim_text(row)} | {row.result} "
                f"| {cells or 'none'} |"
            )
    out += statement_markdown_lines(matrix.statements)
    out += [
        "",
        "## Scenarios",
        "",
        "| Test | Scenario | Where | Verifies | Result | Time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for s in matrix.scenarios:
        out.append(
            f"| {s.anchor} | {_md(s.name)} | {s.location} | {', '.join(_verifies(s))} | "
            f"{s.outcome} | {s.duration:.2f} |"
        )
    failures = [s for s in matrix.scenarios if s.outcome == FAILED]
    if failures:
        out += ["", "## Evidence", ""]
        for s in failures:
            out += [f"### {s.anchor} {s.name} ({s.outcome})", ""]
            if matrix.meta.get("rerun"):
                out += [f"Run it again: `{matrix.meta['rerun'].replace('{id}', s.anchor)}`", ""]
            out += ["```", s.detail.strip(), "```"]
            if s.wire:
                out += ["", "Wire log:", "", "```", *wire_lines(s), "```"]
            out.append("")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _verifies(s: ScenarioResult) -> list[str]:
    """What a scenario is evidence for: its requirements, or its capability."""
    return s.requirements + s.capabilities


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def wire_lines(s: ScenarioResult) -> list[str]:
    lines = []
    for p in s.wire:
        ident = f"id={p['id']}" if p["id"] is not None else ""
        what = (
            f"qos={p['qos']} retain={int(p['retain'])} {p['size']} B {p['topic']}"
            if p["type"] == "PUBLISH"
            else ""
        )
        lines.append(
            f"{p['t']:>8.3f}  {p['conn']:<10} {p['dir']:<3} {p['type']:<11} {ident:<8} "
            f"{what}{p['info']}".rstrip()
        )
    if s.wire_omitted:
        lines.append(f"... {s.wire_omitted} more packets not kept")
    return lines


# -- HTML -------------------------------------------------------------------------------

_STYLE: Final = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:90em}
table{border-collapse:collapse;margin:.6em 0;width:100%}
th,td{border:1px solid #ccc;padding:.3em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.PASS,.passed{background:#e3f6e3}.FAIL,.failed{background:#fbe0e0}
.PARTIAL{background:#fff3cd}.NOT-RUN,.skipped,.not-run{background:#f2f2f2;color:#555}
.not-applicable{background:#eef2f8;color:#555}
blockquote.seed{margin:.3em 0 .3em .2em;padding:.1em .6em;border-left:3px solid #99a;color:#333}
pre{white-space:pre-wrap;font-size:.85em;margin:.3em 0}
details{border:1px solid #ccc;border-radius:4px;margin:.35em 0;padding:.3em .6em}
details[open]{background:#fcfcfc}summary{cursor:pointer}
summary .tag{display:inline-block;min-width:5.5em;padding:0 .3em;border-radius:3px;text-align:center}
table.wire td,table.steps td{font-family:ui-monospace,monospace;font-size:.82em}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.15em 1em}dl.meta dt{font-weight:600}
dl.meta dd{margin:0}.small{font-size:.85em;color:#555}
"""


def write_html(matrix: Matrix, path: Path) -> None:
    e = html.escape
    verdict = matrix.verdict
    rows = []
    for row in matrix.rows:
        scenarios = (
            "<br>".join(
                f'<a class="{s.outcome}" href="#{e(s.anchor)}">{e(s.anchor)}</a> {e(s.name)}'
                for s in row.scenarios
            )
            or "none"
        )
        rows.append(
            f'<tr id="{e(row.id)}"><td>{e(row.id)}</td><td><b>{e(row.title)}</b>'
            f'<blockquote class="seed">{e(row.seed_text)}</blockquote>'
            f'<span class="small"><b>In this implementation:</b> {e(row.statement)}</span></td>'
            f'<td class="{_css(row.result)}">{e(row.result)}</td><td>{scenarios}</td></tr>'
        )
    capability_rows = []
    for row in matrix.capabilities:
        scenarios = (
            "<br>".join(
                f'<a class="{_css(s.outcome)}" href="#{e(s.anchor)}">{e(s.anchor)}</a> '
                f"{e(s.name)} ({e(_LABEL[s.outcome])})"
                for s in row.scenarios
            )
            or "none"
        )
        capability_rows.append(
            f'<tr id="{e(row.id)}"><td>{e(row.id)}</td><td><b>{e(row.title)}</b><br>'
            f'<span class="small">{e(row.statement)}</span></td><td>{e(claim_text(row))}</td>'
            f'<td class="{_css(row.result)}">{e(row.result)}</td><td>{scenarios}</td></tr>'
        )
    capabilities = ""
    if capability_rows:
        capabilities = (
            "<h2>Optional capabilities</h2>"
            '<p class="small">Beyond the requirements, and never evidence for one: a '
            "capability the connector claims (its <code>capabilities</code>) must work; one it "
            "does not claim must be refused with <code>Failure(ConfigurationError)</code>. The "
            "scenario of the other branch is not applicable: listed, not counted.</p>"
            "<table><tr><th>Capability</th><th>Title and statement</th><th>Claim</th>"
            f"<th>Result</th><th>Scenarios</th></tr>{''.join(capability_rows)}</table>"
        )
    meta = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in _meta_lines(matrix.meta))
    partial = ""
    if verdict == PARTIAL:
        partial = (
            "<p><b>Not run</b> (why the verdict is PARTIAL):</p><ul>"
            + "".join(f"<li>{e(line)}</li>" for line in matrix.why_not_pass())
            + "</ul>"
        )
    scenarios = "\n".join(_scenario_html(s, matrix.meta) for s in matrix.scenarios)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Conformance report: {verdict}</title>
<style>{_STYLE}</style></head><body>
<h1>Conformance report: <span class="{verdict}">{verdict}</span></h1>
<dl class="meta">{meta}</dl>
{partial}
<h2>Requirements ({e(FEATURE)})</h2>
<p class="small">Each requirement as the seed words it (title and text, verbatim), then what it
means in this implementation.</p>
<table><tr><th>Requirement</th><th>The seed's words, and our reading</th><th>Result</th>
<th>Scenarios</th></tr>
{"".join(rows)}</table>
{capabilities}
{statement_html_section(matrix.statements)}
<h2>Scenarios</h2>
<p class="small">Each scenario opens to its steps (status, time, where the step is written and
where its code is), the evidence of a failure, and the MQTT packets its connectors exchanged
through the kit's proxy (decoded; payloads by size only, passwords never).</p>
{scenarios}
</body></html>
"""
    path.write_text(page, encoding="utf-8")


_LABEL: Final = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "NOT RUN", INAPPLICABLE: "N/A"}


def _scenario_html(s: ScenarioResult, meta: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        f'<details id="{e(s.anchor)}"{" open" if s.outcome == FAILED else ""}>',
        f'<summary><span class="tag {_css(s.outcome)}">{_LABEL[s.outcome]}</span> '
        f"<b>{e(s.anchor)}</b> {e(s.name)} "
        f'<span class="small">({e(", ".join(_verifies(s)))}; {e(s.location)}; '
        f"{s.duration:.2f} s)</span></summary>",
        f'<p class="small">Feature: {e(s.feature)} ({e(s.location)}). '
        f"Verifies {e(', '.join(_verifies(s)))}; test {e(', '.join(s.tests))}.</p>",
    ]
    rerun = str(meta.get("rerun", ""))
    if rerun:
        parts.append(
            f'<p class="small">Run it again: <code>{e(rerun.replace("{id}", s.anchor))}</code></p>'
        )
    if s.failed_step:
        parts.append(f"<p><b>Failed step:</b> {e(s.failed_step)}</p>")
    if s.detail:
        label = {FAILED: "Evidence", INAPPLICABLE: "Not applicable because"}.get(
            s.outcome, "Not run because"
        )
        parts.append(f"<p><b>{label}:</b></p><pre>{e(s.detail.strip())}</pre>")
    if s.steps:
        steps = "".join(
            f'<tr class="{_css(st.status)}"><td>{st.line}</td><td>{e(st.keyword)} {e(st.text)}</td>'
            f"<td>{e(st.status)}</td><td>{st.duration * 1000:.1f}</td>"
            f'<td class="small">{e(st.definition)}</td></tr>'
            for st in s.steps
        )
        parts.append(
            '<table class="steps"><tr><th>Line</th><th>Step</th><th>Status</th>'
            f"<th>ms</th><th>Step code</th></tr>{steps}</table>"
        )
    if s.wire:
        packets = "".join(
            f"<tr><td>{p['t']:.3f}</td><td>{e(p['conn'])}</td><td>{e(p['dir'])}</td>"
            f"<td>{e(p['type'])}</td><td>{'' if p['id'] is None else p['id']}</td>"
            + (
                f"<td>{p['qos']}</td><td>{int(p['retain'])}</td><td>{e(p['topic'])}</td>"
                f"<td>{p['size']}</td>"
                if p["type"] == "PUBLISH"
                else "<td></td><td></td><td></td><td></td>"
            )
            + f"<td>{e(p['info'].strip())}</td></tr>"
            for p in s.wire
        )
        more = f"<p class='small'>... {s.wire_omitted} more packets not kept.</p>"
        parts.append(
            f"<details{' open' if s.outcome == FAILED else ''}>"
            f"<summary>Wire log ({len(s.wire) + s.wire_omitted} packets)</summary>"
            '<table class="wire"><tr><th>t (s)</th><th>connection</th><th>dir</th><th>packet</th>'
            "<th>id</th><th>QoS</th><th>retain</th><th>topic</th><th>payload B</th>"
            f"<th>other</th></tr>{packets}</table>{more if s.wire_omitted else ''}</details>"
        )
    elif s.outcome not in (SKIPPED, INAPPLICABLE):
        parts.append("<p class='small'>No packet went through the kit's proxy.</p>")
    parts.append("</details>")
    return "".join(parts)


# -- JSON, JUnit, cucumber, sphinx-needs ----------------------------------------------------


def write_json(matrix: Matrix, path: Path) -> None:
    path.write_text(json.dumps(json_data(matrix), indent=1) + "\n", encoding="utf-8")


def json_data(matrix: Matrix) -> dict[str, Any]:
    return {
        "meta": matrix.meta,
        "verdict": matrix.verdict,
        "exit_code": matrix.exit_code,
        "not_run": matrix.why_not_pass() if matrix.verdict == PARTIAL else [],
        "requirements": [
            {
                "id": row.id,
                "title": row.title,
                "seed_text": row.seed_text,
                "statement": row.statement,
                "result": row.result,
                "scenarios": [s.anchor for s in row.scenarios],
            }
            for row in matrix.rows
        ],
        "capabilities": [
            {
                "id": row.id,
                "title": row.title,
                "statement": row.statement,
                "claimed": row.claimed,
                "result": row.result,
                "scenarios": [s.anchor for s in row.scenarios],
            }
            for row in matrix.capabilities
        ],
        "protocol_profile": statement_json(matrix.statements),
        "scenarios": [asdict(s) for s in matrix.scenarios],
    }


def write_junit(matrix: Matrix, path: Path) -> None:
    suite = ET.Element(
        "testsuite",
        name="taktora-conformance",
        tests=str(len(matrix.scenarios)),
        failures=str(sum(s.outcome == FAILED for s in matrix.scenarios)),
        skipped=str(sum(s.outcome in (SKIPPED, INAPPLICABLE) for s in matrix.scenarios)),
        errors="0",
        time=f"{matrix.meta['duration']:.3f}",
        timestamp=matrix.meta["date"],
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="connector", value=matrix.meta["connector"])
    ET.SubElement(properties, "property", name="broker", value=str(matrix.meta["broker"]))
    ET.SubElement(properties, "property", name="verdict", value=matrix.verdict)
    for flag, value in matrix.meta.get("selection", {}).items():
        if value:
            ET.SubElement(properties, "property", name=f"selection {flag}", value=str(value))
    for limit in matrix.meta.get("broker_limits", []):
        ET.SubElement(properties, "property", name="broker limit", value=limit)
    for key, value in matrix.meta.get("identity", {}).items():
        ET.SubElement(properties, "property", name=key, value=str(value))
    for s in matrix.scenarios:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=s.feature,
            name=f"{s.anchor} {s.name}",
            time=f"{s.duration:.3f}",
            file=s.feature_file,
            line=str(s.line),
        )
        props = ET.SubElement(case, "properties")
        for req in _verifies(s):
            ET.SubElement(props, "property", name="verifies", value=req)
        for test in s.tests:
            ET.SubElement(props, "property", name="test_id", value=test)
        ET.SubElement(props, "property", name="run_id", value=s.anchor)
        if s.outcome == FAILED:
            message = s.failed_step or _first_line(s.detail)
            ET.SubElement(case, "failure", message=message).text = s.detail
        elif s.outcome in (SKIPPED, INAPPLICABLE):
            ET.SubElement(case, "skipped", message=_first_line(s.detail) or "not run")
    tree = ET.ElementTree(suite)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def write_cucumber(matrix: Matrix, path: Path) -> None:
    """Cucumber JSON with every step's location and the step code that matched it."""
    features: dict[str, dict[str, Any]] = {}
    for s in matrix.scenarios:
        if s.outcome in (SKIPPED, INAPPLICABLE) and not s.steps:
            continue
        uri = f"features/{s.feature_file}"
        feature = features.setdefault(
            uri,
            {
                "keyword": "Feature",
                "uri": uri,
                "name": s.feature,
                "id": uri,
                "line": 1,
                "description": "",
                "language": "en",
                "tags": [],
                "elements": [],
            },
        )
        steps = []
        for st in s.steps:
            status = {"not run": "skipped"}.get(st.status, st.status)
            result: dict[str, Any] = {"status": status, "duration": int(st.duration * 1e9)}
            if st.error:
                result["error_message"] = st.error
            steps.append(
                {
                    "keyword": st.keyword,
                    "name": st.text,
                    "line": st.line,
                    "match": {"location": st.definition or f"{uri}:{st.line}"},
                    "result": result,
                }
            )
        feature["elements"].append(
            {
                "keyword": "Scenario Outline" if s.example else "Scenario",
                "id": s.anchor,
                "name": s.name,
                "line": s.line,
                "description": "",
                "tags": [{"name": t, "line": s.line - 1} for t in _verifies(s) + s.tests],
                "type": "scenario",
                "steps": steps,
            }
        )
    path.write_text(json.dumps(list(features.values()), indent=1) + "\n", encoding="utf-8")


def needs_data(matrix: Matrix) -> dict[str, Any]:
    """A sphinx-needs ``needs.json``: requirements and one test need per scenario run."""
    version = str(matrix.meta["versions"].get("taktora-connector", "0"))
    needs: dict[str, dict[str, Any]] = {}
    for row in matrix.rows:
        needs[row.id] = {
            "id": row.id,
            "type": "req",
            "title": row.title,
            "content": f"{row.seed_text}\n\nIn this implementation: {row.statement}",
            "status": row.result.lower(),
            "tags": [FEATURE],
            "links": [],
        }
    for row in matrix.capabilities:
        needs[row.id] = {
            "id": row.id,
            "type": "req",
            "title": row.title,
            "content": f"{row.statement} ({claim_text(row)})",
            "status": row.result.lower(),
            "tags": [FEATURE, "optional capability"],
            "links": [],
        }
    needs.update(statement_needs(matrix.statements, FEATURE))
    for s in matrix.scenarios:
        base = s.tests[0] if s.tests else s.anchor
        case = TESTS.get(base)
        status = {PASSED: "passed", FAILED: "failed", INAPPLICABLE: "not applicable"}.get(
            s.outcome, "not run"
        )
        content = f"{s.name} ({s.location}): {s.outcome}"
        if s.detail and s.outcome != PASSED:
            content += f" - {_first_line(s.detail)}"
        needs[s.anchor] = {
            "id": s.anchor,
            "type": "test",
            "title": f"{case.title if case else s.title}: {s.name}"
            if s.anchor != base
            else (case.title if case else s.name),
            "content": content,
            "status": status,
            "tags": ["conformance"],
            "links": _verifies(s) + [need_id(t) for t in s.statements],
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
    "cucumber.json": write_cucumber,
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
