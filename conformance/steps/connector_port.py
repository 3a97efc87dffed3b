"""Steps of features/connector_port.feature."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pytest_bdd import parsers, then, when
from returns.pipeline import is_successful

from taktora_connector.adapters.mqtt import MqttRouting
from taktora_connector.conformance.world import PATIENCE, World, is_probe, wait_for
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
    ConnectorDown,
    HealthEvent,
    HealthKind,
)
from taktora_connector.ports import HealthSubscription

from .shared import (
    KINDS,
    illegal_events,
    probe_all,
)


@then(parsers.re(r'"(?P<name>[^"]+)" is (?P<kind>\w+)$'))
def _is(conformance_world: World, name: str, kind: str) -> None:
    health = conformance_world.party(name).connector.health()
    assert health.kind is KINDS[kind.lower()], f"{name!r} is {health}, not {kind}"


@then(parsers.parse('"{name}" has a non-empty name'))
def _has_name(conformance_world: World, name: str) -> None:
    connector_name = conformance_world.party(name).connector.name
    assert isinstance(connector_name, str)
    assert connector_name.strip()


@then(parsers.parse('creating a writer and a reader on "{name}" returns Success'))
def _create_both(conformance_world: World, name: str) -> None:
    connector = conformance_world.party(name).connector
    routing = MqttRouting(topic=conformance_world.topic("port/t"))
    writer = connector.create_writer(ChannelDescriptor("port-writer", routing))
    reader = connector.create_reader(ChannelDescriptor("port-reader", routing))
    assert is_successful(writer), f"create_writer returned {writer}"
    assert is_successful(reader), f"create_reader returned {reader}"
    conformance_world.scratch["channels"] = (writer.unwrap(), reader.unwrap())


@then(
    parsers.parse(
        'creating a writer with a routing that has only a filter on "{name}" returns a ConfigurationError'
    )
)
def _writer_needs_topic(conformance_world: World, name: str) -> None:
    connector = conformance_world.party(name).connector
    routing = MqttRouting(filter=conformance_world.topic("only/+"))
    result = connector.create_writer(ChannelDescriptor("filter-writer", routing))
    assert isinstance(result.failure(), ConfigurationError), f"got {result}"


@then(parsers.parse('the channels of "{name}" refuse with ConnectorDown'))
def _channels_refuse(conformance_world: World, name: str) -> None:
    writer, reader = conformance_world.scratch["channels"]
    _refuse_with_connector_down(writer, reader)


@then(parsers.parse('the writer "{writer}" and the reader "{reader}" refuse with ConnectorDown'))
def _named_channels_refuse(conformance_world: World, writer: str, reader: str) -> None:
    _refuse_with_connector_down(conformance_world.writer(writer), conformance_world.reader(reader))


def _refuse_with_connector_down(writer: Any, reader: Any) -> None:
    for call, result in (
        ("send", writer.send("late")),
        ("try_recv()", reader.try_recv()),
        ("recv(0.1)", reader.recv(0.1)),
    ):
        error = None if is_successful(result) else result.failure()
        assert isinstance(error, ConnectorDown), (
            f"{call} after close returned {result}, not Failure(ConnectorDown)"
        )


@then(
    parsers.parse(
        'since the broker went away "{name}" went to Degraded, then Connecting, and last to Up'
    )
)
def _loss_sequence(conformance_world: World, name: str) -> None:
    start = conformance_world.scratch[f"events before loss {name}"]
    wait_for(  # health() may say Up a moment before the event reaches subscribers
        lambda: [e.to.kind for e in conformance_world.health_events(name)][-1:] == [HealthKind.UP],
        PATIENCE,
        f"the event to Up of {name!r}",
    )
    events = conformance_world.health_events(name)[start:]
    kinds = [event.to.kind for event in events]
    seen = f"health since the loss went to {[k.value for k in kinds]}"
    assert kinds[:2] == [HealthKind.DEGRADED, HealthKind.CONNECTING], seen
    assert kinds[-1:] == [HealthKind.UP], seen
    everything = conformance_world.health_events(name)
    assert not illegal_events(everything), illegal_events(everything)
    # HealthEvent.at is monotonic-clock nanoseconds, in order.
    stamps = [event.at for event in everything]
    low, high = conformance_world.began_monotonic_ns - 10**9, time.monotonic_ns() + 10**9
    assert all(low <= at <= high for at in stamps), f"HealthEvent.at not monotonic ns: {stamps}"
    assert stamps == sorted(stamps), f"HealthEvent.at goes back in time: {stamps}"


@when(parsers.parse('"{name}" is entered as a context manager'))
def _entered(conformance_world: World, name: str) -> None:
    connector = conformance_world.party(name).connector
    entered = connector.__enter__()
    assert entered is connector, f"__enter__ of {name!r} returned {entered!r}, not the connector"


@when(parsers.parse('the with block of "{name}" ends'))
def _with_ends(conformance_world: World, name: str) -> None:
    conformance_world.party(name).connector.__exit__(None, None, None)
    conformance_world.settle_closed(name)


@when(parsers.parse('the writer "{writer}" is closed'))
def _writer_closed(conformance_world: World, writer: str) -> None:
    conformance_world.writer(writer).close()


@then(parsers.parse('sending through "{writer}" is refused'))
def _sending_refused(conformance_world: World, writer: str) -> None:
    result = conformance_world.writer(writer).send("after close")
    assert not is_successful(result), f"a closed writer accepted a value: {result}"


# -- iterating readers and health subscriptions ---------------------------------------


@dataclass
class _Iteration:
    """A ``for item in iterable`` loop the kit runs on a thread of its own."""

    thread: threading.Thread
    got: list[Any] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def _iteration(world: World, name: str) -> _Iteration:
    found = world.scratch.get(f"iteration {name}")
    assert isinstance(found, _Iteration), f"{name!r} is not being iterated"
    return found


def _wait_for_items(iteration: _Iteration, enough: Callable[[], bool]) -> None:
    """Until the loop yielded ``enough``, raised, ended or the patience ran out; the
    caller's assertion then says what it yielded."""
    deadline = time.monotonic() + PATIENCE
    while not enough() and not iteration.errors:
        if time.monotonic() >= deadline or not iteration.thread.is_alive():
            return
        time.sleep(0.005)


