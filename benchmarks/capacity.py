"""Capacity cases: how fast a client can publish, and how fast it drains a backlog.

- **publish capacity**: ``count`` publishes at QoS ``qos`` as fast as the client
  takes them, then one QoS 1 publish acknowledged on the same connection (the
  broker acknowledges in order, so its PUBACK means every earlier message arrived);
- **drain**: the broker already holds ``count`` messages for a persistent session
  (mosquitto with ``queue_qos0_messages true``); the client connects and reads them
  all. The connector reads through its reader API on an application thread.

The "bare socket" contender is the limit: the smallest Python that speaks the
case (a PUBLISH encoded per message and written in batches; the smallest
PUBLISH parser over 64 KiB reads). It shares no code with the connector.
``PublisherProcess`` runs the bare publisher in a process of its own: the asyncio
benchmark's live inbound cases use it as a publisher faster than any receiver.
Every function returns seconds.
"""

from __future__ import annotations

import asyncio
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from returns.pipeline import is_successful

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import MqttConnector, MqttQos, MqttRouting
from taktora_connector.domain import ChannelDescriptor

from .contenders import TIMEOUT, backpressure_pause, client_id, connector_options, wait_up

ROOT = Path(__file__).resolve().parent.parent

#: The in-flight window every QoS 1 publisher uses (the connector's default).
WINDOW = 1000


# -- the bare socket: the limit ----------------------------------------------------------------


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _publish(topic: bytes, payload: bytes, qos: int, packet_id: int) -> bytes:
    head = len(topic).to_bytes(2, "big") + topic
    if qos:
        head += packet_id.to_bytes(2, "big")
    size = len(head) + len(payload)
    length = bytes((size,)) if size < 128 else _length(size)
    return bytes((0x30 | qos << 1,)) + length + head + payload


