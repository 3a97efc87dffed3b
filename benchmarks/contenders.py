"""The contenders of the benchmark: the connector, raw paho-mqtt and aiomqtt.

Every function runs one measurement against a broker on 127.0.0.1:``port`` and
returns seconds (or a dict of numbers); nothing here decides what is good.
Outbound runs end when a raw paho subscriber has seen every message; inbound
runs end when the contender has received every message a raw paho publisher sent.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from returns.pipeline import is_successful

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import (
    MqttConnector,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
)
from taktora_connector.domain import ChannelDescriptor

TIMEOUT = 120.0
_ids = itertools.count()


def client_id(prefix: str) -> str:
    return f"bench-{prefix}-{next(_ids)}"


def connector_options(port: int, **changes: Any) -> MqttConnectorOptions:
    changes.setdefault("client_id", client_id("conn"))
    return MqttConnectorOptions(host="127.0.0.1", port=port, **changes)


def backpressure_pause(deadline: float) -> None:
    """BackPressure: let the sidecar drain, but not past ``deadline`` (a broker that
    stopped reading would otherwise keep the sender waiting for ever)."""
    if time.monotonic() > deadline:
        raise RuntimeError(f"the connector accepted nothing more for {TIMEOUT:g} s")
    time.sleep(0.0002)


def wait_up(connector: MqttConnector[Any]) -> None:
    deadline = time.monotonic() + 10
    while connector.health().kind.value != "up":
        if time.monotonic() > deadline:
            raise RuntimeError(f"connector not up: {connector.health()}")
        time.sleep(0.005)


# -- a raw paho peer ----------------------------------------------------------------------


class PahoSubscriber:
    """Counts messages on ``topic`` on paho's own network thread."""

    def __init__(self, port: int, topic: str, qos: int, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id("sub"))
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("subscription not acknowledged")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def paho_flood(port: int, topic: str, qos: int, payload: bytes, count: int) -> None:
    """Publish ``count`` messages as fast as paho takes them (in this thread)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id("flood"))
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos) for _ in range(count)]
    for info in infos[-1:]:
        info.wait_for_publish(TIMEOUT)
    client.disconnect()
    client.loop_stop()


# -- outbound: the contender publishes ------------------------------------------------------


def out_connector(port: int, qos: int, payload: bytes, count: int) -> float:
    topic = f"bench/out/{next(_ids)}"
    sub = PahoSubscriber(port, topic, qos, count)
    connector: MqttConnector[bytes] = MqttConnector(
        connector_options(port, outbound_capacity=1024), BytesCodec()
    )
    connector.start()
    try:
        wait_up(connector)
        writer = connector.create_writer(
            ChannelDescriptor("out", MqttRouting(topic=topic, qos=MqttQos(qos)))
        ).unwrap()
        send = writer.send
        started = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT
        for _ in range(count):
            while not is_successful(send(payload)):
                backpressure_pause(deadline)
        if not sub.done.wait(TIMEOUT):
            raise RuntimeError(f"subscriber saw {sub.count} of {count}")
        return time.perf_counter() - started
    finally:
        connector.close()
        sub.close()


def _out_paho(port: int, qos: int, payload: bytes, count: int, inflight: int | None) -> float:
    topic = f"bench/out/{next(_ids)}"
    sub = PahoSubscriber(port, topic, qos, count)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id("pub"))
    if inflight is not None:
        client.max_inflight_messages_set(inflight)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        started = time.perf_counter()
        for _ in range(count):
            client.publish(topic, payload, qos)
        if not sub.done.wait(TIMEOUT):
            raise RuntimeError(f"subscriber saw {sub.count} of {count}")
        return time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
        sub.close()


def out_paho_default(port: int, qos: int, payload: bytes, count: int) -> float:
    return _out_paho(port, qos, payload, count, None)


def out_paho_tuned(port: int, qos: int, payload: bytes, count: int) -> float:
    return _out_paho(port, qos, payload, count, 100)


def out_aiomqtt(port: int, qos: int, payload: bytes, count: int) -> float:
    import aiomqtt

    topic = f"bench/out/{next(_ids)}"
    sub = PahoSubscriber(port, topic, qos, count)

    async def publish_all() -> float:
        async with aiomqtt.Client("127.0.0.1", port, identifier=client_id("aio")) as client:
            started = time.perf_counter()
            for _ in range(count):
                await client.publish(topic, payload, qos=qos)
            await asyncio.get_running_loop().run_in_executor(None, sub.done.wait, TIMEOUT)
            return time.perf_counter() - started

    try:
        elapsed = asyncio.run(publish_all())
        if not sub.done.is_set():
            raise RuntimeError(f"subscriber saw {sub.count} of {count}")
        return elapsed
    finally:
        sub.close()


# -- inbound: the contender receives ----------------------------------------------------------


def _inbound(
    port: int, qos: int, payload: bytes, count: int, topic: str, wait: Callable[[], None]
) -> float:
    started = time.perf_counter()
    flood = threading.Thread(
        target=paho_flood, args=(port, topic, qos, payload, count), daemon=True
    )
    flood.start()
    wait()
    elapsed = time.perf_counter() - started
    flood.join(TIMEOUT)
    return elapsed


def in_connector(port: int, qos: int, payload: bytes, count: int) -> float:
    topic = f"bench/in/{next(_ids)}"
    connector: MqttConnector[bytes] = MqttConnector(
        connector_options(port, inbound_capacity=count + 10), BytesCodec()
    )
    reader = connector.create_reader(
        ChannelDescriptor("in", MqttRouting(topic=topic, qos=MqttQos(qos)))
    ).unwrap()
    connector.start()
    try:
        wait_up(connector)
        time.sleep(0.2)  # the SUBSCRIBE reaches the broker

        def receive_all() -> None:
            for got in range(count):
                result = reader.recv(TIMEOUT)
                if not is_successful(result) or result.unwrap() is None:
                    raise RuntimeError(f"received {got} of {count}; dropped {reader.dropped}")

        return _inbound(port, qos, payload, count, topic, receive_all)
    finally:
        connector.close()


def in_paho(port: int, qos: int, payload: bytes, count: int) -> float:
    topic = f"bench/in/{next(_ids)}"
    sub = PahoSubscriber(port, topic, qos, count)
    try:
        return _inbound(port, qos, payload, count, topic, lambda: _must(sub.done.wait(TIMEOUT)))
    finally:
        sub.close()


def in_aiomqtt(port: int, qos: int, payload: bytes, count: int) -> float:
    import aiomqtt

    topic = f"bench/in/{next(_ids)}"
    ready = threading.Event()
    finished = threading.Event()

    async def receive_all() -> None:
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier=client_id("aio"), max_queued_incoming_messages=0
        ) as client:
            await client.subscribe(topic, qos=qos)
            ready.set()
            got = 0
            async for _ in client.messages:
                got += 1
                if got >= count:
                    finished.set()
                    return

    receiver = threading.Thread(target=lambda: asyncio.run(receive_all()), daemon=True)
    receiver.start()
    _must(ready.wait(10))
    time.sleep(0.1)
    try:
        return _inbound(port, qos, payload, count, topic, lambda: _must(finished.wait(TIMEOUT)))
    finally:
        receiver.join(TIMEOUT)


def _must(ok: bool) -> None:
    if not ok:
        raise RuntimeError("timed out")


# -- latency ------------------------------------------------------------------------------------


def latency_connector(port: int, rate: float, count: int) -> dict[str, float]:
    topic = f"bench/lat/{next(_ids)}"
    connector: MqttConnector[bytes] = MqttConnector(connector_options(port), BytesCodec())
    reader = connector.create_reader(ChannelDescriptor("in", MqttRouting(topic=topic))).unwrap()
    writer = connector.create_writer(ChannelDescriptor("out", MqttRouting(topic=topic))).unwrap()
    connector.start()
    try:
        wait_up(connector)
        time.sleep(0.2)
        samples: list[float] = []
        start = time.perf_counter()
        for n in range(count):
            target = start + n / rate
            while (left := target - time.perf_counter()) > 0:  # receive while waiting to send
                result = reader.recv(left)
                if is_successful(result) and (env := result.unwrap()) is not None:
                    samples.append(time.perf_counter() - float(env.payload))
            writer.send(repr(time.perf_counter()).encode())
        while len(samples) < count:
            env = reader.recv(5).unwrap()
            if env is None:
                break
            samples.append(time.perf_counter() - float(env.payload))
        return _percentiles(samples)
    finally:
        connector.close()


def latency_paho(port: int, rate: float, count: int) -> dict[str, float]:
    topic = f"bench/lat/{next(_ids)}"
    samples: list[float] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id("lat"))
    client.on_message = lambda c, u, m: samples.append(time.perf_counter() - float(m.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(topic, 0)
    client.loop_start()
    time.sleep(0.2)
    try:
        start = time.perf_counter()
        for n in range(count):
            target = start + n / rate
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            client.publish(topic, repr(time.perf_counter()).encode(), 0)
        deadline = time.monotonic() + 5
        while len(samples) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return _percentiles(samples)
    finally:
        client.disconnect()
        client.loop_stop()


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "samples": float(len(ordered)),
    }


# -- demultiplexing -------------------------------------------------------------------------------


def demux(port: int, filters: int, count: int) -> float:
    """Inbound msg/s to one matching reader while ``filters`` readers are registered."""
    base = f"bench/demux/{next(_ids)}"
    topic = f"{base}/target/t"
    connector: MqttConnector[bytes] = MqttConnector(
        connector_options(port, inbound_capacity=count + 10), BytesCodec()
    )
    target = connector.create_reader(ChannelDescriptor("target", MqttRouting(topic=topic))).unwrap()
    for i in range(filters - 1):  # exact, '+' and '#' mixed beside the target, none matching it
        kind = i % 3
        text = (f"{base}/{i}/t", f"{base}/+/{i}", f"{base}/{i}/#")[kind]
        connector.create_reader(ChannelDescriptor(f"r{i}", MqttRouting(filter=text))).unwrap()
    connector.start()
    try:
        wait_up(connector)
        time.sleep(0.5 + filters / 5000)  # SUBSCRIBE packets for every filter

        def receive_all() -> None:
            for _ in range(count):
                if target.recv(TIMEOUT).unwrap() is None:
                    raise RuntimeError("timed out")

        return _inbound(port, 0, b"x" * 64, count, topic, receive_all)
    finally:
        connector.close()


# -- memory -------------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class RssSampler:
    def __init__(self) -> None:
        self.baseline = rss_mb()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak - self.baseline


def memory_inbound_flood(port: int, count: int) -> dict[str, float]:
    """RSS growth while another process floods a reader that never drains."""
    import subprocess
    import sys

    topic = f"bench/mem/{next(_ids)}"
    connector: MqttConnector[bytes] = MqttConnector(connector_options(port), BytesCodec())
    reader = connector.create_reader(ChannelDescriptor("in", MqttRouting(topic=topic))).unwrap()
    connector.start()
    try:
        wait_up(connector)
        time.sleep(0.2)
        sampler = RssSampler()
        started = time.perf_counter()
        code = (
            "import sys; sys.path.insert(0, '.');"
            "from benchmarks.contenders import paho_flood;"
            f"paho_flood({port}, {topic!r}, 0, b'x' * 64, {count})"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
        deadline = time.monotonic() + 30  # let the last messages reach the reader and be dropped
        while reader.dropped + 64 < count and time.monotonic() < deadline:
            time.sleep(0.1)
        growth = sampler.stop()
        return {
            "rss_growth_mb": growth,
            "dropped": float(reader.dropped),
            "seconds": time.perf_counter() - started,
        }
    finally:
        connector.close()


def memory_stalled_broker(broker: Any, seconds: float) -> dict[str, float]:
    """RSS growth while a writer keeps sending to a broker that stopped (SIGSTOP)."""
    import os
    import signal

    connector: MqttConnector[bytes] = MqttConnector(connector_options(broker.port), BytesCodec())
    writer = connector.create_writer(
        ChannelDescriptor("out", MqttRouting(topic="bench/stall", qos=MqttQos(1)))
    ).unwrap()
    connector.start()
    pid = broker.pid
    try:
        wait_up(connector)
        sampler = RssSampler()
        os.kill(pid, signal.SIGSTOP)
        attempts = refused = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            attempts += 1
            if not is_successful(writer.send(b"x" * 1024)):
                refused += 1
                time.sleep(0.0001)
        growth = sampler.stop()
        return {
            "rss_growth_mb": growth,
            "send_attempts": float(attempts),
            "refused": float(refused),
        }
    finally:
        os.kill(pid, signal.SIGCONT)
        connector.close(timeout=2)
