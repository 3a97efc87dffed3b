"""The asyncio interface against aiomqtt, each through its own async API.

Same shape as ``contenders``: every function runs one measurement against a
broker on 127.0.0.1:``port`` and returns seconds. The broker is the mosquitto
the runner starts with ``queue_qos0_messages true`` (an offline persistent
session keeps QoS 0 messages too). Three kinds of case, 64 B payloads:

- **outbound**: the contender publishes ``count`` messages; the run ends when a
  raw paho subscriber has seen every one.
- **inbound, live**: the contender is subscribed (clean session) when a bare
  socket publisher in a process of its own (``capacity.PublisherProcess``: no
  GIL shared with the receiver) publishes ``count`` messages as fast as the
  broker takes them, several times faster than any receiver here, so the
  receiver, not the publisher, sets the pace. From the publisher's go to the
  receiver's ``count``-th message.
- **inbound, backlog**: the broker first holds ``count`` messages (and the bare
  publisher's QoS 1 fence) for an offline persistent session
  (``capacity.prepare_backlog``); from the contender's connect to the last one.

Beside the two contenders, a **bare socket** receiver (``capacity.read_bare``,
the smallest PUBLISH parser) runs every inbound case: what the broker delivers
to a receiver that does almost nothing, the ceiling on this machine.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from returns.pipeline import is_successful

from taktora_connector.adapters.aio import AsyncMqttConnector
from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.domain import ChannelDescriptor, HealthKind

from . import capacity as cap
from . import contenders as c

CONNECTOR = "connector (asyncio)"
AIOMQTT = "aiomqtt"
BARE = "bare socket"


async def _up(connector: AsyncMqttConnector[bytes]) -> None:
    with connector.health_events() as events:
        while connector.health().kind is not HealthKind.UP:
            if await events.next(timeout=10) is None:
                raise RuntimeError(f"connector not up: {connector.health()}")


# -- outbound: the contender publishes; a raw paho subscriber counts -------------------------


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


OUTBOUND = {CONNECTOR: out_connector_asyncio, AIOMQTT: c.out_aiomqtt}


# -- inbound, live: a bare publisher in its own process, faster than any receiver ------------
#
# A receiver runs on a thread of this process: it subscribes, sets ``ready``, and sets
# ``finished`` at its ``count``-th message (before it closes, which is not timed).

Receive = Callable[[int, int, int, str, threading.Event, threading.Event], None]

#: The live publisher's own msg/s, one per run (``measure`` takes their median per case).
publisher_rates: list[float] = []


def _live(receive: Receive, port: int, qos: int, payload: bytes, count: int) -> float:
    topic = f"bench/aio-live/{next(c._ids)}"
    publisher = cap.PublisherProcess(port, qos, payload, count, topic)
    ready = threading.Event()
    finished = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            receive(port, qos, count, topic, ready, finished)
        except BaseException as error:
            failures.append(error)
        finally:
            ready.set()
            finished.set()

    receiver = threading.Thread(target=run, daemon=True)
    receiver.start()
    try:
        c._must(ready.wait(30))
        if failures:
            raise failures[0]
        started = time.perf_counter()
        publisher.go()
        c._must(finished.wait(c.TIMEOUT))
        elapsed = time.perf_counter() - started
        receiver.join(c.TIMEOUT)
        if failures:
            raise failures[0]
        return elapsed
    finally:
        publisher_rates.append(publisher.close())
        receiver.join(c.TIMEOUT)


def _receive_connector(
    port: int, qos: int, count: int, topic: str, ready: threading.Event, finished: threading.Event
) -> None:
    async def run() -> None:
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
            raise RuntimeError(f"received {got} of {count}")

    asyncio.run(asyncio.wait_for(run(), c.TIMEOUT))


def _receive_aiomqtt(
    port: int, qos: int, count: int, topic: str, ready: threading.Event, finished: threading.Event
) -> None:
    import aiomqtt

    async def run() -> None:
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier=c.client_id("aio"), max_queued_incoming_messages=0
        ) as client:
            await client.subscribe(topic, qos=qos)  # returns once the SUBACK came
            ready.set()
            got = 0
            async for _ in client.messages:
                got += 1
                if got >= count:
                    finished.set()
                    return
            raise RuntimeError(f"received {got} of {count}")

    asyncio.run(asyncio.wait_for(run(), c.TIMEOUT))


def _receive_bare(
    port: int, qos: int, count: int, topic: str, ready: threading.Event, finished: threading.Event
) -> None:
    client = cap.BareClient(port, c.client_id("bare-sub"))
    try:
        client.subscribe(topic, qos)  # returns once the SUBACK came
        ready.set()
        cap.read_bare(client, count)
        finished.set()
    finally:
        client.close()


def _live_case(receive: Receive) -> Callable[[int, int, bytes, int], float]:
    def run(port: int, qos: int, payload: bytes, count: int) -> float:
        return _live(receive, port, qos, payload, count)

    return run


LIVE = {
    CONNECTOR: _live_case(_receive_connector),
    AIOMQTT: _live_case(_receive_aiomqtt),
    BARE: _live_case(_receive_bare),
}


# -- inbound from a backlog: the broker holds the messages before the receiver connects ------

Drain = Callable[[int, int, int, str, str], float]


def _drain_connector(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    options = c.connector_options(
        port, client_id=ident, clean_session=False, inbound_capacity=count + 10
    )
    routing = MqttRouting(topic=topic, qos=MqttQos(qos))

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

    return asyncio.run(asyncio.wait_for(drain(), c.TIMEOUT))


def _drain_aiomqtt(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    import aiomqtt

    async def drain() -> float:
        started = time.perf_counter()
        async with aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=ident,
            clean_session=False,
            max_queued_incoming_messages=0,
        ) as receiver:
            got = 0
            async for _ in receiver.messages:
                got += 1
                if got >= count:
                    return time.perf_counter() - started
        raise RuntimeError(f"received {got} of {count}")

    return asyncio.run(asyncio.wait_for(drain(), c.TIMEOUT))


def _backlog_case(drain: Drain) -> Callable[[int, int, bytes, int], float]:
    def run(port: int, qos: int, payload: bytes, count: int) -> float:
        ident, topic = cap.prepare_backlog(port, qos, payload, count)
        return drain(port, qos, count + 1, ident, topic)  # the fence waits there too

    return run


BACKLOG = {
    CONNECTOR: _backlog_case(_drain_connector),
    AIOMQTT: _backlog_case(_drain_aiomqtt),
    BARE: _backlog_case(cap.drain_limit),
}


def measure(
    port: int,
    count: int,
    inbound_count: int,
    repeats: int,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Median msg/s per contender and case (64 B; ``count`` messages a run outbound,
    ``inbound_count`` inbound), and the live publisher's median msg/s per live case.
    ``port``'s broker must queue QoS 0 for offline sessions."""
    from .run import median_rates

    payload = b"x" * 64
    results: dict[str, Any] = {}
    publisher: dict[str, float] = {}
    for qos in (0, 1):
        case = f"outbound QoS {qos}"
        progress(f"asyncio {case}")
        results[case] = median_rates(OUTBOUND, (port, qos, payload), count, repeats)
    for qos in (0, 1):
        case = f"inbound QoS {qos}, live"
        progress(f"asyncio {case}")
        publisher_rates.clear()
        results[case] = median_rates(LIVE, (port, qos, payload), inbound_count, repeats)
        publisher[case] = statistics.median(publisher_rates)
    for qos in (0, 1):
        case = f"inbound QoS {qos}, backlog"
        progress(f"asyncio {case}")
        results[case] = median_rates(BACKLOG, (port, qos, payload), inbound_count, repeats)
    return results, publisher


