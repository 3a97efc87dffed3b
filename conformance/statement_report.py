"""The protocol profile's part of every report: each MQTT 3.1.1 statement, the
scenarios that checked it and what they found.

Rules of this module:
- a statement's result comes from its scenarios' findings (``ScenarioResult.findings``):
  ``FAIL`` if one failed it, ``PASS`` if one passed it and none failed, ``NOT SEEN``
  when its scenarios ran and no packet touched it (a connector that never sends a
  will cannot break a will rule), ``NOT RUN`` when none of them ran, and ``NOT
  CHECKED`` with the reason for a statement the wire cannot show;
- "checked: N of M" counts the client statements some scenario of the kit checks,
  out of every client statement of MQTT 3.1.1 (``statements.STATEMENTS``); the
  broker statements whose breach a client must survive are listed apart;
- a failed client statement fails the verdict like a failed requirement.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .statements import STATEMENTS, statement_key

if TYPE_CHECKING:
    from .reports import ScenarioResult

PASS: Final = "PASS"
FAIL: Final = "FAIL"
NOT_SEEN: Final = "NOT SEEN"
NOT_RUN: Final = "NOT RUN"
NOT_CHECKED: Final = "NOT CHECKED"

#: A scenario's finding on one statement, beyond the wire rules' own outcomes.
NOT_REACHED: Final = "not reached"


@dataclass
class StatementRow:
    id: str
    rule: str
    side: str
    result: str
    unchecked: str = ""
    #: (scenario anchor, its finding: passed, failed, unseen, not reached, ...; detail)
    checks: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def detail(self) -> str:
        return "; ".join(d for _, outcome, d in self.checks if outcome == "failed" and d)


def statement_rows(scenarios: list[ScenarioResult]) -> list[StatementRow]:
    rows = []
    for statement in sorted(STATEMENTS.values(), key=lambda s: statement_key(s.id)):
        checks = [
            (s.anchor, *_finding(s, statement.id))
            for s in scenarios
            if statement.id in s.statements
        ]
        outcomes = {outcome for _, outcome, _ in checks}
        if not checks:
            result = NOT_CHECKED
        elif "failed" in outcomes:
            result = FAIL
        elif "passed" in outcomes:
            result = PASS
        elif "unseen" in outcomes:
            result = NOT_SEEN
        else:
            result = NOT_RUN
        rows.append(
            StatementRow(
                statement.id, statement.rule, statement.side, result, statement.unchecked, checks
            )
        )
    return rows


def _finding(s: ScenarioResult, statement: str) -> tuple[str, str]:
    found = s.findings.get(statement)
    if found is not None:
        return found["outcome"], found.get("detail", "")
    return {"passed": ("passed", ""), "failed": (NOT_REACHED, "")}.get(
        s.outcome, (s.outcome, s.detail)
    )


def summary(rows: list[StatementRow]) -> dict[str, Any]:
    client = [r for r in rows if r.side == "client"]
    checked = [r for r in client if r.result != NOT_CHECKED]
    return {
        "checked": len(checked),
        "of": len(client),
        "passed": sum(r.result == PASS for r in checked),
        "failed": sum(r.result == FAIL for r in checked),
        "not_seen": sum(r.result == NOT_SEEN for r in checked),
        "not_run": sum(r.result == NOT_RUN for r in checked),
        "broker_checked": sum(r.result != NOT_CHECKED for r in rows if r.side == "broker"),
        "broker_failed": sum(r.result == FAIL for r in rows if r.side == "broker"),
    }


def headline(rows: list[StatementRow]) -> str:
    s = summary(rows)
    return (
        f"client statements checked: {s['checked']} of {s['of']} (passed {s['passed']}, "
        f"failed {s['failed']}, not seen {s['not_seen']}, not run {s['not_run']}); "
        f"broker breaches survived: {s['broker_checked'] - s['broker_failed']} of "
        f"{s['broker_checked']}"
    )


def terminal_lines(rows: list[StatementRow]) -> list[str]:
    lines = ["", f"MQTT 3.1.1 protocol profile: {headline(rows)}"]
    for row in rows:
        if row.result in (FAIL, NOT_SEEN):
            lines.append(f"  {row.id:<14} {row.result:<8} {row.rule}")
            if row.detail:
                lines.append(f"      {row.detail[:300]}")
    return lines


def markdown_lines(rows: list[StatementRow]) -> list[str]:
    out = [
        "",
        "## MQTT 3.1.1 protocol profile",
        "",
        headline(rows) + ".",
        "",
        "| Statement | Side | The rule | Result | Scenarios, or why it is not checked |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = "<br>".join(f"{a}: {o}" for a, o, _ in row.checks) or row.unchecked
        if row.detail:
            cells += f"<br>{row.detail}"
        out.append(f"| {row.id} | {row.side} | {_md(row.rule)} | {row.result} | {_md(cells)} |")
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def html_section(rows: list[StatementRow]) -> str:
    e = html.escape
    body = []
    for row in rows:
        if row.checks:
            cell = "<br>".join(f'<a href="#{e(a)}">{e(a)}</a> {e(o)}' for a, o, _ in row.checks)
            if row.detail:
                cell += f'<br><span class="small">{e(row.detail[:600])}</span>'
        else:
            cell = f'<span class="small">{e(row.unchecked)}</span>'
        body.append(
            f'<tr id="{e(row.id)}"><td style="white-space:nowrap">{e(row.id)}</td>'
            f"<td>{e(row.side)}</td>"
            f'<td>{e(row.rule)}</td><td class="{_css(row.result)}">{e(row.result)}</td>'
            f"<td>{cell}</td></tr>"
        )
    return (
        '<h2 id="protocol-profile">MQTT 3.1.1 protocol profile</h2>'
        f"<p><b>{e(headline(rows))}</b></p>"
        '<p class="small">Every normative statement of MQTT 3.1.1 that binds a client, and the '
        "broker statements whose breach a client must survive. Checked on the wire through "
        "the kit's proxy: what the connector sends, and how it meets a broker that sends what "
        "no broker may. A failed client statement fails the verdict.</p>"
        "<table><tr><th>Statement</th><th>Side</th><th>The rule</th><th>Result</th>"
        f"<th>Scenarios, or why it is not checked</th></tr>{''.join(body)}</table>"
    )


def _css(result: str) -> str:
    return result.replace(" ", "-")


def json_section(rows: list[StatementRow]) -> dict[str, Any]:
    return {
        "summary": summary(rows),
        "statements": [
            {
                "id": row.id,
                "side": row.side,
                "rule": row.rule,
                "result": row.result,
                "unchecked": row.unchecked,
                "scenarios": [{"scenario": a, "finding": o, "detail": d} for a, o, d in row.checks],
            }
            for row in rows
        ],
    }


def need_id(statement: str) -> str:
    """A statement as a sphinx-needs id (letters, digits and underscores)."""
    return statement.replace("-", "_").replace(".", "_")


def needs(rows: list[StatementRow], feature: str) -> dict[str, dict[str, Any]]:
    """One need per statement, linked to the scenario runs that checked it."""
    found = {}
    for row in rows:
        content = row.rule if row.checks else f"{row.rule} (not checked: {row.unchecked})"
        if row.detail:
            content += f" - {row.detail[:300]}"
        found[need_id(row.id)] = {
            "id": need_id(row.id),
            "type": "req",  # a requirement of the standard, beside the seed's
            "title": f"{row.id}: {row.rule}",
            "content": content,
            "status": row.result.lower(),
            "tags": [feature, "MQTT 3.1.1", f"{row.side} statement"],
            "links": [a for a, _, _ in row.checks],
        }
    return found
