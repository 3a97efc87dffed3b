"""An asyncio reader made under one ``asyncio.run`` can be read under the next; two loops
waiting on it at once get a Failure that says so (an outsider hit 'Event loop is closed')."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from taktora_connector.adapters.aio import AsyncMqttConnector, AsyncReader
from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttConnectorOptions, MqttQos, MqttRouting
from taktora_connector.conformance.brokers import EmbeddedBroker
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
    ConnectorDown,
    HealthKind,
)

from .conftest import unique_id


def _connector(port: int) -> AsyncMqttConnector[bytes]:
    options = MqttConnectorOptions(host="127.0.0.1", port=port, client_id=unique_id("loops"))
    return AsyncMqttConnector[bytes](options, BytesCodec())


async def _open(connector: AsyncMqttConnector[bytes], topic: str) -> tuple[Any, AsyncReader[bytes]]:
    (await connector.start()).unwrap()
    while connector.health().kind is not HealthKind.UP:
        await asyncio.sleep(0.01)
    routing = MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE)
    reader = (await connector.create_reader(ChannelDescriptor("in", routing))).unwrap()
    writer = (await connector.create_writer(ChannelDescriptor("out", routing))).unwrap()
    return writer, reader


def test_a_reader_follows_the_loop_that_awaits_it(amqtt_broker: EmbeddedBroker) -> None:
    connector = _connector(amqtt_broker.port)
    writer, reader = asyncio.run(_open(connector, f"loops/{unique_id()}"))

    async def second_run() -> list[bytes]:
        got = []
        for value in (b"one", b"two"):
            (await (await writer.send(value)).unwrap().delivery.delivered(10)).unwrap()
            envelope = (await reader.recv(10)).unwrap()  # waits on this loop, not the first
            assert envelope is not None
            got.append(envelope.value)
        return got

    async def third_run() -> list[bytes]:
        (await writer.send(b"three")).unwrap()
        async for envelope in reader:
            return [envelope.value]
        return []

    try:
        assert asyncio.run(second_run()) == [b"one", b"two"]
        assert asyncio.run(third_run()) == [b"three"]
    finally:
        asyncio.run(connector.close())


def test_two_loops_waiting_on_one_reader_at_once_is_refused(amqtt_broker: EmbeddedBroker) -> None:
    connector = _connector(amqtt_broker.port)
    _, reader = asyncio.run(_open(connector, f"loops/{unique_id()}"))
    waiting = threading.Event()
    first: list[Any] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def wait_long() -> None:
        loops.append(asyncio.get_running_loop())
        task = asyncio.ensure_future(reader.recv(30))
        while not reader._waiters:  # until the task is parked on this loop's add_reader
            await asyncio.sleep(0.01)
        waiting.set()
        first.append(await task)

    other = threading.Thread(target=lambda: asyncio.run(wait_long()))
    other.start()
    try:
        assert waiting.wait(10)
        refused = asyncio.run(reader.recv(1))
        assert isinstance(refused.failure(), ConfigurationError)
        assert "another event loop" in str(refused.failure())
    finally:
        loops[0].call_soon_threadsafe(reader.close)  # on its loop: ends the other wait
        other.join(10)
        asyncio.run(connector.close())
    assert not other.is_alive()
    # The first loop's wait ended with the reader's close, empty-handed.
    assert len(first) == 1 and isinstance(first[0].failure(), ConnectorDown)
