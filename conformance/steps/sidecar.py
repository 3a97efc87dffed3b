"""Steps of features/sidecar.feature."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import threading
import time
from typing import Any

from pytest_bdd import given, parsers, then
from returns.pipeline import is_successful

from taktora_connector.conformance.world import PATIENCE, World, harness_thread

_SOCKET_MODULES = ("socket", "_socket", "ssl", "_ssl", "select", "selectors")


def _is_socket_call(function: Any) -> bool:
    owner = getattr(function, "__self__", None)
    if owner is not None and not inspect.ismodule(owner):
        return type(owner).__module__ in _SOCKET_MODULES
    return getattr(function, "__module__", None) in _SOCKET_MODULES


@then(
    parsers.parse(
        'sending {count:d} values through "{writer}" and receiving them on "{reader}" makes no socket call on this thread'
    )
)
def _no_io_on_caller(conformance_world: World, count: int, writer: str, reader: str) -> None:
    handle_w, handle_r = conformance_world.writer(writer), conformance_world.reader(reader)
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and _is_socket_call(arg):
            calls.append(getattr(arg, "__qualname__", repr(arg)))

    outcomes = []
    received = 0
    sys.setprofile(profile)
    try:
        for i in range(count):
            result = handle_w.send(i)
            if is_successful(result):
                outcomes.append(result.unwrap())
        deadline = time.monotonic() + PATIENCE
        while received < len(outcomes) and time.monotonic() < deadline:
            got = handle_r.try_recv()
            if is_successful(got) and got.unwrap() is not None:
                received += 1
            else:
                time.sleep(0.001)
    finally:
        sys.setprofile(None)
    assert outcomes, "no send was accepted"
    assert received == len(outcomes), f"received {received} of {len(outcomes)}"
    assert not calls, f"socket calls on the application thread: {sorted(set(calls))}"


_FORBIDDEN = ("paho", "asyncio", "amqtt")


def _leaks(value: Any, where: str, seen: set[int]) -> list[str]:
    if id(value) in seen or value is None or isinstance(value, str | bytes | int | float | bool):
        return []
    seen.add(id(value))
    problems = []
    for klass in type(value).__mro__:
        if klass.__module__.split(".")[0] in _FORBIDDEN:
            problems.append(f"{where} is a {klass.__module__}.{klass.__qualname__}")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            problems += _leaks(getattr(value, item.name), f"{where}.{item.name}", seen)
    for name in dir(type(value)):
        if name.startswith("_"):
            continue
        member = getattr(type(value), name, None)
        if callable(member):
            try:
                signature = str(inspect.signature(member))
            except (TypeError, ValueError):
                continue
            if any(bad in signature for bad in _FORBIDDEN):
                problems.append(f"{where}.{name}{signature} names a forbidden type")
    return problems


@then(parsers.parse('nothing the ports returned for "{name}" is a paho or asyncio type'))
def _no_leaks(conformance_world: World, name: str) -> None:
    world = conformance_world
    connector = world.party(name).connector
    subscription = connector.subscribe_health()
    sample = world.send(next(iter(world.writers)), "leak-check")
    sample.delivery.wait(PATIENCE)
    envelope = world.receive(next(iter(world.readers)))
    values = {
        "connector": connector,
        "health": connector.health(),
        "subscription": subscription,
        "writer": next(iter(world.writers.values())),
        "reader": next(iter(world.readers.values())),
        "send outcome": sample,
        "delivery": sample.delivery,
        "envelope": envelope,
    }
    problems: list[str] = []
    seen: set[int] = set()
    for where, value in values.items():
        problems += _leaks(value, where, seen)
    subscription.close()
    assert not problems, "\n".join(problems)


@given("the threads running now are noted")
def _note_threads(conformance_world: World) -> None:
    conformance_world.threads_before = {t.ident or 0 for t in threading.enumerate()}


@then(parsers.parse("within {seconds:g} seconds no thread started since is alive"))
def _no_new_threads(conformance_world: World, seconds: float) -> None:
    def leftovers() -> list[str]:
        return [
            t.name
            for t in threading.enumerate()
            if (t.ident or 0) not in conformance_world.threads_before
            and t.is_alive()
            and not harness_thread(t)
        ]

    deadline = time.monotonic() + seconds
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not leftovers(), f"threads still alive after close: {leftovers()}"
