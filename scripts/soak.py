"""Soak: mixed QoS 0/1 traffic with periodic broker bounces against mosquitto.

    python scripts/soak.py [--minutes 10] [--bounce-every 30]

Not part of CI. Prints, per minute, the RSS and counters, and at the end how
many QoS 1 messages were lost (must be 0), duplicated, and how many QoS 0
messages did not arrive (allowed: at most once), plus reader drops.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from typing import Any

from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt import (
    MqttConnector,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
)
from taktora_connector.conformance.brokers import MosquittoBroker
from taktora_connector.domain import ChannelDescriptor


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--bounce-every", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second per QoS")
    args = parser.parse_args()
    fast: dict[str, Any] = {
        "reconnect_initial_backoff": 0.05,
        "reconnect_max_backoff": 0.5,
        "reconnect_attempt_ceiling": None,
    }
    broker = MosquittoBroker(persistent=True).start()
    base = MqttConnectorOptions(host="127.0.0.1", port=broker.port, **fast)
    sub: MqttConnector[Any] = MqttConnector(
        base.replace(client_id="soak-sub", clean_session=False, inbound_capacity=100_000)
    )
    pub: MqttConnector[Any] = MqttConnector(
        base.replace(client_id="soak-pub", outbound_capacity=2_000)
    )
    sub.start()
    pub.start()
    readers = {
        q: sub.create_reader(
            ChannelDescriptor(f"r{q}", MqttRouting(topic=f"soak/{q}", qos=MqttQos(q)))
        ).unwrap()
        for q in (0, 1)
    }
    writers = {
        q: pub.create_writer(
            ChannelDescriptor(f"w{q}", MqttRouting(topic=f"soak/{q}", qos=MqttQos(q)))
        ).unwrap()
        for q in (0, 1)
    }
    time.sleep(1.0)
    # One byte per message number, so the bookkeeping barely shows in the RSS.
    limit = int(args.rate * args.minutes * 60 * 1.2) + 1000
    accepted = {0: bytearray(limit), 1: bytearray(limit)}
    received = {0: bytearray(limit), 1: bytearray(limit)}
    sent = [0]
    refused = {0: 0, 1: 0}
    stop = threading.Event()

    def produce() -> None:
        n = 0
        interval = 1.0 / args.rate
        next_at = time.monotonic()
        while not stop.is_set():
            if n >= limit:
                return
            for q in (0, 1):
                if is_successful(writers[q].send(n)):
                    accepted[q][n] = 1
                else:
                    refused[q] += 1
            n += 1
            sent[0] = n
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def consume(q: int) -> None:
        while True:
            result = readers[q].recv(0.5)
            if not is_successful(result):
                return
            envelope = result.unwrap()
            if envelope is None:
                if stop.is_set():
                    return
                continue
            value = envelope.value
            received[q][value] = min(255, received[q][value] + 1)

    threads = [threading.Thread(target=produce)] + [
        threading.Thread(target=consume, args=(q,)) for q in (0, 1)
    ]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    end = started + args.minutes * 60
    next_bounce = started + args.bounce_every
    next_report = started + 60
    bounces = 0
    print(
        f"soak: {args.minutes} min, bounce every {args.bounce_every} s, {args.rate} msg/s per QoS, start RSS {rss_mb():.1f} MB"
    )
    while time.monotonic() < end:
        time.sleep(0.2)
        now = time.monotonic()
        if now >= next_bounce:
            broker.restart(pause=0.2, kill=False)
            bounces += 1
            next_bounce += args.bounce_every
        if now >= next_report:
            print(
                f"  t={now - started:5.0f} s  RSS {rss_mb():6.1f} MB  bounces {bounces}  "
                f"accepted q0={sum(accepted[0])} q1={sum(accepted[1])}  "
                f"received q0={sum(map(bool, received[0]))} q1={sum(map(bool, received[1]))}",
                flush=True,
            )
            next_report += 60
    stop.set()
    threads[0].join()
    writers[1].flush(60)
    time.sleep(5)
    for thread in threads[1:]:
        thread.join(30)
    total = sent[0]
    lost1 = sum(1 for n in range(total) if accepted[1][n] and not received[1][n])
    dup1 = sum(max(0, received[1][n] - 1) for n in range(total))
    missing0 = sum(1 for n in range(total) if accepted[0][n] and not received[0][n])
    print(
        f"soak result: bounces {bounces}; QoS 1 accepted {sum(accepted[1])}, lost {lost1}, "
        f"duplicated {dup1}; QoS 0 accepted {sum(accepted[0])}, not arrived {missing0} "
        f"(at most once); refused q0={refused[0]} q1={refused[1]}; reader drops "
        f"q0={readers[0].dropped} q1={readers[1].dropped}; final RSS {rss_mb():.1f} MB"
    )
    pub.close()
    sub.close()
    broker.close()


if __name__ == "__main__":
    main()