class BareClient:
    """Blocking MQTT 3.1.1 over one socket, nothing else."""

    def __init__(self, port: int, ident: str, clean: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = ident.encode()
        body = (
            b"\x00\x04MQTT\x04"
            + bytes((0x02 if clean else 0x00,))
            + (60).to_bytes(2, "big")
            + len(cid).to_bytes(2, "big")
            + cid
        )
        self.sock.sendall(b"\x10" + _length(len(body)) + body)
        self.buffer = bytearray()
        self._need(4)
        if self.buffer[0] != 0x20 or self.buffer[3] != 0:
            raise RuntimeError(f"refused: {bytes(self.buffer[:4])!r}")
        del self.buffer[:4]

    def _need(self, size: int) -> None:
        while len(self.buffer) < size:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("broker closed the connection")
            self.buffer += data

    def subscribe(self, topic: str, qos: int) -> None:
        raw = topic.encode()
        body = b"\x00\x01" + len(raw).to_bytes(2, "big") + raw + bytes((qos,))
        self.sock.sendall(b"\x82" + _length(len(body)) + body)
        self._need(5)
        del self.buffer[:5]

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
        finally:
            self.sock.close()


def publish_bare(port: int, qos: int, payload: bytes, count: int, topic: str) -> None:
    """``count`` publishes in batches of 256, then a QoS 1 fence; a window for QoS 1."""
    client = BareClient(port, client_id("bare-pub"))
    raw = topic.encode()
    send = client.sock.sendall
    batch: list[bytes] = []
    unacked = 0  # QoS 1 publishes sent and not acknowledged yet
    sock = client.sock
    try:
        for n in range(count):
            batch.append(_publish(raw, payload, qos, n % 65535 + 1))
            if len(batch) >= 256:
                send(b"".join(batch))
                batch.clear()
                if qos:
                    unacked += 256
                    # wait (at most TIMEOUT) only when the window is full
                    sock.settimeout(TIMEOUT if unacked > WINDOW else 0.0)
                    while True:
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                        try:
                            data = sock.recv(65536)
                        except BlockingIOError:
                            break
                        if not data:
                            raise RuntimeError("broker closed the connection")
                        client.buffer += data
                        got = len(client.buffer) // 4
                        del client.buffer[: got * 4]
                        unacked -= got
                        if unacked <= WINDOW:
                            break
                    sock.settimeout(TIMEOUT)
        batch.append(_publish(raw, payload, 1, count % 65535 + 1))
        send(b"".join(batch))
        unacked += len(batch) if qos else 1
        client._need(unacked * 4)
    finally:
        client.close()


def read_bare(client: BareClient, count: int) -> None:
    """Read ``count`` PUBLISH packets with the smallest parser; PUBACK each at QoS 1."""
    sock = client.sock
    data = bytes(client.buffer)
    got = 0
    while got < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("broker closed the connection")
        data = data + chunk if data else chunk
        pos = 0
        end = len(data)
        acks = []
        while pos + 2 <= end:
            first = data[pos]
            length = 0
            shift = 0
            index = pos + 1
            byte = 0x80
            while index < end:
                byte = data[index]
                index += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            if byte >= 0x80 or index + length > end:
                break
            if first & 0xF0 == 0x30:
                topic_end = index + 2 + (data[index] << 8 | data[index + 1])
                _topic = data[index + 2 : topic_end]
                if first & 0x06:
                    acks.append(b"\x40\x02" + data[topic_end : topic_end + 2])
                    topic_end += 2
                _payload = data[topic_end : index + length]
                got += 1
            pos = index + length
        data = data[pos:]
        if acks:
            sock.sendall(b"".join(acks))


def drain_bare(port: int, qos: int, count: int, ident: str) -> None:
    """Reconnect the persistent session ``ident`` and read ``count`` messages."""
    client = BareClient(port, ident, clean=False)
    try:
        read_bare(client, count)
    finally:
        client.close()


# -- the bare publisher in a process of its own ---------------------------------------------------


def _publish_on_go(port: int, qos: int, payload: bytes, count: int, topic: str) -> None:
    """The publisher process: says ``ready``, publishes on a ``go`` line, prints its seconds."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    started = time.perf_counter()
    publish_bare(port, qos, payload, count, topic)
    print(time.perf_counter() - started, flush=True)


class PublisherProcess:
    """``publish_bare`` in a process of its own, so it shares no GIL with a receiver.

    The process starts (and imports) ahead; ``go()`` makes it publish ``count``
    messages and the QoS 1 fence on ``topic`` (``count + 1`` in all). ``close()``
    waits for it and returns its own publishing rate (msg/s, connect included).
    """

    def __init__(self, port: int, qos: int, payload: bytes, count: int, topic: str) -> None:
        self.count = count
        self._went = False
        code = (
            "from benchmarks.capacity import _publish_on_go;"
            f"_publish_on_go({port}, {qos}, {payload!r}, {count}, {topic!r})"
        )
        self._process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        readable, _, _ = select.select([self._process.stdout], [], [], 60)
        if not readable or self._process.stdout.readline().strip() != "ready":
            self._process.kill()
            self._process.wait(10)
            raise RuntimeError("the publisher process did not start")

    def go(self) -> None:
        assert self._process.stdin is not None
        self._went = True
        self._process.stdin.write("go\n")
        self._process.stdin.flush()

    def close(self) -> float:
        """The publisher's msg/s (0.0 if never told to go); kills it after TIMEOUT."""
        if not self._went:
            self._process.kill()
            self._process.communicate(timeout=10)
            return 0.0
        try:
            out, _ = self._process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate(timeout=10)
            raise RuntimeError("the publisher process did not finish") from None
        if self._process.returncode != 0:
            raise RuntimeError(
                f"the publisher process failed: exit code {self._process.returncode}"
            )
        return self.count / float(out.strip())


# -- publish capacity ----------------------------------------------------------------------------


def _fresh_topic(kind: str) -> str:
    return f"bench/{kind}/{client_id('t')}"


def publish_connector(port: int, qos: int, payload: bytes, count: int) -> float:
    topic = _fresh_topic("cap")
    connector: MqttConnector[bytes] = MqttConnector(
        connector_options(port, outbound_capacity=1024, max_inflight=WINDOW), BytesCodec()
    )
    connector.start()
    try:
        wait_up(connector)
        writer = connector.create_writer(
            ChannelDescriptor("out", MqttRouting(topic=topic, qos=MqttQos(qos)))
        ).unwrap()
        fence = connector.create_writer(
            ChannelDescriptor("fence", MqttRouting(topic=topic, qos=MqttQos(1)))
        ).unwrap()
        send = writer.send
        started = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT
        for _ in range(count):
            while not is_successful(send(payload)):
                backpressure_pause(deadline)
        while not is_successful(outcome := fence.send(payload)):
            backpressure_pause(deadline)
        if not is_successful(outcome.unwrap().delivery.wait(TIMEOUT)):
            raise RuntimeError("the fence was not acknowledged")
        return time.perf_counter() - started
    finally:
        connector.close()


def publish_paho(port: int, qos: int, payload: bytes, count: int) -> float:
    topic = _fresh_topic("cap")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id("pub"))
    client.max_inflight_messages_set(WINDOW)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        started = time.perf_counter()
        for n in range(count):
            info = client.publish(topic, payload, qos)
            if qos and n % 10_000 == 9_999:  # paho cannot hold more than 65,535 ids
                info.wait_for_publish(TIMEOUT)
        client.publish(topic, payload, 1).wait_for_publish(TIMEOUT)
        return time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()


