"""The asyncio interface, under anyio's pytest plugin on asyncio, against both brokers."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import anyio
import pytest
from returns.pipeline import is_successful

from taktora_connector.adapters.aio import AsyncMqttConnector, AsyncReader, AsyncWriter
from taktora_connector.adapters.mqtt import MqttConnectorOptions, MqttQos, MqttRouting
from taktora_connector.conformance.brokers import EmbeddedBroker, MosquittoBroker
from taktora_connector.domain import (
    BackPressure,
    ChannelDescriptor,
    ConfigurationError,
    ConnectorDown,
    ConnectorTimeout,
    HealthKind,
    StackError,
)

from .conftest import unique_id

pytestmark = pytest.mark.anyio

Broker = EmbeddedBroker | MosquittoBroker


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def options(port: int, **changes: Any) -> MqttConnectorOptions:
    return MqttConnectorOptions(host="127.0.0.1", port=port, client_id=unique_id("aio"), **changes)


QOS1 = MqttQos.AT_LEAST_ONCE


async def up(connector: AsyncMqttConnector[Any], events: Any) -> None:
    while connector.health().kind is not HealthKind.UP:
        event = await events.next(timeout=10)
        assert event is not None, f"never Up: {connector.health()}"


async def channel_pair(
    connector: AsyncMqttConnector[Any], topic: str, qos: MqttQos = QOS1
) -> tuple[AsyncWriter[Any], AsyncReader[Any]]:
    reader = (
        await connector.create_reader(ChannelDescriptor("in", MqttRouting(topic=topic, qos=qos)))
    ).unwrap()
    writer = (
        await connector.create_writer(ChannelDescriptor("out", MqttRouting(topic=topic, qos=qos)))
    ).unwrap()
    return writer, reader


async def test_round_trip_with_awaited_delivery_and_async_for(broker: Broker) -> None:
    async with AsyncMqttConnector[dict[str, int]](options(broker.port)) as connector:
        with connector.health_events() as events:
            await up(connector, events)
        writer, reader = await channel_pair(connector, f"aio/{unique_id()}")
        for n in range(20):
            sent = (await writer.send({"n": n}, timeout=5)).unwrap()
            assert sent.sequence_number == n
        assert (await sent.delivery) == (await sent.delivery.delivered(timeout=5))
        assert is_successful(await sent.delivery)
        assert is_successful(await writer.flush(timeout=5))
        got = []
        async for envelope in reader:
            got.append(envelope.value["n"])
            if len(got) == 20:
                break
        assert got == list(range(20))
        assert (await reader.recv(timeout=0.05)).unwrap() is None


async def test_async_for_ends_when_the_connector_closes(broker: Broker) -> None:
    connector = AsyncMqttConnector[Any](options(broker.port))
    await connector.start()
    _, reader = await channel_pair(connector, f"aio/{unique_id()}")
    seen: list[Any] = []

    async def consume() -> None:
        async for envelope in reader:
            seen.append(envelope)

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await anyio.sleep(0)  # the consumer is parked in add_reader's wait
        assert is_successful(await connector.close())
    assert seen == []
    assert isinstance((await reader.recv()).failure(), ConnectorDown)


async def test_send_waits_for_room_instead_of_refusing(broker: Broker) -> None:
    # Not started: nothing drains the outbound bridge, so it stays full until start().
    connector = AsyncMqttConnector[Any](options(broker.port, outbound_capacity=4))
    try:
        writer, reader = await channel_pair(connector, f"aio/{unique_id()}")
        for n in range(4):
            writer.send_nowait({"n": n}).unwrap()
        refused = writer.send_nowait({"n": 99})
        assert isinstance(refused.failure(), BackPressure)
        timed_out = await writer.send({"n": 99}, timeout=0.05)
        assert isinstance(timed_out.failure(), ConnectorTimeout)
        waiting = asyncio.ensure_future(writer.send({"n": 4}))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not waiting.done()  # parked on the bridge, not refused
        await connector.start()
        assert (await waiting).unwrap().sequence_number == 4
        await writer.flush(timeout=10)
        got = [(await reader.recv(timeout=10)).unwrap() for _ in range(5)]
        assert [e.value["n"] for e in got if e is not None] == [0, 1, 2, 3, 4]
        assert (await reader.recv(timeout=0.1)).unwrap() is None  # 99 was never accepted
    finally:
        await connector.close()


async def test_bad_timeouts_and_closed_handles_are_failures(amqtt_broker: EmbeddedBroker) -> None:
    async with AsyncMqttConnector[Any](options(amqtt_broker.port)) as connector:
        writer, reader = await channel_pair(connector, f"aio/{unique_id()}")
        assert isinstance((await reader.recv(timeout=-1)).failure(), ConfigurationError)
        assert isinstance((await writer.send(1, timeout=-1)).failure(), ConfigurationError)
        for bad in (float("nan"), -0.5, "1"):
            assert isinstance((await reader.recv(timeout=bad)).failure(), ConfigurationError)  # type: ignore[arg-type]
            assert isinstance((await writer.flush(timeout=bad)).failure(), ConfigurationError)  # type: ignore[arg-type]
            assert isinstance((await connector.close(timeout=bad)).failure(), ConfigurationError)  # type: ignore[arg-type]
        assert (await reader.recv(timeout=0)).unwrap() is None
        waiting = asyncio.ensure_future(reader.recv())
        await asyncio.sleep(0)
        reader.close()
        assert isinstance((await waiting).failure(), ConnectorDown)
        writer.close()
        assert isinstance((await writer.send(1)).failure(), ConnectorDown)
        assert isinstance(writer.send_nowait(1).failure(), ConnectorDown)
    assert isinstance(
        (
            await connector.create_reader(ChannelDescriptor("late", MqttRouting(topic="x")))
        ).failure(),
        ConnectorDown,
    )


async def test_a_reader_error_from_the_sidecar_wakes_a_waiting_recv(
    amqtt_broker: EmbeddedBroker,
) -> None:
    async with AsyncMqttConnector[Any](options(amqtt_broker.port)) as connector:
        _, reader = await channel_pair(connector, f"aio/{unique_id()}")
        waiting = asyncio.ensure_future(reader.recv())
        await asyncio.sleep(0)
        # What the gateway does when the broker refuses the subscription, from its thread.
        error = StackError("broker refused the subscription")
        await asyncio.to_thread(reader._reader.fail, error)
        assert (await waiting).failure() is error
        assert (await reader.recv(timeout=0)).failure() is error  # it stays failed


async def test_health_events_stream_sees_up_and_ends_after_close(broker: Broker) -> None:
    connector = AsyncMqttConnector[Any](options(broker.port))
    events = connector.health_events()
    await connector.start()
    kinds = []
    async for event in events:
        kinds.append(event.to.kind)
        if event.to.kind is HealthKind.UP:
            break
    assert kinds[-1] is HealthKind.UP
    await connector.close()
    rest = [event.to.kind async for event in events]
    assert rest[-1] is HealthKind.DOWN
    assert await events.next(timeout=0) is None


async def test_cancelled_receives_lose_nothing_and_take_nothing_twice(broker: Broker) -> None:
    """Receives cancelled at many points (before waiting, while parked, just after the
    descriptor woke them) while a producer publishes: every message arrives once, in order."""
    total = 300
    rng = random.Random(11)
    async with AsyncMqttConnector[int](options(broker.port, inbound_capacity=total)) as connector:
        writer, reader = await channel_pair(connector, f"aio/{unique_id()}")

        async def produce() -> None:
            for n in range(total):
                (await writer.send(n)).unwrap()
                if n % 7 == 0:
                    await asyncio.sleep(0)

        producer = asyncio.ensure_future(produce())
        got: list[int] = []
        cancelled = 0
        while len(got) < total:
            task = asyncio.ensure_future(reader.recv(timeout=10))
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
            if rng.random() < 0.5 and task.cancel():
                try:
                    await task
                except asyncio.CancelledError:
                    cancelled += 1
                    continue
            envelope = (await task).unwrap()
            assert envelope is not None
            got.append(envelope.value)
        await producer
        assert got == list(range(total))
        assert cancelled > 50
        assert (await reader.recv(timeout=0.2)).unwrap() is None


async def test_cancelled_sends_accept_nothing_and_nothing_twice(broker: Broker) -> None:
    """Sends cancelled at many points while the bridge is full: what returned Success
    arrives exactly once, what was cancelled never arrives."""
    total = 300
    rng = random.Random(12)
    conn_options = options(broker.port, outbound_capacity=2, inbound_capacity=total)
    async with AsyncMqttConnector[int](conn_options) as connector:
        writer, reader = await channel_pair(connector, f"aio/{unique_id()}")
        accepted: list[int] = []
        cancelled = 0
        for n in range(total):
            task = asyncio.ensure_future(writer.send(n))
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)
            if rng.random() < 0.5 and task.cancel():
                try:
                    await task
                except asyncio.CancelledError:
                    cancelled += 1
                    continue
            (await task).unwrap()
            accepted.append(n)
        assert is_successful(await writer.flush(timeout=10))
        got = []
        while (envelope := (await reader.recv(timeout=0.5)).unwrap()) is not None:
            got.append(envelope.value)
        assert got == accepted
        assert cancelled > 20


async def test_anyio_cancel_scopes_and_task_groups_drive_it(amqtt_broker: EmbeddedBroker) -> None:
    async with AsyncMqttConnector[int](options(amqtt_broker.port)) as connector:
        writer, reader = await channel_pair(connector, f"aio/{unique_id()}")
        with anyio.move_on_after(0.05) as scope:
            await reader.recv()
        assert scope.cancelled_caught
        received: list[int] = []

        async def consume() -> None:
            async for envelope in reader:
                received.append(envelope.value)
                if len(received) == 50:
                    return

        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            for n in range(50):
                (await writer.send(n)).unwrap()
        assert received == list(range(50))


async def test_send_waiting_for_room_ends_when_the_connector_gives_up() -> None:
    """A Down connector drains nothing until started again: a waiting send must not
    wait forever for room that cannot come."""
    from taktora_connector.conformance.brokers import free_port

    dead = options(
        free_port(),  # nothing listens there
        outbound_capacity=2,
        reconnect_attempt_ceiling=1,
        reconnect_initial_backoff=0.01,
        reconnect_max_backoff=0.01,
    )
    connector = AsyncMqttConnector[Any](dead)
    try:
        writer = (
            await connector.create_writer(ChannelDescriptor("out", MqttRouting(topic="t")))
        ).unwrap()
        writer.send_nowait(1).unwrap()
        writer.send_nowait(2).unwrap()
        waiting = asyncio.ensure_future(writer.send(3))  # no timeout
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting.done()
        await connector.start()
        refused = await asyncio.wait_for(waiting, 30)  # a guard against a hang, not a timing
        assert isinstance(refused.failure(), ConnectorDown)
        assert "down" in str(refused.failure())
        assert connector.health().kind is HealthKind.DOWN
        # Sent while already Down: refused at once, not queued behind a dead bridge.
        assert isinstance((await writer.send(4)).failure(), ConnectorDown)
    finally:
        await connector.close(timeout=0.1)


async def test_a_payload_that_does_not_decode_comes_in_order_and_the_reader_carries_on(
    amqtt_broker: EmbeddedBroker,
) -> None:
    from taktora_connector.adapters.codecs import BytesCodec
    from taktora_connector.domain import CodecError

    topic = f"aio/{unique_id()}"
    async with (
        AsyncMqttConnector[Any](options(amqtt_broker.port)) as json_side,
        AsyncMqttConnector[bytes](options(amqtt_broker.port), BytesCodec()) as raw_side,
    ):
        routing = MqttRouting(topic=topic, qos=QOS1)
        reader = (await json_side.create_reader(ChannelDescriptor("in", routing))).unwrap()
        writer = (await raw_side.create_writer(ChannelDescriptor("out", routing))).unwrap()
        # Subscriptions settle asynchronously: probe until the reader hears.
        while (await reader.recv(timeout=0)).unwrap() is None:
            await (await writer.send(b'"probe"')).unwrap().delivery.delivered(5)
            if (await reader.recv(timeout=0.1)).unwrap() is not None:
                break
        while (await reader.recv(timeout=0.2)).unwrap() is not None:
            pass
        for payload in (b"1", b"not json", b"2"):
            (await writer.send(payload)).unwrap()
        await writer.flush(5)
        first = await reader.__anext__()
        with pytest.raises(CodecError):
            await reader.__anext__()
        last = await reader.__anext__()
        assert (first.value, last.value) == (1, 2)
        assert reader.decode_failures == 1
