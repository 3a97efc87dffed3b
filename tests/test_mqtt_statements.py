"""docs/mqtt-statements.md stays the list of the MQTT 3.1.1 statements the code keeps.

Every statement id the code cites (``MQTT-x.y.z-n`` in the package, the kit, the
features and the examples) has a row there; every test a row names exists; every
row says where the statement is kept and what shows it, or why it does not apply.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "mqtt-statements.md"
STATEMENT = re.compile(r"MQTT-\d+\.\d+\.\d+-\d+")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
CODE = ("domain", "ports", "adapters", "conformance", "features", "examples")


def rows() -> list[list[str]]:
    """The table rows of the page whose first cell is a statement id, cell by cell."""
    found = []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| MQTT-"):
            found.append(cells)
    return found


def cited_in_code(root: Path = ROOT) -> dict[str, set[str]]:
    cited: dict[str, set[str]] = {}
    for folder in CODE:
        for path in (root / folder).rglob("*"):
            if path.suffix not in {".py", ".feature"} or "__pycache__" in path.parts:
                continue
            for statement in STATEMENT.findall(path.read_text(encoding="utf-8")):
                cited.setdefault(statement, set()).add(str(path.relative_to(root)))
    return cited


def not_listed(cited: dict[str, set[str]]) -> dict[str, list[str]]:
    listed = {row[0] for row in rows()}
    return {s: sorted(paths) for s, paths in cited.items() if s not in listed}


def test_every_statement_the_code_cites_has_a_row() -> None:
    missing = not_listed(cited_in_code())
    assert not missing, f"cited in the code, missing from {PAGE.name}: {missing}"


def test_the_page_lists_the_client_statements_once_each() -> None:
    ids = [row[0] for row in rows()]
    assert len(ids) >= 70  # the client's and the broker's tables
    for table_ids in _tables():
        assert len(table_ids) == len(set(table_ids)), "a statement listed twice in one table"
    assert all(STATEMENT.fullmatch(i) for i in ids)


def _tables() -> list[list[str]]:
    tables: list[list[str]] = [[]]
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            tables.append([])
        elif line.startswith("| MQTT-"):
            tables[-1].append(line.split("|")[1].strip())
    return [t for t in tables if t]


@pytest.mark.parametrize("row", rows(), ids=lambda row: row[0])
def test_each_row_says_where_and_what_shows_it(row: list[str]) -> None:
    assert len(row) == 4, f"{row[0]}: four cells, got {len(row)}"
    statement, rule, where, shown = row
    assert rule and where, statement
    if where.startswith("does not apply"):
        assert ":" in where, f"{statement}: 'does not apply' needs its reason"
        return
    refs = TEST_REF.findall(shown)
    assert refs, f"{statement}: name the test that shows it"
    for file, name in refs:
        path = ROOT / file
        assert path.is_file(), f"{statement}: {file} does not exist"
        names = {
            node.name
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert name in names, f"{statement}: {file} has no {name}"


def test_a_statement_cited_but_not_listed_is_caught(tmp_path: Path) -> None:
    """The check itself can fail: a module citing an id the page does not list."""
    module = tmp_path / "adapters" / "mqtt" / "made_up.py"
    module.parent.mkdir(parents=True)
    module.write_text('raise ValueError("x (MQTT-9.9.9-9) and (MQTT-4.6.0-2)")\n')
    assert not_listed(cited_in_code(tmp_path)) == {"MQTT-9.9.9-9": ["adapters/mqtt/made_up.py"]}
