"""The asyncio interface against aiomqtt, each through its own async API.

Same shape as ``contenders``: every function runs one measurement against a
broker on 127.0.0.1:``port`` and returns seconds. Outbound runs end when a raw
paho subscriber has seen every message; inbound runs end when the contender has
received every message a raw paho publisher sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from returns.pipeline import is_successful

from taktora_connector.adapters.aio import AsyncMqttConnector
from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.domain import ChannelDescriptor, HealthKind

from . import contenders as c


async def _up(connector: AsyncMqttConnector[bytes]) -> None:
    with connector.health_events() as events:
        while connector.health().kind is not HealthKind.UP:
            if await events.next(timeout=10) is None:
                raise RuntimeError(f"connector not up: {connector.health()}")


def out_connector_asyncio(port: int, qos: int, payload: bytes, count: int) -> float:
    topic = f"bench/aio-out/{next(c._ids)}"
    sub = c.PahoSubscriber(port, topic, qos, count)

    async def publish_all() -> float:
        options = c.connector_options(port, outbound_capacity=1024)
        async with AsyncMqttConnector[bytes](options, BytesCodec()) as connector:
            await _up(connector)
            routing = MqttRouting(topic=topic, qos=MqttQos(qos))
            writer = (await connector.create_writer(ChannelDescriptor("out", routing))).unwrap()
            send = writer.send
            started = time.perf_counter()
            for _ in range(count):
                if not is_successful(await send(payload)):
                    raise RuntimeError("send failed")
            await asyncio.to_thread(sub.done.wait, c.TIMEOUT)
            return time.perf_counter() - started

    try:
        elapsed = asyncio.run(publish_all())
        if not sub.done.is_set():
            raise RuntimeError(f"subscriber saw {sub.count} of {count}")
        return elapsed
    finally:
        sub.close()


def in_connector_asyncio(port: int, qos: int, payload: bytes, count: int) -> float:
    topic = f"bench/aio-in/{next(c._ids)}"
    ready = threading.Event()
    finished = threading.Event()

    async def receive_all() -> None:
        options = c.connector_options(port, inbound_capacity=count + 10)
        async with AsyncMqttConnector[bytes](options, BytesCodec()) as connector:
            routing = MqttRouting(topic=topic, qos=MqttQos(qos))
            reader = (await connector.create_reader(ChannelDescriptor("in", routing))).unwrap()
            await _up(connector)
            await asyncio.sleep(0.2)  # the SUBSCRIBE reaches the broker
            ready.set()
            got = 0
            async for _ in reader:
                got += 1
                if got >= count:
                    finished.set()
                    return

    receiver = threading.Thread(target=lambda: asyncio.run(receive_all()), daemon=True)
    receiver.start()
    c._must(ready.wait(10))
    try:
        return c._inbound(
            port, qos, payload, count, topic, lambda: c._must(finished.wait(c.TIMEOUT))
        )
    finally:
        receiver.join(c.TIMEOUT)


OUTBOUND = {"connector (asyncio)": out_connector_asyncio, "aiomqtt": c.out_aiomqtt}
INBOUND = {"connector (asyncio)": in_connector_asyncio, "aiomqtt": c.in_aiomqtt}


# -- inbound from a backlog: the receiver, not a live publisher, sets the pace ---------------
#
# A live paho publisher tops out near the receivers' own rate at QoS 1 on a shared two-core
# machine, so both contenders would measure the publisher. Here the broker first queues
# ``count`` QoS 1 messages for an offline persistent session (clean_session=False), and the
# run times how fast the contender, reconnecting, drains them.


def _backlog(port: int, payload: bytes, count: int, topic: str) -> None:
    c.paho_flood(port, topic, 1, payload, count)


def in_backlog_connector_asyncio(port: int, qos: int, payload: bytes, count: int) -> float:
    topic = f"bench/aio-backlog/{next(c._ids)}"
    options = c.connector_options(port, clean_session=False, inbound_capacity=count + 10)
    routing = MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE)

    async def subscribe() -> None:
        async with AsyncMqttConnector[bytes](options, BytesCodec()) as connector:
            await connector.create_reader(ChannelDescriptor("in", routing))
            await _up(connector)
            await asyncio.sleep(0.2)  # the SUBSCRIBE reaches the broker

    async def drain() -> float:
        started = time.perf_counter()
        connector = AsyncMqttConnector[bytes](options, BytesCodec())
        reader = (await connector.create_reader(ChannelDescriptor("in", routing))).unwrap()
        async with connector:
            got = 0
            async for _ in reader:
                got += 1
                if got >= count:
                    return time.perf_counter() - started
        raise RuntimeError(f"received {got} of {count}")

    asyncio.run(subscribe())
    _backlog(port, payload, count, topic)
    return asyncio.run(asyncio.wait_for(drain(), c.TIMEOUT))


def in_backlog_aiomqtt(port: int, qos: int, payload: bytes, count: int) -> float:
    import aiomqtt

    topic = f"bench/aio-backlog/{next(c._ids)}"
    identifier = c.client_id("aio-backlog")

    def client() -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=identifier,
            clean_session=False,
            max_queued_incoming_messages=0,
        )

    async def subscribe() -> None:
        async with client() as subscriber:
            await subscriber.subscribe(topic, qos=1)

    async def drain() -> float:
        started = time.perf_counter()
        async with client() as receiver:
            got = 0
            async for _ in receiver.messages:
                got += 1
                if got >= count:
                    return time.perf_counter() - started
        raise RuntimeError(f"received {got} of {count}")

    asyncio.run(subscribe())
    _backlog(port, payload, count, topic)
    return asyncio.run(asyncio.wait_for(drain(), c.TIMEOUT))


INBOUND_BACKLOG = {
    "connector (asyncio)": in_backlog_connector_asyncio,
    "aiomqtt": in_backlog_aiomqtt,
}


def measure(port: int, count: int, repeats: int) -> dict[str, Any]:
    """Median msg/s of both contenders, 64 B: outbound and live inbound at QoS 0 and 1,
    inbound from a backlog at QoS 1."""
    from .run import median_rates

    payload = b"x" * 64
    results: dict[str, Any] = {}
    for qos in (0, 1):
        results[f"outbound QoS {qos}"] = median_rates(
            OUTBOUND, (port, qos, payload), count, repeats
        )
        results[f"inbound QoS {qos}"] = median_rates(INBOUND, (port, qos, payload), count, repeats)
    results["inbound QoS 1, backlog"] = median_rates(
        INBOUND_BACKLOG, (port, 1, payload), count, repeats
    )
    return results


def targets(results: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(target, measured, threshold): the asyncio interface / aiomqtt, at least 3x."""
    found = []
    for case, rates in results.get("mosquitto", {}).get("asyncio", {}).items():
        found.append(
            (
                f"asyncio {case}: connector / aiomqtt",
                rates["connector (asyncio)"] / rates["aiomqtt"],
                3.0,
            )
        )
    return found


def markdown(results: dict[str, Any]) -> str:
    measured = results.get("mosquitto", {}).get("asyncio")
    if not measured:
        return ""
    rows = "\n".join(
        f"| {case} | {r['connector (asyncio)']:,.0f} | {r['aiomqtt']:,.0f} | "
        f"{r['connector (asyncio)'] / r['aiomqtt']:.2f} |"
        for case, r in measured.items()
    )
    return (
        "\n## asyncio: the connector's asyncio interface against aiomqtt (mosquitto, 64 B, msg/s)\n\n"
        "| case | connector (asyncio) | aiomqtt | ratio |\n|---|---|---|---|\n" + rows + "\n"
    )
