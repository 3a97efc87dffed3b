"""Steps of features/backpressure.feature."""

from __future__ import annotations

import time

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


#: Sends a stalled path may take in all, across filling it and the checks after.
STALLED_PATH_ROOM = 100
#: Refusals in a row that show the stalled path is full for good.
REFUSED_IN_A_ROW = 3


@then(parsers.parse('"{writer}" sending again is refused with BackPressure'))
def _refused_again(conformance_world: World, writer: str) -> None:
    """A stalled path stays refused: BackPressure, several times in a row.

    A first refusal may come a moment before the connector's own I/O has moved the
    oldest messages from its bridge into its in-flight window (seen on a loaded two-core
    machine), and then a send or two more are rightly accepted. Each of those counts
    against the room a stalled path has; a connector that makes room by dropping or
    that accepts between refusals runs out of it and fails.
    """
    handle = conformance_world.writer(writer)
    in_a_row = 0
    while in_a_row < REFUSED_IN_A_ROW:
        result = timed_send(handle, "again", writer)
        if is_successful(result):
            in_a_row = 0
            conformance_world.accepted_before_refusal += 1
            assert conformance_world.accepted_before_refusal <= STALLED_PATH_ROOM, (
                f"{conformance_world.accepted_before_refusal} sends accepted on a stalled "
                f"path: after BackPressure, sending again was accepted ({result}); the "
                "outbound path is not bounded, or it makes room by dropping"
            )
        else:
            failure = result.failure()
            assert isinstance(failure, BackPressure), (
                f"sending again on a stalled path returned {result}, not BackPressure"
            )
            in_a_row += 1
        time.sleep(0.05)
