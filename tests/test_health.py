"""The health table (all 16 ordered pairs), the broadcaster and the derived health."""

from __future__ import annotations

import itertools

import pytest

from taktora_connector.adapters.health import HealthBroadcaster
from taktora_connector.adapters.mqtt.health_control import (
    CONNECTION_LOST,
    HealthController,
    Phase,
    path,
)
from taktora_connector.domain import (
    LEGAL_TRANSITIONS,
    Connecting,
    ConnectorHealth,
    Degraded,
    Down,
    HealthKind,
    IllegalTransition,
    Up,
    is_legal,
    transition,
)

C, U, G, D = HealthKind.CONNECTING, HealthKind.UP, HealthKind.DEGRADED, HealthKind.DOWN
EXPECTED_LEGAL = {(C, U), (C, G), (C, D), (U, G), (U, D), (G, U), (G, C), (G, D), (D, C)}
SAMPLE: dict[HealthKind, ConnectorHealth] = {
    C: Connecting(1),
    U: Up(),
    G: Degraded("why"),
    D: Down("gone", 2),
}


def test_table_is_exactly_the_nine_edges_of_arch_0012() -> None:
    assert set(LEGAL_TRANSITIONS) == EXPECTED_LEGAL
    assert len(LEGAL_TRANSITIONS) == 9


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(HealthKind, repeat=2)))
def test_every_ordered_pair(src: HealthKind, dst: HealthKind) -> None:
    broadcaster = HealthBroadcaster(SAMPLE[src])
    sub = broadcaster.subscribe()
    if (src, dst) in EXPECTED_LEGAL:
        assert is_legal(src, dst)
        event = broadcaster.move(SAMPLE[dst])
        assert (event.from_, event.to) == (SAMPLE[src], SAMPLE[dst])
        assert broadcaster.state == SAMPLE[dst]
        assert sub.try_next() == event
        assert sub.try_next() is None
    else:
        assert not is_legal(src, dst)
        with pytest.raises(IllegalTransition) as caught:
            broadcaster.move(SAMPLE[dst])
        assert src.value in str(caught.value)
        assert broadcaster.state == SAMPLE[src]  # unchanged
        assert sub.try_next() is None  # nothing emitted


def test_same_kind_with_other_details_is_illegal() -> None:
    with pytest.raises(IllegalTransition):
        transition(Degraded("a"), Degraded("b"), 0)


def test_each_subscription_is_independent_and_sees_only_later_events() -> None:
    broadcaster = HealthBroadcaster(Connecting(0))
    early = broadcaster.subscribe()
    first = broadcaster.move(Up())
    late = broadcaster.subscribe()
    second = broadcaster.move(Degraded("x"))
    assert [early.try_next(), early.try_next(), early.try_next()] == [first, second, None]
    assert [late.try_next(), late.try_next()] == [second, None]
    assert second.at >= first.at


def test_transition_without_subscribers_succeeds() -> None:
    broadcaster = HealthBroadcaster(Connecting(0))
    broadcaster.move(Up())
    assert broadcaster.state == Up()


def test_closed_subscription_stops_iteration_after_queued_events() -> None:
    broadcaster = HealthBroadcaster(Connecting(0))
    sub = broadcaster.subscribe()
    event = broadcaster.move(Up())
    broadcaster.close_all()
    assert list(sub) == [event]
    assert sub.next(timeout=0.01) is None


def test_path_from_up_to_connecting_broadcasts_the_loss() -> None:
    steps = path(Up(), Connecting(5))
    assert steps == [Degraded(CONNECTION_LOST), Connecting(5)]
    assert [s.kind for s in path(Down("x", 1), Up())] == [C, U]
    assert path(Up(), Up()) == []


def kinds(controller_events: list[object]) -> list[HealthKind]:
    return [e.to.kind for e in controller_events]  # type: ignore[attr-defined]


def make_controller(threshold: int = 1) -> tuple[HealthController, HealthBroadcaster]:
    broadcaster = HealthBroadcaster(Connecting(0))
    return HealthController(broadcaster, threshold), broadcaster


def drain(broadcaster_sub: object) -> list[object]:
    events = []
    while (event := broadcaster_sub.try_next()) is not None:  # type: ignore[attr-defined]
        events.append(event)
    return events


