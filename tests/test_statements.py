"""The kit's list of MQTT 3.1.1 statements: the same as docs/mqtt-statements.md, and
every one tagged on a scenario is judged by something."""

from __future__ import annotations

import re
from pathlib import Path

from taktora_connector.conformance.paths import FEATURES_DIR
from taktora_connector.conformance.registry import check_tags
from taktora_connector.conformance.statements import STATEMENTS, statement_key, statements_of
from taktora_connector.conformance.wire_rules import RULES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "mqtt-statements.md"


def _docs_client_statements() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    client = text.split("## Statements that bind the client", 1)[1].split("## Broker statements")[0]
    return re.findall(r"^\| (MQTT-[\d.-]+) \|", client, re.M)


def _feature_tags() -> dict[str, set[str]]:
    """Each statement tag of the feature files, with the scenarios (by line) it is on."""
    found: dict[str, set[str]] = {}
    for path in sorted(FEATURES_DIR.glob("*.feature")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for tag in re.findall(r"@(MQTT-[\d.-]+)", line):
                found.setdefault(tag, set()).add(f"{path.name}:{number}")
    return found


def test_the_kits_client_statements_are_the_docs_table() -> None:
    kit = [s.id for s in STATEMENTS.values() if s.side == "client"]
    assert kit == _docs_client_statements()
    assert len(kit) == 65


def test_every_statement_is_checked_by_a_scenario_or_says_why_not() -> None:
    tagged = _feature_tags()
    assert set(tagged) <= set(STATEMENTS), set(tagged) - set(STATEMENTS)
    for statement in STATEMENTS.values():
        if statement.unchecked:
            assert statement.id not in tagged, f"{statement.id} is tagged yet 'not checked'"
        else:
            assert statement.id in tagged, f"{statement.id}: no scenario checks it, no reason given"
    client_checked = [s for s in STATEMENTS.values() if s.side == "client" and not s.unchecked]
    assert len(client_checked) >= 40


def test_statements_sort_by_number_and_tags_are_read_from_any_order() -> None:
    assert sorted(["MQTT-3.10.1-1", "MQTT-3.8.4-5", "MQTT-3.1.0-1"], key=statement_key) == [
        "MQTT-3.1.0-1",
        "MQTT-3.8.4-5",
        "MQTT-3.10.1-1",
    ]
    assert statements_of(["REQ_0257", "MQTT-4.6.0-2", "MQTT-9.9.9-9", "MQTT-2.2.2-1"]) == [
        "MQTT-2.2.2-1",
        "MQTT-4.6.0-2",
    ]


def test_an_unknown_statement_tag_is_a_tag_problem() -> None:
    problems = check_tags("s", ["REQ_0257", "TEST_2611", "MQTT-9.9.9-9"])
    assert problems == ["s: unknown MQTT 3.1.1 statement tag @MQTT-9.9.9-9"]


def test_the_audit_scenarios_tag_only_statements_a_rule_or_a_step_judges() -> None:
    """A statement on a scenario of client_statements.feature is judged by the audit
    (a rule) or by its own step (U+FEFF): never left to the scenario's outcome alone."""
    text = (FEATURES_DIR / "client_statements.feature").read_text(encoding="utf-8")
    tags = set(re.findall(r"@(MQTT-[\d.-]+)", text))
    assert tags - set(RULES) == {"MQTT-1.5.3-3"}