@when(parsers.parse('every reader is subscribed, probed through "{name}"'))
def _all_probed(conformance_world: World, name: str) -> None:
    probe_all(conformance_world, name)


@when(parsers.parse('"{name}" is iterated on a thread of its own'))
def _iterated(conformance_world: World, name: str) -> None:
    """A reader or a health subscription, iterated until its loop ends by itself."""
    world = conformance_world
    iterable: Iterable[Any] = (
        world.reader(name) if name in world.readers else world.subscriptions[name]
    )

    def run() -> None:
        try:
            for item in iterable:
                iteration.got.append(item)
        except BaseException as err:  # reported by the step that expects the end
            iteration.errors.append(err)

    # A harness thread (not the connector's): still running if the loop never ends,
    # which the kit reports; it is a daemon, so it never keeps the run alive.
    thread = threading.Thread(target=run, name=f"conformance-harness-iterate-{name}", daemon=True)
    iteration = _Iteration(thread)
    world.scratch[f"iteration {name}"] = iteration
    thread.start()


@then(parsers.parse('the iteration of "{name}" yields the values {first:d} to {last:d}'))
def _iteration_yields(conformance_world: World, name: str, first: int, last: int) -> None:
    iteration = _iteration(conformance_world, name)
    expected = list(range(first, last + 1))

    def values() -> list[Any]:
        return [e.value for e in list(iteration.got) if not is_probe(e.value)]

    _wait_for_items(iteration, lambda: len(values()) >= len(expected))
    assert not iteration.errors, f"iterating {name!r} raised {iteration.errors[0]!r}"
    time.sleep(0.2)  # a duplicate, if one were coming, would be here by now
    assert values() == expected, f"iterating {name!r} yielded {values()}, not {expected}"


@then(parsers.parse('the iteration of "{name}" ends promptly'))
def _iteration_ends(conformance_world: World, name: str) -> None:
    iteration = _iteration(conformance_world, name)
    iteration.thread.join(PATIENCE)
    assert not iteration.thread.is_alive(), (
        f"iterating {name!r} did not end within {PATIENCE:g} s after it was closed"
    )
    assert not iteration.errors, (
        f"iterating {name!r} raised {iteration.errors[0]!r} instead of ending once closed"
    )


@when(parsers.parse('the reader "{reader}" is closed'))
def _reader_closed(conformance_world: World, reader: str) -> None:
    conformance_world.reader(reader).close()


@then(parsers.parse('the reader "{reader}" refuses with ConnectorDown'))
def _reader_refuses(conformance_world: World, reader: str) -> None:
    handle = conformance_world.reader(reader)
    for call, result in (("try_recv()", handle.try_recv()), ("recv(0.2)", handle.recv(0.2))):
        error = None if is_successful(result) else result.failure()
        assert isinstance(error, ConnectorDown), (
            f"{call} of the closed reader {reader!r} returned {result}, not Failure(ConnectorDown)"
        )


def _kinds(events: Iterable[HealthEvent]) -> list[tuple[str, str]]:
    return [(e.from_.kind.value, e.to.kind.value) for e in events]