def publish_gmqtt(port: int, qos: int, payload: bytes, count: int) -> float:
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv311

    topic = _fresh_topic("cap")

    async def run() -> float:
        client = gmqtt.Client(client_id("gmqtt"))
        await client.connect("127.0.0.1", port, version=MQTTv311)
        try:
            started = time.perf_counter()
            publish = client.publish
            for n in range(count):
                publish(topic, payload, qos=qos)
                if n % 256 == 0:
                    await asyncio.sleep(0)  # let the loop read PUBACKs and write
            publish(topic, payload, qos=1)
            await asyncio.wait_for(client._persistent_storage.wait_empty(), TIMEOUT)
            return time.perf_counter() - started
        finally:
            await client.disconnect()

    return asyncio.run(run())


def publish_mqttium(port: int, qos: int, payload: bytes, count: int) -> float:
    import mqttium.api.async_client as mq

    topic = _fresh_topic("cap")

    async def run() -> float:
        async with mq.AsyncClient(client_id("mqttium"), max_outbound_inflight=WINDOW) as client:
            await client.connect("127.0.0.1", port)
            started = time.perf_counter()
            for _ in range(count):
                await client.publish(topic, payload, qos=qos)
            receipt = await client.publish(topic, payload, qos=1)
            await asyncio.wait_for(receipt.wait(), TIMEOUT)
            return time.perf_counter() - started

    return asyncio.run(run())


def publish_limit(port: int, qos: int, payload: bytes, count: int) -> float:
    started = time.perf_counter()
    publish_bare(port, qos, payload, count, _fresh_topic("cap"))
    return time.perf_counter() - started


PUBLISH = {
    "connector": publish_connector,
    "gmqtt": publish_gmqtt,
    "mqttium": publish_mqttium,
    "paho": publish_paho,
    "bare socket": publish_limit,
}


# -- drain ----------------------------------------------------------------------------------------


def prepare_backlog(port: int, qos: int, payload: bytes, count: int) -> tuple[str, str]:
    """A persistent session subscribed to a fresh topic, holding ``count`` messages."""
    ident = client_id("drain")
    topic = _fresh_topic("drain")
    owner = BareClient(port, ident, clean=False)
    owner.subscribe(topic, qos)
    owner.close()
    time.sleep(0.05)  # the broker notices the session went offline
    publish_bare(port, qos, payload, count, topic)
    # The fence landed on the same topic: one more message waits in the backlog.
    return ident, topic


