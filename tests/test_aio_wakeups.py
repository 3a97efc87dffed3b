"""The sidecar-side hooks the asyncio interface waits on, without a broker."""

from __future__ import annotations

from taktora_connector.adapters.health import HealthBroadcaster
from taktora_connector.adapters.mqtt.bridge import OutboundBridge
from taktora_connector.adapters.mqtt.delivery import Delivery
from taktora_connector.domain import Connecting, ConnectorDown, Up


def test_when_room_fires_once_at_half_full_and_on_close() -> None:
    bridge: OutboundBridge[int] = OutboundBridge(4, lambda: None)
    calls: list[str] = []
    assert not bridge.when_room(lambda: calls.append("early"))  # room now: no call
    for n in range(4):
        bridge.offer(n)
    assert bridge.when_room(lambda: calls.append("a"))
    bridge.pop()  # 3 left: more than half
    assert calls == []
    bridge.pop()  # 2 left: half
    assert calls == ["a"]
    bridge.pop()
    assert calls == ["a"]  # one-shot
    bridge.offer(9)
    bridge.offer(9)
    bridge.offer(9)
    assert bridge.when_room(lambda: calls.append("b"))
    bridge.close()
    assert calls == ["a", "b"]
    assert not bridge.when_room(lambda: calls.append("closed"))


def test_delivery_on_done_before_and_after_completion() -> None:
    calls: list[str] = []
    pending = Delivery()
    pending.on_done(lambda: calls.append("pending"))
    assert calls == []
    pending.fail(ConnectorDown("closed"))
    assert calls == ["pending"]
    done = Delivery()
    done.succeed()
    done.on_done(lambda: calls.append("done"))
    assert calls == ["pending", "done"]


def test_health_subscription_calls_on_push_for_events_and_the_end() -> None:
    broadcaster = HealthBroadcaster(Connecting(0))
    subscription = broadcaster.subscribe()
    pushed: list[bool] = []
    subscription.on_push = lambda: pushed.append(subscription.ended)
    broadcaster.move(Up())
    broadcaster.close_all()
    assert pushed == [False, True]
    assert subscription.try_next() is not None