def _bounded_next(
    subscription: HealthSubscription, timeout: float, bound: float
) -> tuple[bool, Any]:
    """``subscription.next(timeout)`` on a harness thread: (returned within ``bound``
    seconds, what it returned)."""
    answer: list[Any] = []
    waiter = threading.Thread(
        target=lambda: answer.append(subscription.next(timeout)),
        name="conformance-harness-next",
        daemon=True,
    )
    waiter.start()
    waiter.join(bound)
    return bool(answer), answer[0] if answer else None


@then(parsers.parse('next({seconds:g}) of "{sub}" gives no event'))
def _next_times_out(conformance_world: World, seconds: float, sub: str) -> None:
    bound = seconds + PATIENCE
    returned, event = _bounded_next(conformance_world.subscriptions[sub], seconds, bound)
    assert returned, f"next({seconds:g}) of {sub!r} did not return within {bound:g} s"
    assert event is None, f"next({seconds:g}) of {sub!r} gave {event!r} though nothing happened"


@when(parsers.parse('"{sub}" waits for its next event on a thread of its own'))
def _waits_for_next(conformance_world: World, sub: str) -> None:
    subscription = conformance_world.subscriptions[sub]
    answer: list[Any] = []
    waiter = threading.Thread(
        target=lambda: answer.append(subscription.next(2 * PATIENCE)),
        name=f"conformance-harness-next-{sub}",
        daemon=True,
    )
    waiter.start()
    conformance_world.scratch[f"waiting {sub}"] = (waiter, answer)


def _settled_events(world: World, name: str) -> list[HealthEvent]:
    """Every event the kit's own subscription to ``name`` (made before any event) saw,
    once the last one is to the state ``health()`` reports: ``health()`` may change a
    moment before the event reaches subscribers."""
    connector = world.party(name).connector

    def caught_up() -> bool:
        events = world.health_events(name)
        return bool(events) and events[-1].to.kind is connector.health().kind

    wait_for(caught_up, PATIENCE, f"the event to {connector.health()} of {name!r}")
    return world.health_events(name)


@then(parsers.parse('the wait of "{sub}" gave the first event of "{name}"'))
def _wait_gave(conformance_world: World, sub: str, name: str) -> None:
    waiter, answer = conformance_world.scratch[f"waiting {sub}"]
    waiter.join(2 * PATIENCE + PATIENCE)
    assert not waiter.is_alive(), f"next({2 * PATIENCE:g}) of {sub!r} did not return"
    (event,) = answer
    seen = _settled_events(conformance_world, name)
    assert event is not None, (
        f"next({2 * PATIENCE:g}) of {sub!r} gave None though {name!r} emitted "
        f"{_kinds(seen[:1])} while it waited"
    )
    assert _kinds([event]) == _kinds(seen[:1]), (
        f"next() of {sub!r} gave {_kinds([event])}, the first event was {_kinds(seen[:1])}"
    )


@then(
    parsers.re(
        r'the iteration of "(?P<sub>[^"]+)" yields every event of "(?P<name>[^"]+)" so far'
        r"(?P<down>, the last one to Down)?$"
    )
)
def _iteration_yields_events(
    conformance_world: World, sub: str, name: str, down: str | None
) -> None:
    """The same events, in the same order, as the kit's own subscription to the
    connector (made before any event) saw."""
    iteration = _iteration(conformance_world, sub)
    seen = _settled_events(conformance_world, name)
    if down:
        assert seen[-1].to.kind is HealthKind.DOWN, f"{name!r} is {seen[-1].to}, not Down"
    expected = _kinds(seen)
    _wait_for_items(iteration, lambda: len(iteration.got) >= len(expected))
    assert not iteration.errors, f"iterating {sub!r} raised {iteration.errors[0]!r}"
    assert _kinds(iteration.got) == expected, (
        f"iterating {sub!r} yielded {_kinds(iteration.got)}; {name!r} emitted {expected}"
    )


@when(parsers.parse('the health subscription "{sub}" is closed'))
def _subscription_closed(conformance_world: World, sub: str) -> None:
    conformance_world.subscriptions[sub].close()


@then(parsers.parse('next of "{sub}" gives no event without waiting out its timeout'))
def _closed_next(conformance_world: World, sub: str) -> None:
    asked = 3 * PATIENCE
    returned, event = _bounded_next(conformance_world.subscriptions[sub], asked, PATIENCE)
    assert returned, (
        f"next({asked:g}) of the closed subscription {sub!r} did not return within "
        f"{PATIENCE:g} s: a closed subscription's next gives None without waiting"
    )
    assert event is None, f"next() of the closed subscription {sub!r} gave {event!r}"