def drain_connector(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    connector: MqttConnector[bytes] = MqttConnector(
        connector_options(port, inbound_capacity=count + 10, clean_session=False, client_id=ident),
        BytesCodec(),
    )
    reader = connector.create_reader(
        ChannelDescriptor("in", MqttRouting(topic=topic, qos=MqttQos(qos)))
    ).unwrap()
    # Iteration has no timeout of its own: a broker that stops sending would hang the
    # run, so a watchdog closes the connector after TIMEOUT, which ends the iteration.
    watchdog = threading.Timer(TIMEOUT, connector.close)
    watchdog.daemon = True
    got = 0
    started = time.perf_counter()
    connector.start()
    watchdog.start()
    try:
        for got, _ in enumerate(reader, 1):  # iteration takes what waits in batches
            if got >= count:
                break
        elapsed = time.perf_counter() - started
        if got < count:
            raise RuntimeError(f"the connector drained {got} of {count} within {TIMEOUT:g} s")
        return elapsed
    finally:
        watchdog.cancel()
        connector.close()


def _drain_reader(
    port: int, qos: int, count: int, ident: str, topic: str, read: Callable[[Any, int], int]
) -> float:
    """The connector drains through ``read(reader, count)``, one documented read path."""
    connector: MqttConnector[bytes] = MqttConnector(
        connector_options(port, inbound_capacity=count + 10, clean_session=False, client_id=ident),
        BytesCodec(),
    )
    reader = connector.create_reader(
        ChannelDescriptor("in", MqttRouting(topic=topic, qos=MqttQos(qos)))
    ).unwrap()
    started = time.perf_counter()
    connector.start()
    try:
        got = read(reader, count)
        elapsed = time.perf_counter() - started
        if got < count:
            raise RuntimeError(f"the connector drained {got} of {count} within {TIMEOUT:g} s")
        return elapsed
    finally:
        connector.close()


def _by_recv(reader: Any, count: int) -> int:
    """What most users write: ``recv(timeout)`` one message at a time."""
    recv = reader.recv
    got = 0
    deadline = time.monotonic() + TIMEOUT
    while got < count and time.monotonic() < deadline:
        if recv(1.0).unwrap() is not None:
            got += 1
    return got


def _by_try_recv(reader: Any, count: int) -> int:
    """``try_recv()`` until it finds nothing, then wait on ``fileno()`` (a select loop)."""
    try_recv = reader.try_recv
    fd = reader.fileno()
    got = 0
    deadline = time.monotonic() + TIMEOUT
    while got < count and time.monotonic() < deadline:
        if try_recv().unwrap() is not None:
            got += 1
        else:
            select.select([fd], [], [], 1.0)
    return got


def drain_connector_recv(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    return _drain_reader(port, qos, count, ident, topic, _by_recv)


def drain_connector_try_recv(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    return _drain_reader(port, qos, count, ident, topic, _by_try_recv)


def _drain_async(port: int, qos: int, count: int, ident: str, topic: str, loop: bool) -> float:
    """The asyncio interface: ``await reader.recv()`` per message, or ``async for``."""
    from taktora_connector.adapters.aio import AsyncMqttConnector

    async def run() -> float:
        options = connector_options(
            port, inbound_capacity=count + 10, clean_session=False, client_id=ident
        )
        connector = AsyncMqttConnector[bytes](options, BytesCodec())
        reader = (
            await connector.create_reader(
                ChannelDescriptor("in", MqttRouting(topic=topic, qos=MqttQos(qos)))
            )
        ).unwrap()
        started = time.perf_counter()
        await connector.start()
        got = 0
        try:
            async with asyncio.timeout(TIMEOUT):
                if loop:
                    async for _ in reader:
                        got += 1
                        if got >= count:
                            break
                else:
                    recv = reader.recv
                    while got < count:
                        if (await recv()).unwrap() is not None:
                            got += 1
        except TimeoutError:
            pass
        finally:
            elapsed = time.perf_counter() - started
            await connector.close()
        if got < count:
            raise RuntimeError(f"the asyncio connector drained {got} of {count}")
        return elapsed

    return asyncio.run(run())


def drain_connector_await_recv(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    return _drain_async(port, qos, count, ident, topic, loop=False)


def drain_connector_async_for(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    return _drain_async(port, qos, count, ident, topic, loop=True)


def drain_paho(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    done = threading.Event()
    got = 0

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        nonlocal got
        got += 1
        if got >= count:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=ident, clean_session=False)
    client.on_message = on_message
    started = time.perf_counter()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not done.wait(TIMEOUT):
            raise RuntimeError(f"paho drained {got} of {count}")
        return time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()


def drain_gmqtt(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv311

    async def run() -> float:
        done = asyncio.get_running_loop().create_future()
        got = 0

        def on_message(client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
            nonlocal got
            got += 1
            if got >= count and not done.done():
                done.set_result(None)
            return 0

        client = gmqtt.Client(ident, clean_session=False)
        client.on_message = on_message
        started = time.perf_counter()
        await client.connect("127.0.0.1", port, version=MQTTv311)
        try:
            await asyncio.wait_for(done, TIMEOUT)
            return time.perf_counter() - started
        finally:
            await client.disconnect()

    return asyncio.run(run())


def drain_mqttium(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    import mqttium.api.async_client as mq

    async def run() -> float:
        started = time.perf_counter()
        async with mq.AsyncClient(
            ident, clean_start=False, max_iterator_messages=count + 10, max_iterator_bytes=None
        ) as client:
            messages = client.messages()
            await client.connect("127.0.0.1", port)
            got = 0
            async for _ in messages:
                got += 1
                if got >= count:
                    break
            return time.perf_counter() - started

    return asyncio.run(asyncio.wait_for(run(), TIMEOUT))


def drain_limit(port: int, qos: int, count: int, ident: str, topic: str) -> float:
    started = time.perf_counter()
    drain_bare(port, qos, count, ident)
    return time.perf_counter() - started


DRAIN = {
    "connector": drain_connector,  # for envelope in reader (iteration)
    "connector recv()": drain_connector_recv,
    "connector try_recv()": drain_connector_try_recv,
    "connector await recv()": drain_connector_await_recv,
    "connector async for": drain_connector_async_for,
    "gmqtt": drain_gmqtt,
    "mqttium": drain_mqttium,
    "paho": drain_paho,
    "bare socket": drain_limit,
}


def drain(name: str, port: int, qos: int, payload: bytes, count: int) -> float:
    """Seconds for contender ``name`` to drain a fresh backlog of ``count`` (+1 fence)."""
    ident, topic = prepare_backlog(port, qos, payload, count)
    return DRAIN[name](port, qos, count + 1, ident, topic)
