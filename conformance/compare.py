"""``taktora-conformance compare``: several kit runs side by side.

    taktora-conformance compare A/report.json B/report.json ... --out DIR

Rules of this module:
- input is only the ``report.json`` of each run; a run is one column, named by
  its connector factory and broker;
- rows are the requirements, then every scenario run (by its unique run id)
  found in any of the reports; a run that lacks a row shows "absent";
- every cell links to its evidence: the requirement's or the scenario's anchor
  in that run's ``report.html``, relative to ``DIR``;
- writes ``compare.html`` and ``compare.md`` in ``DIR`` and prints the
  requirement rows; exit status 0, or 2 when an input is not a kit report.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

_STYLE: Final = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.c{text-align:center;white-space:nowrap}
td.c a{color:inherit;text-decoration:none;display:block}
.PASS,.passed{background:#e3f6e3}.FAIL,.failed{background:#fbe0e0}.PARTIAL{background:#fff3cd}
.NOT-RUN,.skipped,.absent{background:#f2f2f2;color:#555}.small{font-size:.85em;color:#555}
tr.section th{background:#e8e8f0}td:nth-child(2){min-width:24em}
"""


_LABEL: Final = {
    "passed": "PASS",
    "failed": "FAIL",
    "skipped": "NOT RUN",
    "not applicable": "N/A",
}


@dataclass
class Run:
    path: Path
    data: dict[str, Any]

    @property
    def label(self) -> str:
        return str(self.data["meta"]["connector"])

    @property
    def short(self) -> str:
        """A column name: the factory's callable, or its module for a generic callable."""
        module, _, attribute = self.label.partition(":")
        if self.label.endswith(":reference_factory"):
            return "reference"
        if attribute in ("make_connector", "factory", "make", "create_connector", "connector"):
            return module.split(".")[-1]
        return attribute or module

    @property
    def broker(self) -> str:
        return str(self.data["meta"]["broker"])

    @property
    def verdict(self) -> str:
        return str(self.data.get("verdict", "?"))

    def requirement(self, req: str) -> str | None:
        """A requirement's result, or an optional capability's."""
        for row in self.data["requirements"] + self.data.get("capabilities", []):
            if row["id"] == req:
                return str(row["result"])
        return None

    def statement(self, statement: str) -> str | None:
        """An MQTT 3.1.1 statement's result in the run's protocol profile."""
        for row in self.data.get("protocol_profile", {}).get("statements", []):
            if row["id"] == statement:
                return str(row["result"])
        return None

    @property
    def profile(self) -> str:
        """The protocol profile in a few words: "53 of 55 passed, 0 failed"."""
        summary = self.data.get("protocol_profile", {}).get("summary")
        if not summary:
            return "absent"
        return f"{summary['passed']} of {summary['checked']} passed, {summary['failed']} failed"

    def cannot(self) -> list[str]:
        """What the run's broker could not do, as the kit's probe found out."""
        return [
            f"{p['name']}: {p['evidence']}"
            for p in self.data["meta"].get("broker_probes", [])
            if not p["ok"]
        ]

    def scenario(self, run_id: str) -> dict[str, Any] | None:
        for s in self.data["scenarios"]:
            if (s.get("id") or s["nodeid"]) == run_id:
                return dict(s)
        return None

    def link(self, out: Path, anchor: str) -> str:
        page = self.path.parent / "report.html"
        target = Path(os.path.relpath(page, out)).as_posix()
        return f"{target}#{anchor}" if anchor else target


def load(paths: Sequence[str]) -> list[Run] | str:
    runs = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            path = path / "report.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            return f"cannot read {path}: {err}"
        if not isinstance(data, dict) or not {"meta", "requirements", "scenarios"} <= set(data):
            return f"{path} is not a report.json written by taktora-conformance"
        runs.append(Run(path.resolve(), data))
    return runs


def statement_rows(runs: Sequence[Run]) -> list[tuple[str, str]]:
    """(id, rule) of every MQTT 3.1.1 statement some run's profile lists, in order."""
    found: dict[str, str] = {}
    for run in runs:
        for row in run.data.get("protocol_profile", {}).get("statements", []):
            found.setdefault(row["id"], f"{row['side']}: {row['rule']}")
    return list(found.items())