def test_connection_loss_goes_up_degraded_connecting() -> None:
    controller, broadcaster = make_controller()
    sub = broadcaster.subscribe()
    controller.set_phase(Phase.CONNECTED)
    controller.set_phase(Phase.CONNECTING)
    events = drain(sub)
    assert kinds(events) == [U, G, C]
    assert events[1].to == Degraded(CONNECTION_LOST)  # type: ignore[attr-defined]


def test_outbound_latch_emits_once_and_rearms_on_drain() -> None:
    controller, broadcaster = make_controller()
    controller.set_phase(Phase.CONNECTED)
    sub = broadcaster.subscribe()
    assert controller.trip_outbound() is True
    assert controller.trip_outbound() is False  # latched: no second event
    controller.outbound_drained()
    assert controller.trip_outbound() is True  # re-armed after Up
    events = drain(sub)
    assert kinds(events) == [G, U, G]
    assert events[0].to == Degraded("outbound backpressure")  # type: ignore[attr-defined]


@pytest.mark.parametrize("threshold", [1, 3])
def test_inbound_latch_trips_at_threshold_once_and_rearms(threshold: int) -> None:
    controller, broadcaster = make_controller(threshold)
    controller.set_phase(Phase.CONNECTED)
    sub = broadcaster.subscribe()
    for _ in range(threshold - 1):
        controller.inbound_dropped("r")
    assert drain(sub) == []
    for _ in range(5):
        controller.inbound_dropped("r")
    events = drain(sub)
    assert len(events) == 1
    assert events[0].to == Degraded(f"dropped {threshold} inbound frames")  # type: ignore[attr-defined]
    controller.inbound_drained("r")
    assert kinds(drain(sub)) == [U]
    for _ in range(threshold):
        controller.inbound_dropped("r")
    total = threshold - 1 + 5 + threshold
    assert [e.to for e in drain(sub)] == [Degraded(f"dropped {total} inbound frames")]  # type: ignore[attr-defined]
    assert controller.inbound_drops == total


def test_inbound_latch_waits_for_every_overflowed_reader() -> None:
    controller, broadcaster = make_controller()
    controller.set_phase(Phase.CONNECTED)
    controller.inbound_dropped("a")
    controller.inbound_dropped("b")
    controller.inbound_drained("a")
    assert broadcaster.state.kind is G
    controller.inbound_drained("b")
    assert broadcaster.state.kind is U


def test_degraded_while_disconnected_returns_to_connecting_not_up() -> None:
    controller, broadcaster = make_controller()
    controller.trip_outbound()
    assert broadcaster.state.kind is G
    controller.outbound_drained()
    assert broadcaster.state.kind is C


def test_down_is_terminal_until_reconnecting() -> None:
    controller, broadcaster = make_controller()
    controller.set_phase(Phase.DOWN, "authentication rejected: Not authorized")
    state = broadcaster.state
    assert isinstance(state, Down)
    assert state.reason == "authentication rejected: Not authorized"
    controller.trip_outbound()
    assert broadcaster.state.kind is D
    controller.set_phase(Phase.CONNECTING)
    assert broadcaster.state.kind is G  # the latch still holds


def test_a_drop_counted_after_the_reader_already_drained_still_ends_degraded() -> None:
    """The sidecar counts a drop after ``deliver_many`` returns; the application may
    empty the queue in between, so the drained signal comes before the drop is known.
    ``settle_drop`` gives it again: health returns to Up (it stayed Degraded before)."""
    from taktora_connector.adapters.codecs import BytesCodec
    from taktora_connector.adapters.mqtt import MqttRouting
    from taktora_connector.adapters.mqtt.channels import MqttReader
    from taktora_connector.adapters.mqtt.records import Inbound
    from taktora_connector.domain import ChannelDescriptor, HealthKind

    broadcaster = HealthBroadcaster(Connecting(0))
    controller = HealthController(broadcaster, inbound_drop_threshold=1)
    controller.set_phase(Phase.CONNECTED)
    reader: MqttReader[bytes] = MqttReader(
        ChannelDescriptor("in", MqttRouting(topic="t")), BytesCodec(), 2, controller, lambda r: None
    )
    items = [Inbound(b"%d" % n, "t", 0, False, 0, None) for n in range(3)]
    assert reader.deliver_many(items) == 1  # two fit, one dropped
    while reader.try_recv().unwrap() is not None:  # the application empties it first
        pass
    controller.inbound_dropped(reader, 1)  # ... and then the sidecar counts the drop
    before = broadcaster.state.kind
    reader.settle_drop()
    assert (before, broadcaster.state.kind) == (HealthKind.DEGRADED, HealthKind.UP)
