"""Shared fixtures: real brokers on loopback and connectors that clean up after themselves."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest


def _missing_from_the_link_tree() -> list[str]:
    """Source files that setuptools' strict editable install has not linked yet.

    The install links files, not folders: a module added (by you, or by a rebase)
    is not importable until `make install` links again. Say so plainly instead of
    failing later with a ModuleNotFoundError."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("taktora_connector")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    trees = [r for r in roots if "__editable__" in str(r)]
    if not trees:
        return []
    checkout = Path(__file__).resolve().parent.parent
    missing = []
    for folder in ("domain", "ports", "adapters", "conformance", "features"):
        for source in (checkout / folder).rglob("*.py"):
            relative = source.relative_to(checkout)
            if not (trees[0] / relative).exists():
                missing.append(str(relative))
    return missing


if _missing := _missing_from_the_link_tree():
    pytest.exit(
        f"the editable install has not linked {_missing[0]} (and {len(_missing) - 1} more "
        "new files) yet: run `make install` (any make target does it)",
        returncode=4,
    )

from taktora_connector.adapters.mqtt import (  # noqa: E402
    MqttConnector,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
)
from taktora_connector.conformance.brokers import (  # noqa: E402
    EmbeddedBroker,
    MosquittoBroker,
    mosquitto_binary,
)
from taktora_connector.domain import ChannelDescriptor, HealthKind  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_ids = itertools.count()


def unique_id(prefix: str = "t") -> str:
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


def unmeasured_env(**extra: str) -> dict[str, str]:
    """This process's environment without coverage's variables: a subprocess started
    with it is not measured (for runs that repeat what measured tests cover; tracing
    doubles their CPU time)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("COVERAGE_")}
    return env | extra


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.005)


def require_mosquitto() -> None:
    if mosquitto_binary() is None:
        if IN_CI:
            pytest.fail("mosquitto is required under CI=true but is not installed")
        pytest.skip("mosquitto not installed: apt-get install mosquitto mosquitto-clients")


@pytest.fixture
def amqtt_broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker().start()
    yield broker
    broker.close()


@pytest.fixture
def mosquitto_broker() -> Iterator[MosquittoBroker]:
    require_mosquitto()
    broker = MosquittoBroker().start()
    yield broker
    broker.close()


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker(
    request: pytest.FixtureRequest, brokers: Callable[..., EmbeddedBroker | MosquittoBroker]
) -> EmbeddedBroker | MosquittoBroker:
    """Each broker-level test runs against both brokers."""
    return brokers(request.param)


ConnectFn = Callable[..., MqttConnector[Any]]


@pytest.fixture
def connect() -> Iterator[ConnectFn]:
    """Make connectors with unique client ids; all are closed at teardown."""
    made: list[MqttConnector[Any]] = []

    def make(
        port: int, *, start: bool = True, wait_up: bool = True, codec: Any = None, **options: Any
    ) -> MqttConnector[Any]:
        options.setdefault("client_id", unique_id())
        if "servers" not in options:  # several servers: they say where, port is unused
            options.setdefault("host", "127.0.0.1")
            options["port"] = port
        connector: MqttConnector[Any] = MqttConnector(MqttConnectorOptions(**options), codec)
        made.append(connector)
        if start:
            connector.start().unwrap()
            if wait_up:
                wait_until(lambda: connector.health().kind is HealthKind.UP, 10, "Up")
        return connector

    yield make
    for connector in made:
        connector.close(timeout=2.0)


def loopback(connect: ConnectFn, port: int, **options: Any) -> tuple[Any, Any, Any]:
    """A connector with one writer and one reader on the same topic."""
    conn = connect(port, **options)
    topic = f"lb/{unique_id()}"
    reader = conn.create_reader(
        ChannelDescriptor("in", MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE))
    ).unwrap()
    writer = conn.create_writer(
        ChannelDescriptor("out", MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE))
    ).unwrap()
    return conn, writer, reader


@pytest.fixture
def no_thread_leaks() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield
    wait_until(
        lambda: (
            not [
                t
                for t in threading.enumerate()
                if t.ident not in before and t.name.startswith("taktora-mqtt")
            ]
        ),
        5,
        "connector threads to end",
    )


@pytest.fixture
def thread_errors() -> Iterator[list[threading.ExceptHookArgs]]:
    """Collects exceptions that escape any thread; tests assert it stays empty."""
    seen: list[threading.ExceptHookArgs] = []
    previous = threading.excepthook
    threading.excepthook = seen.append
    yield seen
    threading.excepthook = previous


@pytest.fixture
def brokers() -> Iterator[Callable[..., EmbeddedBroker | MosquittoBroker]]:
    """Start brokers of a kind; request it before ``connect`` so that the
    connectors close first (amqtt stalls shutting down under live TLS clients)."""
    made: list[EmbeddedBroker | MosquittoBroker] = []

    def make(kind: str, **kwargs: Any) -> EmbeddedBroker | MosquittoBroker:
        broker: EmbeddedBroker | MosquittoBroker
        if kind == "mosquitto":
            require_mosquitto()
            broker = MosquittoBroker(**kwargs).start()
        else:
            broker = EmbeddedBroker(**kwargs).start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()