def rows(runs: Sequence[Run]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(id, title) of every requirement, then every optional capability, and every
    scenario run, in report order."""
    reqs: dict[str, str] = {}
    caps: dict[str, str] = {}
    scenarios: dict[str, str] = {}
    for run in runs:
        for row in run.data["requirements"]:
            reqs.setdefault(row["id"], row["title"])
        for row in run.data.get("capabilities", []):
            caps.setdefault(row["id"], f"optional: {row['title']}")
        for s in run.data["scenarios"]:
            scenarios.setdefault(s.get("id") or s["nodeid"], s["name"])
    return sorted(reqs.items()) + sorted(caps.items()), list(scenarios.items())


def _result(run: Run, kind: str, key: str) -> str:
    if kind == "req":
        return run.requirement(key) or "absent"
    if kind == "stmt":
        return run.statement(key) or "absent"
    found = run.scenario(key)
    return str(found["outcome"]) if found else "absent"


def write_html(runs: Sequence[Run], out: Path) -> Path:
    e = html.escape
    reqs, scenarios = rows(runs)
    head = "".join(
        f"<th>{e(run.short)}<br><span class='small'>{e(run.label)}<br>{e(run.broker)}</span><br>"
        f'<a class="{e(run.verdict)}" href="{e(run.link(out, ""))}">{e(run.verdict)}</a></th>'
        for run in runs
    )

    def line(kind: str, key: str, title: str) -> str:
        cells = []
        for run in runs:
            result = _result(run, kind, key)
            css = result.replace(" ", "-")
            shown = _LABEL.get(result, result)
            if result == "absent":
                cells.append('<td class="c absent">absent</td>')
            else:
                cells.append(
                    f'<td class="c {css}"><a href="{e(run.link(out, key))}">{e(shown)}</a></td>'
                )
        return f"<tr><td>{e(key)}</td><td>{e(title)}</td>{''.join(cells)}</tr>"

    body = [line("req", key, title) for key, title in reqs]
    statements = statement_rows(runs)
    if statements:
        profiles = "".join(f"<th>{e(run.profile)}</th>" for run in runs)
        body.append(
            f'<tr class="section"><th colspan="2">MQTT 3.1.1 protocol profile</th>{profiles}</tr>'
        )
        body += [line("stmt", key, title) for key, title in statements]
    body.append(f'<tr class="section"><th colspan="{2 + len(runs)}">Scenarios</th></tr>')
    body += [line("scenario", key, title) for key, title in scenarios]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Conformance comparison</title>
<style>{_STYLE}</style></head><body>
<h1>Conformance comparison</h1>
<p class="small">Each column is one run of taktora-conformance; each cell links to its
evidence in that run's report.html (steps, failure, wire log).</p>
<table><tr><th>Id</th><th>Requirement or scenario</th>{head}</tr>
{"".join(body)}</table>
</body></html>
"""
    target = out / "compare.html"
    target.write_text(page, encoding="utf-8")
    return target


def write_markdown(runs: Sequence[Run], out: Path) -> Path:
    reqs, scenarios = rows(runs)
    lines = ["# Conformance comparison", ""]
    for number, run in enumerate(runs, start=1):
        lines.append(
            f"{number}. {run.short}: `{run.label}` on {run.broker}: **{run.verdict}** "
            f"([report]({run.link(out, '')}))"
        )
    lines += [
        "",
        "| Id | Requirement or scenario | "
        + " | ".join(f"{n}. {run.short}" for n, run in enumerate(runs, start=1))
        + " |",
    ]
    lines.append("|---|---|" + "---|" * len(runs))

    def line(kind: str, key: str, title: str) -> str:
        cells = []
        for run in runs:
            result = _result(run, kind, key)
            shown = _LABEL.get(result, result)
            cells.append(result if result == "absent" else f"[{shown}]({run.link(out, key)})")
        return f"| {key} | {title.replace('|', '/')} | " + " | ".join(cells) + " |"

    lines += [line("req", key, title) for key, title in reqs]
    statements = statement_rows(runs)
    if statements:
        lines.append(
            "| | **MQTT 3.1.1 protocol profile** | " + " | ".join(r.profile for r in runs) + " |"
        )
        lines += [line("stmt", key, title) for key, title in statements]
    lines += [line("scenario", key, title) for key, title in scenarios]
    brokers: dict[str, list[str]] = {}
    for run in runs:
        brokers.setdefault(run.broker, run.cannot())
    lines += ["", "## What each broker cannot do (the kit's probe)", ""]
    for broker, cannot in brokers.items():
        lines.append(f"- {broker}: " + ("; ".join(cannot) if cannot else "nothing the kit probes"))
    target = out / "compare.md"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def table_lines(runs: Sequence[Run]) -> list[str]:
    """The requirement rows for a terminal."""
    reqs, _ = rows(runs)
    width = max(10, *(len(run.short) for run in runs))
    lines = ["requirement  " + "  ".join(f"{run.short:<{width}}" for run in runs)]
    for key, _title in reqs:
        cells = "  ".join(f"{_result(run, 'req', key):<{width}}" for run in runs)
        lines.append(f"{key:<11}  {cells}")
    lines.append(f"{'MQTT 3.1.1':<11}  " + "  ".join(f"{run.profile}" for run in runs))
    lines.append(f"{'verdict':<11}  " + "  ".join(f"{run.verdict:<{width}}" for run in runs))
    lines += [f"  {run.short}: {run.label} on {run.broker}" for run in runs]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="taktora-conformance compare",
        description="Put several kit runs side by side: one HTML and Markdown matrix of "
        "requirements and scenarios against the runs, each cell linking to its evidence.",
    )
    parser.add_argument("reports", nargs="+", help="report.json files (or their folders)")
    parser.add_argument("--out", required=True, help="where compare.html and compare.md go")
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    runs = load(args.reports)
    if isinstance(runs, str):
        print(f"taktora-conformance compare: {runs}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_html(runs, out.resolve()), write_markdown(runs, out.resolve())]
    for line in table_lines(runs):
        print(line)
    print(f"comparison written to {', '.join(str(p) for p in written)}")
    return 0
