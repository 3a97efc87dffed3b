"""Reconnect backoff: exponential, capped, jittered by at most 10 %."""

from __future__ import annotations

import random

import pytest

from taktora_connector.adapters.mqtt.protocol.backoff import Backoff


@pytest.mark.parametrize(("failures", "base"), [(1, 0.1), (2, 0.2), (3, 0.4), (8, 12.8), (9, 25.6)])
def test_grows_by_two_with_ten_percent_jitter(failures: int, base: float) -> None:
    backoff = Backoff(0.1, 30.0, rng=random.Random(7))
    delays = [backoff.delay(failures) for _ in range(200)]
    assert all(base * 0.9 <= d <= base * 1.1 for d in delays)
    assert len(set(delays)) > 100  # jittered, not constant


def test_capped_at_the_maximum_even_for_huge_failure_counts() -> None:
    backoff = Backoff(0.1, 30.0, rng=random.Random(1))
    assert all(27.0 <= backoff.delay(n) <= 30.0 for n in (10, 11, 100, 10**9))
