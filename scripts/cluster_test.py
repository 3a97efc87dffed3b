"""``make cluster-test``: fail over between the nodes of a real RabbitMQ cluster.

Starts a three-node RabbitMQ 3.10 cluster on loopback (``RabbitMQCluster``: processes
of its own, stopped by their PIDs; MQTT sessions in quorum queues), then, for each
case, ``--runs`` times:

- a publisher on node 1 sends numbered QoS 1 messages at a steady rate; only those
  whose PUBACK came back count as published;
- a consumer with a persistent session (``clean_session=False``, QoS 1), given all
  three servers, reads them one ``recv()`` at a time;
- mid-stream the consumer's node is killed (SIGKILL, a crash);
- measured: the time until the consumer is Up on another node, the time until a
  message published after the kill reaches it (so it is subscribed again), how
  many published messages it never received (lost) and how many it received more
  than once (duplicated); then the node is started again and rejoins.

Cases: ``leader``, the killed node leads the session's queue; ``follower``, the
killed node holds only a replica (the session was made on another node first).

Then the throughput of K consumers spread over the nodes (disjoint topic ranges,
QoS 0, one ``recv()`` at a time), and every listening socket of the cluster checked
to be on loopback. Asserts the bounds below; prints a table (``--json`` writes it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from returns.pipeline import is_successful

from taktora_connector.adapters.codecs import BytesCodec
from taktora_connector.adapters.mqtt import (
    MqttConnector,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
)
from taktora_connector.conformance.rabbitmq_cluster import RabbitMQCluster
from taktora_connector.domain import ChannelDescriptor, HealthKind

#: Bounds the test asserts (on every run, not on the median).
MAX_FAILOVER_S = 5.0  # kill to Up on another node (measured: 0.06 to 0.53 s)
MAX_RESUME_S = 10.0  # kill to the first message published after the kill
MAX_LOST = 0  # quorum queues: nothing the broker acknowledged is lost
RATE = 200  # messages per second from the publisher
BEFORE_KILL_S = 1.5
AFTER_RESUME_S = 1.5


@dataclass
class Run:
    case: str
    run: int
    killed: str
    failed_over_to: str
    up_after_s: float
    resumed_after_s: float
    published: int
    received: int
    lost: int
    duplicated: int
    reader_failed: str | None
    #: The lost messages (at most 20): number, and when it was sent, in seconds
    #: from the kill (negative: before it).
    lost_sent_at: list[tuple[int, float]]


def options(servers: list[tuple[str, int]], **changes: Any) -> MqttConnectorOptions:
    return MqttConnectorOptions(
        servers=servers,
        reconnect_initial_backoff=0.05,
        reconnect_max_backoff=1.0,
        reconnect_attempt_ceiling=None,
        keep_alive=5,
        connect_timeout=3.0,
        **changes,
    )


def wait_up(connector: MqttConnector[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while connector.health().kind is not HealthKind.UP:
        if time.monotonic() > deadline:
            raise SystemExit(f"not Up within {timeout} s: {connector.last_error}")
        time.sleep(0.02)


class Publisher:
    """Numbered QoS 1 messages at RATE per second; remembers which were acknowledged
    and when each was sent."""

    def __init__(self, servers: list[tuple[str, int]], topic: str) -> None:
        self.connector: MqttConnector[bytes] = MqttConnector(
            options(servers, client_id=f"pub-{os.getpid()}-{time.monotonic_ns()}"), BytesCodec()
        )
        self.connector.start().unwrap()
        wait_up(self.connector)
        self.writer = self.connector.create_writer(
            ChannelDescriptor("out", MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE))
        ).unwrap()
        self.sent_at: dict[int, float] = {}
        self.pending: list[tuple[int, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        start = time.monotonic()
        while not self.stop.is_set():
            due = start + n / RATE
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            stamped = time.monotonic()  # before send(): the message exists from here on
            handle = self.writer.send(str(n).encode()).value_or(None)
            if handle is None:  # BackPressure: the same number again, a little later
                time.sleep(0.01)
                continue
            self.sent_at[n] = stamped
            self.pending.append((n, handle.delivery))
            n += 1

    def wait_subscribed(self, consumer: Consumer, timeout: float = 20.0) -> None:
        """Probe messages (-1) until one reaches the consumer: its subscription is in
        place (a SUBSCRIBE is answered after ``create_reader`` returns, and what is
        published before is routed to no queue: not a loss of the failover)."""
        deadline = time.monotonic() + timeout
        while not consumer.subscribed.wait(0.1):
            if time.monotonic() > deadline:
                raise SystemExit(f"the consumer's subscription is not there after {timeout} s")
            self.writer.send(b"-1")

    def acknowledged(self, timeout: float = 20.0) -> set[int]:
        self.stop.set()
        self.thread.join()
        deadline = time.monotonic() + timeout
        done: set[int] = set()
        for n, delivery in self.pending:
            result = delivery.wait(max(0.0, deadline - time.monotonic()))
            if result.value_or(False) is None:  # Success(None)
                done.add(n)
        return done

    def close(self) -> None:
        self.connector.close(timeout=5)


class Consumer:
    def __init__(
        self, servers: list[tuple[str, int]], topic: str, client_id: str, capacity: int
    ) -> None:
        self.connector: MqttConnector[bytes] = MqttConnector(
            options(
                servers,
                client_id=client_id,
                clean_session=False,
                inbound_capacity=capacity,
            ),
            BytesCodec(),
        )
        self.connector.start().unwrap()
        wait_up(self.connector)
        self.reader = self.connector.create_reader(
            ChannelDescriptor("in", MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE))
        ).unwrap()
        self.received: list[tuple[int, float]] = []
        self.failure: str | None = None
        self.subscribed = threading.Event()
        self.ups: list[tuple[float, str | None]] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _read(self) -> None:
        while not self.stop.is_set():
            got = self.reader.recv(timeout=0.2)
            if not is_successful(got):  # (a failed reader, e.g. its SUBSCRIBE refused)
                self.failure = str(got.failure())
                time.sleep(0.2)
                continue
            envelope = got.unwrap()
            if envelope is not None:
                number = int(envelope.value)
                if number < 0:  # a probe of the subscription
                    self.subscribed.set()
                else:
                    self.received.append((number, time.monotonic()))

    def _watch(self) -> None:
        subscription = self.connector.subscribe_health()
        while not self.stop.is_set():
            event = subscription.next(timeout=0.2)
            if event is not None and event.to.kind is HealthKind.UP:
                self.ups.append((time.monotonic(), self.connector.server))

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.connector.close(timeout=5)


def node_of(cluster: RabbitMQCluster, url: str | None) -> int:
    ports = [port for _, port in cluster.servers]
    assert url is not None, "the consumer is not connected"
    return ports.index(int(url.rsplit(":", 1)[1]))


def one_run(cluster: RabbitMQCluster, case: str, run: int) -> Run:
    servers = cluster.servers
    tag = f"{case}-{run}-{os.getpid()}"
    topic, client_id = f"cluster/{tag}", f"sub-{tag}"
    if case == "leader":
        order = [servers[1], servers[2], servers[0]]  # on node 2, which makes the queue
    else:
        # make the session's queue on node 2, then consume through node 3
        maker = Consumer([servers[1]], topic, client_id, 16)
        maker.close()
        order = [servers[2], servers[0], servers[1]]
    consumer = Consumer(order, topic, client_id, capacity=100_000)
    publisher = Publisher([servers[0]], topic)
    publisher.wait_subscribed(consumer)
    publisher.thread.start()
    try:
        time.sleep(BEFORE_KILL_S)
        victim = node_of(cluster, consumer.connector.server)
        leader = cluster.queue_leader(client_id)
        expected = 1 if case == "leader" else 2
        assert victim == expected, f"{case}: the consumer is on node {victim + 1}"
        if case == "leader":
            assert leader == cluster.nodes[1].node_name, f"queue leader {leader}"
        else:
            assert leader != cluster.nodes[victim].node_name, f"queue leader {leader}"
        killed_at = time.monotonic()
        cluster.kill(victim)
        deadline = killed_at + MAX_RESUME_S + 10
        resumed_at = None
        while resumed_at is None and time.monotonic() < deadline:
            after = [n for n, at in list(publisher.sent_at.items()) if at > killed_at]
            first_after = min(after) if after else None
            resumed_at = next(
                (
                    at
                    for n, at in list(consumer.received)
                    if first_after is not None and n >= first_after
                ),
                None,
            )
            time.sleep(0.05)
        time.sleep(AFTER_RESUME_S)
        published = publisher.acknowledged()
        # the rest of the backlog: until everything is in or 10 s bring nothing new
        last_count, quiet_since = -1, time.monotonic()
        while published - {n for n, _ in consumer.received}:
            count = len(consumer.received)
            if count != last_count:
                last_count, quiet_since = count, time.monotonic()
            elif time.monotonic() - quiet_since > 10:
                break
            time.sleep(0.1)
        if os.environ.get("CLUSTER_DEBUG"):
            print(
                cluster.nodes[0].ctl(
                    "list_queues", "name", "messages_ready", "messages_unacknowledged", "type"
                )
            )
        ups = [(at, url) for at, url in consumer.ups if at > killed_at]
        numbers = [n for n, _ in consumer.received]
        unique = set(numbers)
        result = Run(
            case=case,
            run=run,
            killed=f"node {victim + 1}",
            failed_over_to=f"node {node_of(cluster, ups[0][1]) + 1}" if ups else "none",
            up_after_s=round(ups[0][0] - killed_at, 3) if ups else float("inf"),
            resumed_after_s=round(resumed_at - killed_at, 3) if resumed_at else float("inf"),
            published=len(published),
            received=len(unique & published),
            lost=len(published - unique),
            duplicated=len(numbers) - len(unique),
            reader_failed=consumer.failure,
            lost_sent_at=[
                (n, round(publisher.sent_at[n] - killed_at, 3))
                for n in sorted(published - unique)[:20]
            ],
        )
    finally:
        publisher.close()
        consumer.close()
    cluster.restart(victim)
    return result


def throughput(cluster: RabbitMQCluster, k: int, count: int) -> float:
    """Messages per second that k consumers, spread over the nodes, receive
    together: each subscribes to its own topic, a publisher on node 1 sends
    ``count`` QoS 0 messages round-robin over the k topics."""
    servers = cluster.servers
    tag = f"tp-{k}-{os.getpid()}"
    consumers: list[MqttConnector[bytes]] = []
    readers = []
    for i in range(k):
        server = servers[i % len(servers)]
        c: MqttConnector[bytes] = MqttConnector(
            options([server], client_id=f"{tag}-{i}", inbound_capacity=count + 10), BytesCodec()
        )
        c.start().unwrap()
        wait_up(c)
        readers.append(
            c.create_reader(
                ChannelDescriptor("in", MqttRouting(topic=f"{tag}/{i}", qos=MqttQos.AT_MOST_ONCE))
            ).unwrap()
        )
        consumers.append(c)
    time.sleep(1.0)  # the subscriptions are in place on every node
    publisher: MqttConnector[bytes] = MqttConnector(
        options([servers[0]], client_id=f"{tag}-pub", outbound_capacity=4096), BytesCodec()
    )
    publisher.start().unwrap()
    wait_up(publisher)
    writers = [
        publisher.create_writer(
            ChannelDescriptor(f"out{i}", MqttRouting(topic=f"{tag}/{i}", qos=MqttQos.AT_MOST_ONCE))
        ).unwrap()
        for i in range(k)
    ]
    got = [0] * k

    def read(i: int) -> None:
        quiet_until = time.monotonic() + 30
        while got[i] < count // k and time.monotonic() < quiet_until:
            envelope = readers[i].recv(timeout=2.0).value_or(None)
            if envelope is None:
                return
            got[i] += 1

    threads = [threading.Thread(target=read, args=(i,)) for i in range(k)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    sent = 0
    while sent < count:
        if writers[sent % k].send(b"x" * 64).value_or(None) is None:
            time.sleep(0.001)  # BackPressure: the bridge is full
            continue
        sent += 1
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    publisher.close(timeout=5)
    for c in consumers:
        c.close(timeout=5)
    return round(sum(got) / elapsed)


def listening_beyond_loopback(cluster: RabbitMQCluster) -> list[str]:
    """Listening sockets of the cluster's processes on any address but loopback."""
    groups = {str(node.pid) for node in cluster.nodes if node.running}
    ps = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True, check=True)
    pids = {p for p, g in (line.split() for line in ps.stdout.splitlines()) if g in groups}
    ss = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True)
    wrong = []
    for line in ss.stdout.splitlines():
        if not any(f"pid={pid}," in line for pid in pids):
            continue
        local = line.split()[3]
        if not (local.startswith("127.0.0.1:") or local.startswith("[::1]:")):
            wrong.append(line)
    return wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", default="leader,follower")
    parser.add_argument("--count", type=int, default=20_000, help="messages per throughput run")
    parser.add_argument("--k", default="1,3,6", help="consumer counts for the throughput")
    parser.add_argument("--json", type=Path, default=Path("reports/cluster/cluster.json"))
    parser.add_argument(
        "--queue-type",
        choices=("quorum", "classic"),
        default="quorum",
        help="mqtt.durable_queue_type; the bounds are asserted for quorum only",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="    (log) %(message)s")
    started = time.monotonic()
    print(
        f"==> a three-node RabbitMQ cluster on loopback ({args.queue_type} queues for sessions) ..."
    )
    runs: list[Run] = []
    rates: dict[int, float] = {}
    with RabbitMQCluster(durable_queue_type=args.queue_type) as cluster:
        print(f"    up in {time.monotonic() - started:.1f} s: {cluster.node_names()}")
        wrong = listening_beyond_loopback(cluster)
        cases = args.cases.split(",")
        for case in cases:
            for run in range(1, args.runs + 1):
                result = one_run(cluster, case, run)
                runs.append(result)
                print(
                    f"    {case:8} run {run}: killed {result.killed}, Up on "
                    f"{result.failed_over_to} after {result.up_after_s:.2f} s, messages again "
                    f"after {result.resumed_after_s:.2f} s; published {result.published}, "
                    f"lost {result.lost}, duplicated {result.duplicated}"
                    + (
                        f"; the reader failed: {result.reader_failed}"
                        if result.reader_failed
                        else ""
                    )
                )
        for k in (int(x) for x in args.k.split(",")):
            rates[k] = throughput(cluster, k, args.count)
            print(f"    throughput, {k} consumer(s) over the nodes: {rates[k]:,.0f} msg/s")
    report: dict[str, Any] = {
        "queue_type": args.queue_type,
        "runs": [asdict(r) for r in runs],
        "throughput": rates,
    }
    print("\ncase      failover to Up (s)   messages again (s)   lost         duplicated")
    print("          median   worst       median   worst       median worst median worst")
    for case in cases:
        mine = [r for r in runs if r.case == case]
        row: dict[str, Any] = {}
        for what in ("up_after_s", "resumed_after_s", "lost", "duplicated"):
            values = [getattr(r, what) for r in mine]
            row[what] = {"median": statistics.median(values), "worst": max(values)}
        report[case] = row
        print(
            f"{case:9} {row['up_after_s']['median']:6.2f} {row['up_after_s']['worst']:7.2f}"
            f"      {row['resumed_after_s']['median']:6.2f} {row['resumed_after_s']['worst']:7.2f}"
            f"      {row['lost']['median']:5} {row['lost']['worst']:5}"
            f" {row['duplicated']['median']:6} {row['duplicated']['worst']:5}"
        )
    report["seconds"] = round(time.monotonic() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}; {report['seconds']} s in all")
    failures = [f"listening beyond loopback: {line}" for line in wrong]
    for r in runs:
        if r.up_after_s > MAX_FAILOVER_S:
            failures.append(f"{r.case} run {r.run}: Up after {r.up_after_s} s > {MAX_FAILOVER_S}")
        if r.resumed_after_s > MAX_RESUME_S:
            failures.append(
                f"{r.case} run {r.run}: messages after {r.resumed_after_s} s > {MAX_RESUME_S}"
            )
        if r.lost > MAX_LOST:
            failures.append(f"{r.case} run {r.run}: {r.lost} lost > {MAX_LOST}")
        if r.failed_over_to in (r.killed, "none"):
            failures.append(f"{r.case} run {r.run}: Up again on {r.failed_over_to}")
        if r.reader_failed:
            failures.append(f"{r.case} run {r.run}: the reader failed: {r.reader_failed}")
        if r.published < RATE * BEFORE_KILL_S:
            failures.append(f"{r.case} run {r.run}: only {r.published} published")
    if args.queue_type != "quorum":
        print(f"not asserted for {args.queue_type} queues: {failures or 'nothing over the bounds'}")
        return 0
    for failure in failures:
        print(f"FAIL {failure}")
    if not failures:
        print(
            f"PASS: every failover Up within {MAX_FAILOVER_S} s, messages again within "
            f"{MAX_RESUME_S} s, {MAX_LOST} lost; nothing listens beyond loopback"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
