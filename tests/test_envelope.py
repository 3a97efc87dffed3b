"""The hot-path constructors make the very objects the constructors make.

``recv_envelope``, ``send_outcome`` and ``ok`` write slots directly (``domain/envelope``,
``domain/results``). If a change to a dataclass or a release of ``returns`` moves a
field, these fail loudly instead of a connector handing out broken values.
"""

from __future__ import annotations

import dataclasses

import pytest
from returns.pipeline import is_successful
from returns.result import Success

from taktora_connector.adapters.mqtt.delivery import Delivery
from taktora_connector.domain import (
    ZERO_CORRELATION_ID,
    RecvEnvelope,
    SendOutcome,
    ok,
    recv_envelope,
    send_outcome,
)


def test_recv_envelope_is_the_dataclass_with_every_field_in_place() -> None:
    fields = ("value", b"raw", 7, 123, ZERO_CORRELATION_ID, ("a/t", 1, False))
    fast = recv_envelope(*fields)
    slow = RecvEnvelope(*fields)
    assert type(fast) is RecvEnvelope
    assert fast == slow
    assert dataclasses.astuple(fast) == fields
    assert [f.name for f in dataclasses.fields(RecvEnvelope)] == [
        "value",
        "payload",
        "sequence_number",
        "timestamp_ns",
        "correlation_id",
        "routing",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.value = "changed"  # type: ignore[misc]  # frozen, as the constructor's


def test_send_outcome_is_the_dataclass_with_every_field_in_place() -> None:
    handle = Delivery()
    fast = send_outcome(3, 456, 64, handle)
    assert type(fast) is SendOutcome
    assert fast == SendOutcome(3, 456, 64, handle)
    assert (fast.sequence_number, fast.timestamp_ns, fast.bytes_written) == (3, 456, 64)
    assert fast.delivery is handle
    assert [f.name for f in dataclasses.fields(SendOutcome)] == [
        "sequence_number",
        "timestamp_ns",
        "bytes_written",
        "delivery",
    ]


def test_ok_is_returns_success_of_the_value() -> None:
    value = object()
    made = ok(value)
    assert type(made) is Success
    assert made == Success(value)
    assert is_successful(made)
    assert made.unwrap() is value
    assert made.map(lambda v: v is value) == Success(True)
    assert repr(ok(3)) == repr(Success(3))
