"""Steps of features/sidecar.feature."""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import threading
import time
from typing import Any

from pytest_bdd import given, parsers, then
from returns.pipeline import is_successful

from taktora_connector.conformance.world import PATIENCE, World, harness_thread

#: Socket methods that move bytes or open a connection: protocol I/O when the
#: socket carries MQTT. Anything else (fileno, setblocking, select, a wake-up
#: byte on a socket pair or pipe) is not protocol I/O.
_IO_METHODS = frozenset(
    {
        "send",
        "sendall",
        "sendto",
        "sendmsg",
        "sendfile",
        "recv",
        "recv_into",
        "recvfrom",
        "recvfrom_into",
        "recvmsg",
        "recvmsg_into",
        "read",
        "write",
        "connect",
        "connect_ex",
        "do_handshake",
    }
)


def mqtt_ports(world: World) -> set[int]:
    """Ports that carry MQTT in this scenario: the broker's and every fault proxy's."""
    ports = {port for port in (world.port, world.tls_port) if port}
    ports |= {party.proxy.port for party in world.parties.values() if party.proxy is not None}
    return ports


def _peer_port(owner: Any) -> int | None:
    """The remote port of a socket-like object, or None (unconnected, AF_UNIX, a pipe)."""
    sock = getattr(owner, "owner", None) or owner  # _ssl._SSLSocket -> its ssl.SSLSocket
    getpeername = getattr(sock, "getpeername", None)
    if getpeername is None:
        return None
    try:
        peer = getpeername()
    except (OSError, TypeError, ValueError):
        return None
    if isinstance(peer, tuple) and len(peer) >= 2 and isinstance(peer[1], int):
        return peer[1]
    return None  # AF_UNIX socket pairs (asyncio's self-pipe) have a str or bytes address


def mqtt_io_call(function: Any, ports: set[int]) -> str | None:
    """``function`` (a C call seen by the profiler) as ``method -> port`` when it is
    I/O on a socket connected to one of ``ports``, else None."""
    owner = getattr(function, "__self__", None)
    if owner is None or inspect.ismodule(owner):
        return None
    name = getattr(function, "__name__", "")
    if name not in _IO_METHODS:
        return None
    port = _peer_port(owner)
    if port is None or port not in ports:
        return None
    return f"{type(owner).__name__}.{name} -> port {port}"


@then(
    parsers.parse(
        'sending {count:d} values through "{writer}" and receiving them on "{reader}" does no I/O on an MQTT socket on this thread'
    )
)
def _no_io_on_caller(conformance_world: World, count: int, writer: str, reader: str) -> None:
    handle_w, handle_r = conformance_world.writer(writer), conformance_world.reader(reader)
    ports = mqtt_ports(conformance_world)
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and (call := mqtt_io_call(arg, ports)) is not None:
            calls.append(call)

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
    assert not calls, f"MQTT socket I/O on the application thread: {sorted(set(calls))}"


#: Packages of MQTT stacks and event loops whose types must not reach the application
#: (docs/connector-contract.md lists them).
_FORBIDDEN = (
    "paho",
    "gmqtt",
    "aiomqtt",
    "asyncio_mqtt",
    "amqtt",
    "hbmqtt",
    "asyncio",
    "anyio",
    "trio",
    "uvloop",
    "gevent",
    "twisted",
    "tornado",
)


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
            if any(re.search(rf"\b{bad}\.", signature) for bad in _FORBIDDEN):
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
