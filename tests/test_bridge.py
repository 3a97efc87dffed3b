"""Bridge accounting without a broker: bounds, drops, wake-ups and readiness."""

from __future__ import annotations

import os
import select
import threading
import time
from typing import Any

from taktora_connector.adapters.mqtt.bridge import InboundQueue, Offer, OutboundBridge
from taktora_connector.adapters.mqtt.delivery import Delivery
from taktora_connector.adapters.mqtt.records import Inbound
from taktora_connector.domain import SENT, ConnectorDown, ConnectorTimeout, Dropped


def test_outbound_bridge_refuses_when_full_and_after_close() -> None:
    wakes: list[int] = []
    bridge: OutboundBridge[int] = OutboundBridge(2, lambda: wakes.append(1))
    assert [bridge.offer(1), bridge.offer(2), bridge.offer(3)] == [
        Offer.ACCEPTED,
        Offer.ACCEPTED,
        Offer.FULL,
    ]
    assert len(wakes) == 2
    assert bridge.peek() == 1
    assert bridge.pop() == 1
    assert bridge.offer(4) is Offer.ACCEPTED
    assert bridge.close() == [2, 4]
    assert bridge.offer(5) is Offer.CLOSED
    assert len(bridge) == 0


def test_inbound_queue_drops_the_newest_and_counts_cumulatively() -> None:
    drained: list[int] = []
    queue: InboundQueue[str] = InboundQueue(2, lambda: drained.append(1))
    outcomes = [queue.offer(x) for x in "abcde"]
    assert outcomes == [SENT, SENT, Dropped(1), Dropped(2), Dropped(3)]
    assert queue.dropped == 3
    assert queue.take(0) == "a"
    assert drained == []
    assert queue.take(0) == "b"  # now empty after an overflow: drained once
    assert drained == [1]
    assert queue.take(0) is None
    assert queue.offer("f") is SENT
    assert queue.take(0) == "f"
    assert drained == [1]  # no overflow since: no second notice


def test_inbound_queue_fileno_is_readable_exactly_while_items_wait() -> None:
    queue: InboundQueue[int] = InboundQueue(4, lambda: None)
    queue.offer(1)
    fd = queue.fileno()  # made after an item arrived: already readable
    assert select.select([fd], [], [], 0)[0] == [fd]
    queue.offer(2)
    assert queue.take(0) == 1
    assert select.select([fd], [], [], 0)[0] == [fd]
    assert queue.take(0) == 2
    assert select.select([fd], [], [], 0)[0] == []
    queue.offer(3)
    assert select.select([fd], [], [], 0)[0] == [fd]
    queue.close()
    try:
        os.fstat(fd)
    except OSError:
        pass
    else:  # pragma: no cover - the descriptor must be released
        raise AssertionError("fileno still open after close")


def test_blocking_take_wakes_on_offer_and_on_close() -> None:
    queue: InboundQueue[int] = InboundQueue(4, lambda: None)
    got: list[int | None] = []
    waiter = threading.Thread(target=lambda: got.append(queue.take(5)))
    waiter.start()
    queue.offer(7)
    waiter.join(5)
    assert got == [7]
    waiter = threading.Thread(target=lambda: got.append(queue.take(5)))
    waiter.start()
    queue.close()
    waiter.join(5)
    assert got == [7, None]
    assert queue.take(None) is None  # closed: never blocks


def test_take_times_out() -> None:
    queue: InboundQueue[int] = InboundQueue(1, lambda: None)
    assert queue.take(0.01) is None


def test_delivery_completes_once_and_wakes_waiters() -> None:
    delivery = Delivery()
    assert not delivery.done
    result = delivery.wait(0.01)
    assert isinstance(result.failure(), ConnectorTimeout)
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(delivery.wait(5)))
    waiter.start()
    delivery.succeed()
    delivery.fail(ConnectorDown("late"))  # ignored: already complete
    waiter.join(5)
    assert delivery.result is not None
    assert results == [delivery.result]
    assert delivery.wait().unwrap() is None


