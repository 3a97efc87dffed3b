"""Steps of features/backpressure.feature."""

from __future__ import annotations

from pytest_bdd import parsers, then
from returns.pipeline import is_successful

from taktora_connector.conformance.world import World, timed_send
from taktora_connector.domain import (
    BackPressure,
)


@then(parsers.parse("the refusal was BackPressure within {limit:d} sends"))
def _refusal_was_backpressure(conformance_world: World, limit: int) -> None:
    assert isinstance(conformance_world.refusal, BackPressure), (
        f"refused with {conformance_world.refusal!r}"
    )
    assert conformance_world.accepted_before_refusal <= limit


@then(parsers.parse('"{writer}" sending again is refused with BackPressure'))
def _refused_again(conformance_world: World, writer: str) -> None:
    result = timed_send(conformance_world.writer(writer), "again", writer)
    assert isinstance(result.failure() if not is_successful(result) else None, BackPressure), str(
        result
    )
