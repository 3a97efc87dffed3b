"""Topic and filter rules (a table per rule) and the trie against a brute-force oracle."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taktora_connector.adapters.mqtt.matcher import TopicMatcher
from taktora_connector.adapters.mqtt.topics import (
    topic_matches,
    validate_filter,
    validate_publish_topic,
    validate_topic_name,
)
from taktora_connector.domain import ConfigurationError


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", "must not be empty"),
        ("a\x00b", "NUL"),
        ("a/+/b", "wildcard"),
        ("a/#", "wildcard"),
        ("x" * 65_536, "at most 65535"),
        ("é" * 40_000, "at most 65535"),
        ("\ud800", "not valid UTF-8"),
        (42, "must be a str"),
    ],
)
def test_invalid_topic_names_name_the_rule(topic: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        validate_topic_name(topic)


@pytest.mark.parametrize(
    "topic", ["a", "a/b", "with space/ok", "/", "//", "a//b", "ü/日本", "x" * 65_535, "$SYS/x"]
)
def test_valid_topic_names(topic: str) -> None:
    assert validate_topic_name(topic) == topic


def test_publish_topic_refuses_dollar_topics() -> None:
    with pytest.raises(ConfigurationError, match=r"starts with '\$'.*MQTT-4.7.2-1"):
        validate_publish_topic("$SYS/broker/uptime")
    assert validate_publish_topic("a$") == "a$"


@pytest.mark.parametrize(
    ("topic_filter", "message"),
    [
        ("", "must not be empty"),
        ("a/b#", "'#' must fill a whole level"),
        ("a/#/b", "'#' must be the last level"),
        ("a+/b", "'+' must fill a whole level"),
        ("a/+b", "'+' must fill a whole level"),
        ("a\x00", "NUL"),
        ("#" * 2, "'#' must fill a whole level"),
    ],
)
def test_invalid_filters_name_the_rule(topic_filter: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        validate_filter(topic_filter)


@pytest.mark.parametrize("topic_filter", ["#", "+", "+/+", "a/+/c", "a/#", "/#", "+/#", "$SYS/#"])
def test_valid_filters(topic_filter: str) -> None:
    assert validate_filter(topic_filter) == topic_filter


# TEST_0102: the match predicate table.
MATCH_TABLE = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "anything/at/all", True),
    ("#", "/", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("plant/+/temperature", "plant/A/temperature", True),
    ("plant/+/temperature", "plant/A/B/temperature", False),
    ("#", "$SYS/uptime", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("a/b", "a/b", True),
    ("a/b", "a/B", False),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCH_TABLE)
def test_match_table(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected
    matcher: TopicMatcher[str] = TopicMatcher()
    matcher.add(topic_filter, "reader")
    assert (matcher.match(topic) == ["reader"]) is expected


def oracle(topic_filter: str, topic: str) -> bool:
    """An independent statement of the rules, as a regular expression."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    parts = topic_filter.split("/")
    pattern = ""
    for index, level in enumerate(parts):
        sep = "/" if index else ""
        if level == "#":
            # '#' matches the parent level too: the separator before it is optional.
            pattern = pattern + ("(/.*)?" if index else ".*")
            break
        pattern += sep + ("[^/]*" if level == "+" else re.escape(level))
    return re.fullmatch(pattern, topic, flags=re.DOTALL) is not None


LEVEL = st.sampled_from(["a", "b", "", "ü", "日本", "$x", "a b"])
topics = st.builds(
    lambda first, rest: "/".join([first, *rest]),
    st.sampled_from(["a", "b", "", "$SYS", "$x", "ü"]),
    st.lists(LEVEL, max_size=4),
)


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(LEVEL, st.just("+"), st.just("$SYS")), min_size=1, max_size=5))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(filters(), min_size=1, max_size=12, unique=True),
    st.lists(topics, min_size=1, max_size=8),
)
def test_trie_agrees_with_the_oracle(filter_list: list[str], topic_list: list[str]) -> None:
    matcher: TopicMatcher[str] = TopicMatcher()
    for index, topic_filter in enumerate(filter_list):
        matcher.add(topic_filter, f"r{index}:{topic_filter}")
    for topic in topic_list:
        expected = sorted(f"r{i}:{f}" for i, f in enumerate(filter_list) if oracle(f, topic))
        assert sorted(matcher.match(topic)) == expected
        assert all(topic_matches(f, topic) == oracle(f, topic) for f in filter_list)


@settings(max_examples=80, deadline=None)
@given(st.lists(filters(), min_size=1, max_size=10), st.data())
def test_removing_registrations_prunes_and_keeps_the_rest(
    filter_list: list[str], data: st.DataObject
) -> None:
    matcher: TopicMatcher[int] = TopicMatcher()
    for index, topic_filter in enumerate(filter_list):
        matcher.add(topic_filter, index)
    removed = data.draw(st.sets(st.sampled_from(range(len(filter_list)))))
    for index in removed:
        assert matcher.remove(filter_list[index], index)
        assert not matcher.remove(filter_list[index], index)
    assert len(matcher) == len(filter_list) - len(removed)
    topic = data.draw(topics)
    expected = sorted(i for i, f in enumerate(filter_list) if i not in removed and oracle(f, topic))
    assert sorted(matcher.match(topic)) == expected
    for index in set(range(len(filter_list))) - removed:
        matcher.remove(filter_list[index], index)
    assert matcher._root.is_empty()