def test_interrupt_wakes_every_waiter_and_offers_wake_one_each() -> None:
    queue: InboundQueue[int] = InboundQueue(8, lambda: None)
    got: list[int | None] = []
    waiters = [threading.Thread(target=lambda: got.append(queue.take(5))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    deadline = time.monotonic() + 5
    while len(queue._waiters) < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    queue.offer(1)
    queue.offer(2)
    queue.interrupt()
    for waiter in waiters:
        waiter.join(5)
    assert not any(w.is_alive() for w in waiters)
    assert sorted(x for x in got if x is not None) == [1, 2]
    assert got.count(None) == 1  # the third was woken by the interrupt, with nothing to take


def test_a_timed_take_waits_its_whole_timeout_when_another_reader_wins() -> None:
    queue: InboundQueue[int] = InboundQueue(8, lambda: None)
    started = time.monotonic()
    assert queue.take(0.05) is None
    assert time.monotonic() - started >= 0.045


def test_take_many_takes_a_batch_under_one_lock_and_unget_puts_it_back_in_order() -> None:
    queue: InboundQueue[int] = InboundQueue(10, lambda: None)
    assert queue.offer_many([1, 2, 3, 4, 5]) == 0
    fd = queue.fileno()
    assert queue.take_many(3, 0) == [1, 2, 3]
    assert queue.take_many(10, 0) == [4, 5]
    assert not select.select([fd], [], [], 0)[0]  # nothing waits: not readable
    queue.unget([4, 5])
    assert select.select([fd], [], [], 0)[0]  # readable again
    assert queue.take(0) == 4
    assert queue.take_many(10, 0) == [5]
    assert queue.take_many(10, 0) == []


def test_offer_many_drops_the_newest_beyond_capacity_and_counts_them() -> None:
    queue: InboundQueue[int] = InboundQueue(3, lambda: None)
    assert queue.offer_many([1, 2]) == 0
    assert queue.offer_many([3, 4, 5]) == 2
    assert queue.dropped == 2
    assert queue.take_many(10, 0) == [1, 2, 3]


def test_leaving_an_iteration_early_loses_no_message() -> None:
    from taktora_connector.adapters.codecs import BytesCodec
    from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
    from taktora_connector.domain import ChannelDescriptor

    conn: MqttConnector[bytes] = MqttConnector(
        MqttConnectorOptions(client_id="iterate"), BytesCodec()
    )
    try:
        reader: Any = conn.create_reader(ChannelDescriptor("r", MqttRouting(topic="a/t"))).unwrap()
        reader.deliver_many([Inbound(bytes([n]), "a/t", 0, False, 0, None) for n in range(5)])
        for envelope in reader:  # takes all five at once, hands out two
            if envelope.payload == b"\x01":
                break
        rest = [reader.try_recv().unwrap().payload for _ in range(3)]
        assert rest == [b"\x02", b"\x03", b"\x04"]
        assert reader.try_recv().unwrap() is None
    finally:
        conn.close(0)


def test_the_bytes_codec_shortcut_is_only_for_the_bytes_codec_itself() -> None:
    """A BytesCodec reader hands out the payload without calling decode (it is the
    identity); a subclass that decodes differently is still called."""
    from returns.result import Result, Success

    from taktora_connector.adapters.codecs import BytesCodec
    from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
    from taktora_connector.domain import ChannelDescriptor, CodecError

    class Shouting(BytesCodec):
        def decode(self, data: bytes) -> Result[bytes, CodecError]:
            return Success(data.upper())

    for codec, expected in ((BytesCodec(), b"quiet"), (Shouting(), b"QUIET")):
        conn: MqttConnector[bytes] = MqttConnector(MqttConnectorOptions(client_id="id"), codec)
        try:
            reader: Any = conn.create_reader(ChannelDescriptor("r", MqttRouting(topic="a/t")))
            reader = reader.unwrap()
            reader.deliver_many([Inbound(b"quiet", "a/t", 1, True, 7, None)])
            envelope = reader.try_recv().unwrap()
            assert (envelope.value, envelope.payload) == (expected, b"quiet")
            assert (envelope.routing.topic, int(envelope.routing.qos)) == ("a/t", 1)
            assert (envelope.routing.retained, envelope.timestamp_ns) == (True, 7)
        finally:
            conn.close(0)
