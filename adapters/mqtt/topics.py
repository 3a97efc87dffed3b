"""MQTT 3.1.1 topic names and topic filters: the rules and the match predicate.

Rules of this module (MQTT 3.1.1 section 4.7):
- a topic name or filter is 1 to 65,535 bytes of UTF-8 with no NUL; spaces and
  any other character are allowed;
- a topic name (what is published) has no wildcard; whether a writer may use a
  ``$`` topic is the writer's rule, not this module's;
- in a filter ``+`` fills one whole level (also an empty one) and ``#`` fills a
  whole level and is the last one; ``sport/#`` also matches ``sport``;
- a filter that starts with a wildcard never matches a topic starting with ``$``.

Every violation is a ``ConfigurationError`` that names the rule. ``topic_matches``
is the reference predicate that the trie in ``matcher`` must agree with.
"""

from __future__ import annotations

from typing import Final

from taktora_connector.domain import ConfigurationError

MAX_TOPIC_BYTES: Final = 65_535


def _check_common(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{kind} must be a str, got {type(value).__name__}")
    if not value:
        raise ConfigurationError(f"{kind} must not be empty (MQTT 3.1.1 section 4.7.3)")
    if "\x00" in value:
        raise ConfigurationError(
            f"{kind} {value!r} contains NUL (U+0000), which MQTT does not allow"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise ConfigurationError(
            f"{kind} {value!r} is not valid UTF-8 text ({err.reason}); "
            "MQTT topics are UTF-8 strings"
        ) from None
    if size > MAX_TOPIC_BYTES:
        raise ConfigurationError(
            f"{kind} is {size} bytes of UTF-8; MQTT allows at most {MAX_TOPIC_BYTES}"
        )
    return value


def validate_topic_name(topic: object) -> str:
    """Return ``topic`` if it is a valid MQTT topic name (no wildcards)."""
    text = _check_common("topic", topic)
    if "+" in text or "#" in text:
        raise ConfigurationError(
            f"topic {text!r} contains a wildcard ('+' or '#'); wildcards are only "
            "allowed in subscription filters"
        )
    return text


def validate_publish_topic(topic: object) -> str:
    """Return ``topic`` if a client may publish to it: a topic name not starting with '$'."""
    text = validate_topic_name(topic)
    if text.startswith("$"):
        raise ConfigurationError(
            f"topic {text!r} starts with '$'; such topics belong to the broker "
            "(MQTT-4.7.2-1) and may be read but not published to"
        )
    return text


def validate_filter(topic_filter: object) -> str:
    """Return ``topic_filter`` if it is a valid MQTT 3.1.1 subscription filter."""
    text = _check_common("topic filter", topic_filter)
    levels = text.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level:
            if level != "#":
                raise ConfigurationError(
                    f"topic filter {text!r}: '#' must fill a whole level, "
                    f"found in level {level!r} (MQTT-4.7.1-2)"
                )
            if index != last:
                raise ConfigurationError(
                    f"topic filter {text!r}: '#' must be the last level (MQTT-4.7.1-2)"
                )
        if "+" in level and level != "+":
            raise ConfigurationError(
                f"topic filter {text!r}: '+' must fill a whole level, "
                f"found in level {level!r} (MQTT-4.7.1-3)"
            )
    return text


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` under MQTT 3.1.1 rules.

    Both arguments are assumed valid; this is the reference predicate (TEST_0102).
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for index, f_level in enumerate(f_levels):
        if f_level == "#":
            return True
        if index >= len(t_levels):
            return False
        if f_level != "+" and f_level != t_levels[index]:
            return False
    return len(f_levels) == len(t_levels) or (
        len(f_levels) == len(t_levels) + 1 and f_levels[-1] == "#"
    )
