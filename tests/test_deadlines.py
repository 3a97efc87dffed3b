"""The connection's clock rules (``protocol/deadlines``), without a network or a clock."""

from __future__ import annotations

from taktora_connector.adapters.mqtt.protocol.deadlines import ConnectionDeadlines


def test_connack_is_due_within_connect_timeout_of_the_connect() -> None:
    deadlines = ConnectionDeadlines(connect_timeout=5.0, keep_alive=60.0)
    deadlines.opened(100.0)
    assert deadlines.next_deadline(connected=False) == 105.0
    assert deadlines.expired(104.9, connected=False) is None
    assert deadlines.expired(105.0, connected=False) == "no CONNACK within 5 s"
    deadlines.accepted(101.0, awaiting_resends=False)
    assert deadlines.expired(200.0, connected=False) is None  # CONNACK came: not due


def test_a_silent_broker_expires_after_one_and_a_half_keep_alives_of_no_packet() -> None:
    deadlines = ConnectionDeadlines(connect_timeout=5.0, keep_alive=10.0)
    deadlines.opened(0.0)
    deadlines.accepted(1.0, awaiting_resends=False)
    assert deadlines.next_deadline(connected=True) == 15.0  # silence counts from the CONNECT
    deadlines.liveness.note(1, 12.0)  # a complete packet at 12 s
    assert deadlines.expired(26.9, connected=True) is None
    assert deadlines.expired(27.0, connected=True) == (
        "keep-alive: no packet from the broker within 15 s"
    )
    deadlines.liveness.note(1, 30.0)  # the same count: no new packet, no sign of life
    assert deadlines.expired(27.0, connected=True) is not None
    assert deadlines.expired(27.0, connected=False) is None  # only a connected link is watched


def test_keep_alive_zero_sets_no_silence_deadline() -> None:
    deadlines = ConnectionDeadlines(connect_timeout=5.0, keep_alive=0.0)
    deadlines.opened(0.0)
    deadlines.accepted(0.5, awaiting_resends=False)
    assert deadlines.next_deadline(connected=True) is None
    assert deadlines.expired(1e9, connected=True) is None


def test_the_resend_wait_ends_once_by_time_or_quietly_when_the_ledger_stops_waiting() -> None:
    deadlines = ConnectionDeadlines(connect_timeout=5.0, keep_alive=0.0)
    deadlines.opened(0.0)
    deadlines.accepted(1.0, awaiting_resends=True)
    assert deadlines.next_deadline(connected=True) == 6.0
    assert not deadlines.resends_over(5.9, still_waiting=True)
    assert deadlines.resends_over(6.0, still_waiting=True)
    assert not deadlines.resends_over(7.0, still_waiting=True)  # once
    deadlines.opened(10.0)
    deadlines.accepted(11.0, awaiting_resends=True)
    assert not deadlines.resends_over(12.0, still_waiting=False)  # the resends came
    assert not deadlines.resends_over(100.0, still_waiting=True)  # and nothing is due after
    assert deadlines.next_deadline(connected=True) is None


def test_a_closed_connection_has_nothing_due() -> None:
    deadlines = ConnectionDeadlines(connect_timeout=5.0, keep_alive=0.0)
    deadlines.opened(0.0)
    deadlines.closed()
    assert deadlines.next_deadline(connected=False) is None
    assert deadlines.expired(100.0, connected=False) is None
