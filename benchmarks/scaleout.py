"""Scale-out: K connector processes share one subscription (``$share/<group>/<filter>``).

    python -m benchmarks.scaleout consume --port P --filter F --group G --client-id ID
        [--persistent] [--idle S] [--work S] [--summary]

A consumer process: one ``MqttConnector`` with a shared reader on ``F`` and a plain
reader on ``probe/<client id>``. It prints ``ready`` once a probe arrived (the
broker handles one client's SUBSCRIBEs in order, so the shared subscription is in
place by then), then one line per message with its payload (the message number),
or with ``--summary`` only ``summary <count> <first> <last>`` (wall-clock seconds
of the first and last message) at the end. It exits after ``--idle`` seconds
without a message (once the first one came), or when killed. ``--persistent`` connects with
clean_session=False, so the broker keeps the session (and its share of the
messages) while the process is away.

``throughput(port, k, count)`` is the benchmark: a paho publisher sends ``count``
QoS 1 messages to K consumers; msg/s until the last one arrived.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import (
    MqttConnector,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
)
from taktora_connector.domain import ChannelDescriptor

ROOT = Path(__file__).resolve().parent.parent
#: Seconds a consumer waits for its first message (its peers may still be starting).
FIRST_MESSAGE_WAIT = 60.0


def consume(args: argparse.Namespace) -> int:
    options = MqttConnectorOptions(
        host="127.0.0.1",
        port=args.port,
        client_id=args.client_id,
        clean_session=not args.persistent,
        inbound_capacity=args.capacity,
    )
    connector: MqttConnector[bytes] = MqttConnector(options, BytesCodec())
    shared = MqttRouting(filter=args.filter, share_group=args.group, qos=MqttQos.AT_LEAST_ONCE)
    reader = connector.create_reader(ChannelDescriptor("shared", shared)).unwrap()
    probe_topic = f"probe/{args.client_id}"
    probe = connector.create_reader(
        ChannelDescriptor("probe", MqttRouting(topic=probe_topic, qos=MqttQos.AT_MOST_ONCE))
    ).unwrap()
    out = sys.stdout
    with connector:
        deadline = time.monotonic() + 60  # the parent gives up after 30 s
        while probe.recv(timeout=30).unwrap() is None:
            if time.monotonic() > deadline:
                return 1  # never probed: do not linger as an orphan
        out.write("ready\n")
        out.flush()
        count = 0
        first = last = 0.0
        while True:
            # Until the first message the others may still be starting: wait longer.
            envelope = reader.recv(timeout=args.idle if count else FIRST_MESSAGE_WAIT).unwrap()
            if envelope is None:
                break
            last = time.time()
            if not count:
                first = last
            count += 1
            if not args.summary:
                out.write(envelope.payload.decode() + "\n")
                out.flush()
            if args.work:
                time.sleep(args.work)  # a slow application: messages wait in the reader
        if args.summary:
            out.write(f"summary {count} {first} {last}\n")
        out.flush()
    return 0


@dataclass
class Consumer:
    """One consumer process and the lines it printed (read on a thread)."""

    process: subprocess.Popen[str]
    client_id: str
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        port: int,
        topic_filter: str,
        group: str,
        client_id: str,
        *,
        persistent: bool = False,
        idle: float = 3.0,
        work: float = 0.0,
        summary: bool = False,
        capacity: int = 10_000,
    ) -> Consumer:
        command = [
            sys.executable,
            "-m",
            "benchmarks.scaleout",
            "consume",
            f"--port={port}",
            f"--filter={topic_filter}",
            f"--group={group}",
            f"--client-id={client_id}",
            f"--idle={idle}",
            f"--work={work}",
            f"--capacity={capacity}",
            *(["--persistent"] if persistent else []),
            *(["--summary"] if summary else []),
        ]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env, bufsize=1
        )
        consumer = cls(process, client_id)
        consumer._reader = threading.Thread(target=consumer._read, daemon=True)
        consumer._reader.start()
        return consumer

    def _read(self) -> None:
        stream: IO[str] | None = self.process.stdout
        assert stream is not None
        for line in stream:
            text = line.strip()
            if text == "ready":
                self.ready.set()
            else:
                self.lines.append(text)

    def numbers(self) -> list[int]:
        return [int(line) for line in self.lines if line and not line.startswith("summary")]

    def wait_ready(self, publish_probe: Callable[[str], None], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"consumer {self.client_id} never became ready")
            publish_probe(f"probe/{self.client_id}")

    def finish(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout)
        assert self._reader is not None
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        self.process.kill()
        self.finish()


class Publisher:
    """A raw paho QoS 1 publisher (the messages' numbers are their payloads)."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"scale-pub-{os.getpid()}")
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def probe(self, topic: str) -> None:
        self.client.publish(topic, b"probe", 0)

    def publish(self, topic: str, numbers: range, pause_every: int = 0) -> None:
        infos = []
        for n in numbers:
            infos.append(self.client.publish(topic, str(n).encode(), 1))
            if pause_every and n % pause_every == 0:
                time.sleep(0.001)  # a steady stream, not one burst
        for info in infos:
            info.wait_for_publish(60)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def throughput(port: int, k: int, count: int) -> float:
    """msg/s: ``count`` QoS 1 messages through K consumers sharing one subscription."""
    run = f"bench{os.getpid()}{time.monotonic_ns()}"
    publisher = Publisher(port)
    consumers = [
        Consumer.start(port, f"scale/{run}/+", "bench", f"{run}-{i}", idle=2.0, summary=True)
        for i in range(k)
    ]
    try:
        for consumer in consumers:
            consumer.wait_ready(publisher.probe)
        started = time.time()
        publisher.publish(f"scale/{run}/t", range(count))
        for consumer in consumers:
            consumer.finish(120)
        summaries = [c.lines[-1].split() for c in consumers if c.lines]
        received = sum(int(s[1]) for s in summaries)
        if received != count:
            raise RuntimeError(f"{k} consumers received {received} of {count}")
        last = max(float(s[3]) for s in summaries if int(s[1]))
        return count / (last - started)
    finally:
        for consumer in consumers:
            if consumer.process.poll() is None:
                consumer.kill()
        publisher.close()


def scale_out(
    port: int, count: int, repeats: int, ks: tuple[int, ...] = (1, 2, 4)
) -> dict[str, Any]:
    """Median msg/s per K, for ``make bench``."""
    import statistics

    return {
        str(k): statistics.median(throughput(port, k, count) for _ in range(repeats)) for k in ks
    }


def markdown(results: dict[str, Any]) -> str:
    rates = results.get("mosquitto", {}).get("scale_out")
    if not rates:
        return ""
    rows = "\n".join(f"| {k} | {rate:,.0f} |" for k, rate in rates.items())
    return (
        "\n## Scale-out: K processes sharing one subscription (mosquitto, QoS 1, msg/s)\n\n"
        "| K | msg/s |\n|---|---|\n" + rows + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("consume")
    worker.add_argument("--port", type=int, required=True)
    worker.add_argument("--filter", required=True)
    worker.add_argument("--group", required=True)
    worker.add_argument("--client-id", required=True)
    worker.add_argument("--persistent", action="store_true")
    worker.add_argument("--idle", type=float, default=3.0)
    worker.add_argument(
        "--work", type=float, default=0.0, help="seconds spent on each message after printing it"
    )
    worker.add_argument("--summary", action="store_true")
    worker.add_argument(
        "--capacity", type=int, default=10_000, help="the reader's inbound_capacity"
    )
    return consume(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
