"""Steps of features/bridges.feature."""

from __future__ import annotations

import json
import threading
import time

from pytest_bdd import given, parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.conformance.proxy import PacketType
from taktora_connector.conformance.world import PATIENCE, World
from taktora_connector.domain import (
    BackPressure,
)

from .shared import (
    routing_for,
)


@given(
    parsers.re(
        r'(?P<count>\d+) writers on "(?P<name>[^"]+)" to topic "(?P<topic>[^"]+)" at QoS (?P<level>\d)$'
    )
)
def _writers(conformance_world: World, count: str, name: str, topic: str, level: str) -> None:
    names = [f"w{i}" for i in range(int(count))]
    for writer in names:
        conformance_world.add_writer(
            name, writer, routing_for(conformance_world, "topic", topic, int(level))
        )
    conformance_world.scratch["writers"] = names


@then(parsers.parse('after {seconds:g} seconds "{reader}" yields exactly {held:d} messages'))
def _holds(conformance_world: World, seconds: float, reader: str, held: int) -> None:
    time.sleep(seconds)  # the broker has them all: let them reach the reader's bridge
    got = conformance_world.drain(reader, quiet=0.2)
    assert len(got) == held, f"{len(got)} messages waited in a bridge of capacity {held}"


@then(
    parsers.parse("at least {low:d} and at most {high:d} values were accepted before BackPressure")
)
def _accepted_between(conformance_world: World, low: int, high: int) -> None:
    assert isinstance(conformance_world.refusal, BackPressure), (
        f"refused with {conformance_world.refusal!r}"
    )
    assert low <= conformance_world.accepted_before_refusal <= high, (
        f"{conformance_world.accepted_before_refusal} accepted"
    )


@when(
    parsers.parse(
        "{threads:d} threads each send {count:d} numbered values through those writers, retrying on BackPressure"
    )
)
def _concurrent_send(conformance_world: World, threads: int, count: int) -> None:
    world = conformance_world
    writers = [world.writer(name) for name in world.scratch["writers"]]
    accepted: list[tuple[int, int, str]] = []  # (writer index, sequence number, value)
    lock = threading.Lock()
    errors: list[str] = []

    def run(thread: int) -> None:
        for n in range(count):
            index = (thread + n) % len(writers)
            value = f"t{thread}-{n}"
            deadline = time.monotonic() + PATIENCE
            while True:
                result = writers[index].send(value)
                if is_successful(result):
                    with lock:
                        accepted.append((index, result.unwrap().sequence_number, value))
                    break
                if not isinstance(result.failure(), BackPressure) or time.monotonic() > deadline:
                    errors.append(f"{value}: {result}")
                    return
                time.sleep(0.0005)

    workers = [
        threading.Thread(target=run, args=(i,), name=f"kit-sender-{i}") for i in range(threads)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    world.scratch["workers"] = (workers, started)
    world.scratch["accepted"] = accepted
    world.scratch["errors"] = errors


@then(parsers.parse("all threads finish within {seconds:g} seconds"))
def _threads_finish(conformance_world: World, seconds: float) -> None:
    workers, started = conformance_world.scratch["workers"]
    for worker in workers:
        worker.join(max(0.0, started + seconds - time.monotonic()))
    assert not any(w.is_alive() for w in workers), "senders still running: deadlock or livelock"
    assert not conformance_world.scratch["errors"], conformance_world.scratch["errors"][:5]


@then("every accepted value was published on the wire exactly once")
def _exactly_once_on_wire(conformance_world: World) -> None:
    world = conformance_world
    accepted = world.scratch["accepted"]
    for name in world.scratch["writers"]:
        assert is_successful(world.writer(name).flush(PATIENCE * 3))
    party = world.party(world.writer_owner[world.scratch["writers"][0]])
    expected = sorted(json.dumps(value) for _, _, value in accepted)
    wire = sorted(p.payload().decode() for p in party.wire(PacketType.PUBLISH))
    assert len(wire) == len(expected), f"{len(wire)} PUBLISH packets for {len(expected)} accepted"
    assert wire == expected


@then("the sequence numbers of each writer strictly increase")
def _sequences(conformance_world: World) -> None:
    per_writer: dict[int, list[int]] = {}
    for index, sequence, _ in conformance_world.scratch["accepted"]:
        per_writer.setdefault(index, []).append(sequence)
    for sequences in per_writer.values():
        ordered = sorted(sequences)
        assert ordered == list(range(len(ordered))), "sequence numbers skip or repeat"
