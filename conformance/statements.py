"""The MQTT 3.1.1 statements the kit's protocol profile checks on the wire.

Rules of this module:
- ``STATEMENTS`` lists every normative statement of MQTT 3.1.1 (its Appendix B ids,
  ``MQTT-x.y.z-n``) that binds a client, plus the broker statements whose breach a
  client must survive (``side="broker"``): the client-side list is the one of
  ``docs/mqtt-statements.md`` (``tests/test_statements.py`` holds the two equal);
- a scenario names the statements it checks with tags (``@MQTT-4.6.0-2``), beside
  its ``@REQ_`` and ``@TEST_`` tags; a statement no scenario checks carries the
  reason it cannot be seen on the wire (``unchecked``);
- the wording is the kit's short reading of each statement, not the standard's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: What a statement tag looks like: ``MQTT-`` and the standard's numbering.
STATEMENT_TAG: Final = re.compile(r"^MQTT-\d+\.\d+\.\d+-\d+$")


@dataclass(frozen=True)
class Statement:
    id: str
    rule: str  # the kit's reading of it
    side: str = "client"  # "client": binds the client; "broker": the client survives its breach
    unchecked: str = ""  # why no scenario can check it on the wire ("" when one does)


_CLIENT: Final = (
    ("MQTT-1.5.3-1", "close the connection on ill-formed UTF-8; never send it"),
    ("MQTT-1.5.3-2", "not send U+0000 in a string; a received one is refused"),
    ("MQTT-1.5.3-3", "keep U+FEFF as it is, never strip it"),
    ("MQTT-2.2.2-1", "set reserved fixed-header flags as the standard lists them"),
    ("MQTT-2.2.2-2", "close the connection on invalid flags"),
    ("MQTT-2.3.1-1", "give SUBSCRIBE, UNSUBSCRIBE and QoS 1 PUBLISH a non-zero identifier"),
    ("MQTT-2.3.1-2", "use an identifier not in use for each new packet"),
    ("MQTT-2.3.1-3", "resend with the same identifier"),
    ("MQTT-2.3.1-5", "send no identifier on a QoS 0 PUBLISH"),
    ("MQTT-2.3.1-6", "acknowledge with the PUBLISH's identifier"),
    ("MQTT-3.1.0-1", "send CONNECT first on a new connection"),
    ("MQTT-3.1.0-2", "send CONNECT once per connection"),
    ("MQTT-3.1.2-3", "leave CONNECT's reserved flag 0"),
    ("MQTT-3.1.2-4", "keep the session after a disconnect (clean session 0)"),
    ("MQTT-3.1.2-6", "discard the previous session with clean session 1"),
    ("MQTT-3.1.2-11", "with no will, leave will QoS and retain 0"),
    ("MQTT-3.1.2-13", "with no will, will QoS 0"),
    ("MQTT-3.1.2-14", "never will QoS 3"),
    ("MQTT-3.1.2-15", "with no will, will retain 0"),
    ("MQTT-3.1.2-18", "no user name without the user-name flag"),
    ("MQTT-3.1.2-19", "a user name with the flag"),
    ("MQTT-3.1.2-20", "no password without the password flag"),
    ("MQTT-3.1.2-21", "a password with the flag"),
    ("MQTT-3.1.2-22", "no password without a user name"),
    ("MQTT-3.1.2-23", "send PINGREQ when idle within keep-alive"),
    ("MQTT-3.1.3-1", "order CONNECT's payload fields"),
    ("MQTT-3.1.3-3", "put the client identifier first, always"),
    ("MQTT-3.1.3-4", "send a UTF-8 client identifier"),
    ("MQTT-3.1.3-7", "with an empty client identifier, clean session 1"),
    ("MQTT-3.1.3-10", "a UTF-8 will topic"),
    ("MQTT-3.1.3-11", "a UTF-8 user name"),
    ("MQTT-3.3.1-1", "set DUP on a resent PUBLISH"),
    ("MQTT-3.3.1-2", "DUP 0 on QoS 0; a received QoS 0 with DUP is refused"),
    ("MQTT-3.3.1-3", "decide DUP by retransmission only"),
    ("MQTT-3.3.1-4", "never QoS 3; close on a received one"),
    ("MQTT-3.3.2-1", "a UTF-8 topic name first in PUBLISH"),
    ("MQTT-3.3.2-2", "no wildcard in a topic name; a received one is refused"),
    ("MQTT-3.3.4-1", "answer a PUBLISH as its QoS says"),
    ("MQTT-3.6.1-1", "PUBREL flags 0010"),
    ("MQTT-3.8.1-1", "SUBSCRIBE flags 0010"),
    ("MQTT-3.8.3-1", "UTF-8 topic filters"),
    ("MQTT-3.8.3-3", "at least one filter in a SUBSCRIBE"),
    ("MQTT-3.8.3-4", "requested QoS 0 to 2, reserved bits 0, in SUBSCRIBE"),
    ("MQTT-3.10.1-1", "UNSUBSCRIBE flags 0010"),
    ("MQTT-3.10.3-1", "UTF-8 topic filters"),
    ("MQTT-3.10.3-2", "at least one filter in an UNSUBSCRIBE"),
    ("MQTT-3.14.4-1", "close after DISCONNECT and send nothing more"),
    ("MQTT-4.3.2-1", "treat a QoS 1 PUBLISH as unacknowledged until its PUBACK"),
    ("MQTT-4.3.2-2", "answer a QoS 1 PUBLISH with PUBACK and its identifier"),
    ("MQTT-4.3.3-1", "QoS 2 sender rules"),
    ("MQTT-4.3.3-2", "QoS 2 receiver rules"),
    (
        "MQTT-4.4.0-1",
        "resend what was not acknowledged on a resumed session, with the original identifiers",
    ),
    ("MQTT-4.5.0-2", "acknowledge every PUBLISH as its QoS says, processed or not"),
    ("MQTT-4.6.0-1", "resend in the order first sent"),
    ("MQTT-4.6.0-2", "send PUBACKs in the order the PUBLISHes came"),
    ("MQTT-4.6.0-3", "PUBREC order"),
    ("MQTT-4.6.0-4", "PUBREL order"),
    ("MQTT-4.7.1-1", "wildcards only in topic filters"),
    ("MQTT-4.7.1-2", "`#` alone, last"),
    ("MQTT-4.7.1-3", "`+` a whole level"),
    ("MQTT-4.7.3-1", "names and filters at least one character"),
    ("MQTT-4.7.3-2", "no U+0000 in names and filters"),
    ("MQTT-4.7.3-3", "names and filters at most 65,535 bytes"),
    ("MQTT-4.8.0-1", "close the connection on a protocol violation"),
    ("MQTT-6.0.0-1", "WebSocket binary frames"),
)

#: Why a statement is not checked on the wire.
_UNCHECKED: Final = {
    "MQTT-3.1.2-4": (
        "a session's state lives inside the client; the wire shows it only as the resends "
        "of a resumed session, checked under MQTT-4.4.0-1"
    ),
    "MQTT-3.1.2-6": (
        "what a client forgets of an old session with clean session 1 leaves nothing on "
        "the wire that the standard forbids: a message sent again after a clean start is "
        "a new message"
    ),
    "MQTT-3.1.3-3": (
        "the client identifier is the first payload field by the packet's shape: a "
        "CONNECT that breaks it does not read as one (MQTT-3.1.3-1 judges the payload)"
    ),
    "MQTT-3.6.1-1": (
        "QoS 2: outside REQ_0257 (QoS 0 and 1), a client of the kit never sends PUBREL"
    ),
    "MQTT-4.3.3-1": ("QoS 2: outside REQ_0257"),
    "MQTT-4.3.3-2": ("QoS 2: outside REQ_0257"),
    "MQTT-4.6.0-3": ("QoS 2: outside REQ_0257"),
    "MQTT-4.6.0-4": ("QoS 2: outside REQ_0257"),
    "MQTT-4.7.3-3": ("cannot be broken on the wire: a string's length field has 16 bits"),
    "MQTT-6.0.0-1": ("WebSocket: the kit connects over TCP (and TLS) only"),
}

#: Statements that bind the broker, whose breach the kit plays as a hostile broker.
_BROKER: Final = (
    ("MQTT-3.2.0-1", "send CONNACK first: the client refuses any other packet before it"),
    ("MQTT-3.2.2-5", "close after a refusing CONNACK: the client ends the connection itself"),
    ("MQTT-3.8.4-5", "one SUBACK return code per filter: the client refuses too few"),
)

STATEMENTS: Final[dict[str, Statement]] = {
    **{sid: Statement(sid, rule, "client", _UNCHECKED.get(sid, "")) for sid, rule in _CLIENT},
    **{sid: Statement(sid, rule, "broker") for sid, rule in _BROKER},
}


def statements_of(tags: Iterable[str]) -> list[str]:
    """The statement ids among a scenario's tags, in the standard's order."""
    return sorted((t for t in tags if t in STATEMENTS), key=statement_key)


def statement_key(statement: str) -> tuple[int, ...]:
    """Sorts MQTT-3.10.1-1 after MQTT-3.8.4-5 (by number, not by text)."""
    return tuple(int(n) for n in re.findall(r"\d+", statement))