def targets(results: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(target, measured, threshold): the asyncio interface / aiomqtt, at least 3x."""
    found = []
    for case, rates in results.get("mosquitto", {}).get("asyncio", {}).items():
        found.append(
            (f"asyncio {case}: connector / aiomqtt", rates[CONNECTOR] / rates[AIOMQTT], 3.0)
        )
    return found


METHOD = (
    "Mosquitto with `queue_qos0_messages true`. Outbound: the contender publishes, a raw "
    "paho subscriber counts. Inbound, live: the receiver is subscribed (clean session) "
    "before a bare-socket publisher in a process of its own publishes as fast as the "
    "broker takes it; timed from the publisher's go to the last message. Inbound, backlog: "
    "the broker holds the messages for an offline persistent session; timed from the "
    "receiver's connect to the last message. The bare-socket receiver (the smallest "
    "PUBLISH parser) is the ceiling: what the broker delivers to a receiver that does "
    "almost nothing. Contenders alternate, their order reversed every other round."
)


def markdown(results: dict[str, Any]) -> str:
    measured = results.get("mosquitto", {}).get("asyncio")
    if not measured:
        return ""

    def rate(rates: dict[str, float], name: str) -> str:
        return f"{rates[name]:,.0f}" if name in rates else "-"

    def ratio(rates: dict[str, float], name: str) -> str:
        return f"{rates[CONNECTOR] / rates[name]:.2f}" if name in rates else "-"

    rows = "\n".join(
        f"| {case} | {rate(r, CONNECTOR)} | {rate(r, AIOMQTT)} | {rate(r, BARE)} | "
        f"{ratio(r, AIOMQTT)} | {ratio(r, BARE)} |"
        for case, r in measured.items()
    )
    messages = results["mosquitto"].get("asyncio_messages", {})
    counts = (
        f"\n\n{messages['outbound']:,} messages a run outbound, {messages['inbound']:,} inbound."
        if messages
        else ""
    )
    publisher = results["mosquitto"].get("asyncio_publisher", {})
    publisher_line = (
        "\n\nThe live publisher's own rate (median, while the receiver read): "
        + "; ".join(f"{case} {value:,.0f} msg/s" for case, value in publisher.items())
        + "."
        if publisher
        else ""
    )
    return (
        "\n## asyncio: the connector's asyncio interface against aiomqtt (mosquitto, 64 B, msg/s)\n\n"
        + METHOD
        + counts
        + publisher_line
        + "\n\n| case | connector (asyncio) | aiomqtt | bare socket | connector / aiomqtt "
        "| connector / bare socket |\n|---|---|---|---|---|---|\n" + rows + "\n"
    )
