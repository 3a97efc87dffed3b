"""One scenario's world: its broker, the connectors under test and what they did.

Rules of this module:
- connectors come only from the factory under test and are used only through
  the ports (``Connector``, ``ChannelWriter``, ``ChannelReader``,
  ``HealthSubscription``) with ``MqttRouting`` and ``MqttConnectorOptions``;
- each connector reaches the broker through its own ``FaultProxy``, so a
  scenario can stall or observe one connector's path without touching others;
- every topic a scenario names is put under a namespace unique to the
  scenario, so scenarios never see each other's messages, even on a shared
  external broker (topics starting with ``$`` are left as they are);
- ``close()`` releases everything, whatever state the scenario ended in.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from returns.pipeline import is_successful
from returns.result import Result

from taktora_connector.adapters.codecs import JsonCodec
from taktora_connector.adapters.mqtt import (
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
    TlsOptions,
)
from taktora_connector.domain import (
    BackPressure,
    ChannelDescriptor,
    ConnectorError,
    HealthEvent,
    HealthKind,
    RecvEnvelope,
    SendOutcome,
)
from taktora_connector.ports import (
    ChannelReader,
    ChannelWriter,
    Connector,
    HealthSubscription,
    PayloadCodec,
)

from .brokers import EmbeddedBroker, MosquittoBroker, TlsMaterial
from .factory import ConnectorFactory
from .probes import BrokerFacts, Probe
from .proxy import FaultProxy, PacketType, WirePacket
from .wire_rules import Traffic

#: How many packets of one scenario its wire log keeps.
WIRE_KEEP = 600
#: How long a step waits for something that should happen promptly.
PATIENCE = 10.0
#: The longest one ``send`` may take, on any path (stalled, PUBACKs held back, broker
#: away): the port promises that send never blocks. A bound on waiting, not a speed
#: target: a send that queues takes microseconds.
SEND_BOUND = 0.5


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.005)


@dataclass
class Party:
    """One connector under test with its proxy, channels and health subscriptions."""

    name: str
    connector: Connector[Any, MqttRouting]
    proxy: FaultProxy | None
    client_id: str
    codec: PayloadCodec[Any]
    health_log: list[HealthEvent] = field(default_factory=list)
    watcher: HealthSubscription | None = None

    def wire(self, kind: PacketType, direction: str = "out") -> list[WirePacket]:
        if self.proxy is None:
            return []
        return self.proxy.seen(kind, direction)


#: Where the kit's session keeps the run's broker facts for every scenario's world.
BROKER_FACTS = pytest.StashKey[BrokerFacts]()
#: ... and what the connector under test claims (its ``capabilities``), read once.
CLAIMS = pytest.StashKey[frozenset[str]]()


@dataclass
class World:
    factory: ConnectorFactory
    broker_url: str | None
    ns: str = field(default_factory=lambda: f"k{uuid.uuid4().hex[:10]}")
    broker: EmbeddedBroker | None = None  # the in-process amqtt, when the kit uses it
    #: which broker the kit starts per scenario: "amqtt" (in process) or "mosquitto"
    managed: str = "amqtt"
    mosquitto: MosquittoBroker | None = None
    host: str = "127.0.0.1"
    port: int = 0
    tls_port: int = 0
    tls_material: TlsMaterial | None = None
    parties: dict[str, Party] = field(default_factory=dict)
    writers: dict[str, ChannelWriter[Any, MqttRouting]] = field(default_factory=dict)
    readers: dict[str, ChannelReader[Any, MqttRouting]] = field(default_factory=dict)
    writer_owner: dict[str, str] = field(default_factory=dict)
    reader_owner: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, HealthSubscription] = field(default_factory=dict)
    outcomes: dict[str, list[SendOutcome]] = field(default_factory=dict)
    received: dict[str, list[RecvEnvelope[Any, MqttRouting]]] = field(default_factory=dict)
    refusal: ConnectorError | None = None
    accepted_before_refusal: int = 0
    threads_before: set[int] = field(default_factory=set)
    scratch: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], object]] = field(default_factory=list)
    #: When the scenario began, on the wall clock and on the monotonic clock (ns).
    began_ns: int = field(default_factory=time.time_ns)
    began_monotonic_ns: int = field(default_factory=time.monotonic_ns)
    log_lines: list[str] = field(default_factory=list)
    #: What the run's broker was found to do (``probes``), by probe name.
    probes: dict[str, Probe] = field(default_factory=dict)
    #: The broker the kit started for the whole run (rabbitmq), else None.
    run_broker: Any = None
    #: What the connector under test claims, as the kit's session read it (None: unread).
    claims: frozenset[str] | None = None
    #: The MQTT 3.1.1 statements the scenario is tagged with (its protocol profile part).
    statements: list[str] = field(default_factory=list)
    #: Each statement judged in the scenario: (outcome, detail), outcome ``passed``,
    #: ``failed`` or ``unseen`` (``wire_rules.Finding``).
    findings: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Set once the scenario's fault is in place: a failure after it is its statements'.
    judging: bool = False
    #: The codec's bytes of every value each connector was asked to send.
    sent_payloads: dict[str, set[bytes]] = field(default_factory=dict)

    # -- topics ------------------------------------------------------------------------

    def topic(self, name: str) -> str:
        return name if name.startswith("$") else f"{self.ns}/{name}"

    def local(self, topic: str) -> str:
        prefix = f"{self.ns}/"
        return topic[len(prefix) :] if topic.startswith(prefix) else topic

    # -- brokers -----------------------------------------------------------------------

    def start_broker(self, *, users: dict[str, str] | None = None, tls: bool = False) -> None:
        run_broker = self.run_broker
        if self.broker_url is not None and run_broker is not None:
            # The kit's own broker for the run (rabbitmq): users are added to it, and it
            # has a TLS listener with the run's CA.
            parts = urlsplit(self.broker_url)
            self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
            for name, password in (users or {}).items():
                run_broker.add_user(name, password)
            if tls:
                self.tls_port = run_broker.tls_port
                self.tls_material = run_broker.tls_material
            return
        if self.broker_url is not None:
            if users is not None or tls:
                pytest.skip(
                    "needs a broker configured by the kit (credentials or TLS); not run "
                    "against a broker that serves the whole run (--broker-url)"
                )
            parts = urlsplit(self.broker_url)
            self.host = parts.hostname or "127.0.0.1"
            self.port = parts.port or 1883
            return
        started: EmbeddedBroker | MosquittoBroker
        if self.managed == "mosquitto":
            # sys_interval: mosquitto publishes $SYS topics every second, which the
            # $-topic scenario waits for (amqtt's are published by the kit instead).
            started = MosquittoBroker(users=users, tls=tls, extra_config="sys_interval 1")
            self.mosquitto = started.start()
        else:
            started = self.broker = EmbeddedBroker(users=users, tls=tls).start()
        self.port = started.port
        self.tls_port = started.tls_port
        self.tls_material = started.tls_material

    # -- connectors --------------------------------------------------------------------

    def add_connector(
        self,
        name: str,
        *,
        codec: PayloadCodec[Any] | None = None,
        via_proxy: bool = True,
        tls: TlsOptions | None = None,
        client_id: str | None = None,
        **options: Any,
    ) -> Party:
        client_id = client_id or f"{self.ns}-{name}"
        proxy = None
        port = self.port
        if tls is not None:
            port = self.tls_port
        elif via_proxy:
            proxy = FaultProxy(self.port, self.host)
            port = proxy.port
        options.setdefault("reconnect_initial_backoff", 0.05)
        options.setdefault("reconnect_max_backoff", 0.5)
        options.setdefault("connect_timeout", 5.0)
        made = MqttConnectorOptions(
            host="127.0.0.1"
            if proxy is not None or self.broker is not None or self.mosquitto is not None
            else self.host,
            port=port,
            client_id=client_id,
            tls=tls,
            **options,
        )
        chosen: PayloadCodec[Any] = codec if codec is not None else JsonCodec()
        connector = self.factory(made, chosen)
        party = Party(name, connector, proxy, client_id, chosen)
        party.watcher = connector.subscribe_health()
        self.parties[name] = party
        return party

    def party(self, name: str) -> Party:
        try:
            return self.parties[name]
        except KeyError:
            raise AssertionError(f"no connector named {name!r} in this scenario") from None

    def start(self, name: str, *, wait_up: bool = True) -> None:
        party = self.party(name)
        result = party.connector.start()
        assert is_successful(result), f"start() of {name!r} failed: {result}"
        if wait_up:
            self.wait_health(name, HealthKind.UP)

    def health_events(self, name: str) -> list[HealthEvent]:
        party = self.party(name)
        if party.watcher is not None:
            while (event := party.watcher.try_next()) is not None:
                party.health_log.append(event)
        return party.health_log

    def wait_health(self, name: str, kind: HealthKind, timeout: float = PATIENCE) -> None:
        connector = self.party(name).connector
        wait_for(
            lambda: connector.health().kind is kind,
            timeout,
            f"{name!r} to be {kind.value} (it is {connector.health()})",
        )

    # -- channels ----------------------------------------------------------------------

    def add_writer(self, party: str, name: str, routing: MqttRouting) -> None:
        result = self.party(party).connector.create_writer(ChannelDescriptor(name, routing))
        assert is_successful(result), f"create_writer {name!r} failed: {result}"
        self.writers[name] = result.unwrap()
        self.writer_owner[name] = party
        self.outcomes[name] = []

    def add_reader(self, party: str, name: str, routing: MqttRouting) -> None:
        result = self.party(party).connector.create_reader(ChannelDescriptor(name, routing))
        assert is_successful(result), f"create_reader {name!r} failed: {result}"
        self.readers[name] = result.unwrap()
        self.reader_owner[name] = party
        self.received[name] = []

    def writer(self, name: str) -> ChannelWriter[Any, MqttRouting]:
        try:
            return self.writers[name]
        except KeyError:
            raise AssertionError(f"no writer named {name!r} in this scenario") from None

    def reader(self, name: str) -> ChannelReader[Any, MqttRouting]:
        try:
            return self.readers[name]
        except KeyError:
            raise AssertionError(f"no reader named {name!r} in this scenario") from None

    def send(self, writer: str, value: Any, *, retry: bool = True) -> SendOutcome:
        """Send one value; on BackPressure wait and retry (when ``retry``)."""
        handle = self.writer(writer)
        deadline = time.monotonic() + PATIENCE
        while True:
            result = timed_send(handle, value, writer)
            if is_successful(result):
                outcome = result.unwrap()
                self.outcomes[writer].append(outcome)
                self.note_sent(self.writer_owner[writer], value)
                return outcome
            error = result.failure()
            if not (retry and isinstance(error, BackPressure)) or time.monotonic() > deadline:
                raise AssertionError(f"send through {writer!r} failed: {error!r}")
            time.sleep(0.002)

    def note_sent(self, party: str, value: Any) -> None:
        """Keep the codec's bytes of a value sent through ``party`` (the audit knows a
        payload from the two bytes of a packet identifier in front of it)."""
        encoded = self.party(party).codec.encode(value)
        if is_successful(encoded):
            self.sent_payloads.setdefault(party, set()).add(encoded.unwrap())

    def traffic(self, name: str) -> Traffic:
        """What the proxy of connector ``name`` saw, for ``wire_rules``."""
        proxy = self.party(name).proxy
        assert proxy is not None, f"{name!r} does not go through the kit's proxy"
        return Traffic(
            proxy.all_packets(),
            list(proxy.closes),
            frozenset(self.sent_payloads.get(name, ())),
            time.monotonic(),
        )

    def settle_closed(self, name: str, seconds: float = 3.0) -> None:
        """After connector ``name`` closed: wait (at most ``seconds``) until its proxy saw
        every connection of it end, so what it sent last (its DISCONNECT) is in the
        record later steps judge; bytes can still be on their way through the
        connector's own hops. A wait, not a check."""
        proxy = self.party(name).proxy
        deadline = time.monotonic() + seconds
        while proxy is not None and proxy.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)

    def judge(self, statement: str, outcome: str, detail: str = "") -> None:
        """Record one statement's verdict in this scenario (a failure is never undone)."""
        if self.findings.get(statement, ("",))[0] == "failed":
            return
        self.findings[statement] = (outcome, detail)

    def receive(self, reader: str, timeout: float = PATIENCE) -> RecvEnvelope[Any, MqttRouting]:
        result = self.reader(reader).recv(timeout)
        assert is_successful(result), f"recv on {reader!r} failed: {result}"
        envelope = result.unwrap()
        assert envelope is not None, f"{reader!r} received nothing within {timeout:g} s"
        self.received[reader].append(envelope)
        return envelope

    def drain(self, reader: str, quiet: float = 0.3) -> list[RecvEnvelope[Any, MqttRouting]]:
        """Everything that arrives until ``quiet`` seconds pass without a message."""
        got: list[RecvEnvelope[Any, MqttRouting]] = []
        while True:
            result = self.reader(reader).recv(quiet)
            assert is_successful(result), f"recv on {reader!r} failed: {result}"
            envelope = result.unwrap()
            if envelope is None:
                return got
            got.append(envelope)

    def drain_all(self, quiet: float = 0.3) -> dict[str, list[RecvEnvelope[Any, MqttRouting]]]:
        """What arrives on every reader until ``quiet`` seconds pass with nothing new."""
        got: dict[str, list[RecvEnvelope[Any, MqttRouting]]] = {name: [] for name in self.readers}
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            idle = True
            for name, reader in self.readers.items():
                result = reader.try_recv()
                assert is_successful(result), f"recv on {name!r} failed: {result}"
                envelope = result.unwrap()
                if envelope is not None:
                    got[name].append(envelope)
                    idle = False
            if idle:
                time.sleep(0.005)
            else:
                last = time.monotonic()
        return got

    def probe(self, reader: str, writer: str) -> None:
        """Send numbered probes through ``writer`` until ``reader`` sees one, then wait
        for the last probe sent, so no probe arrives after this returns.

        Proves the reader's subscription is active at the broker: every probe sent
        after the first one received is bound to arrive (an earlier one may still
        come late from a broker that reorders; ``is_probe`` tells them apart).
        """
        codec = self.party(self.writer_owner[writer]).codec

        def value(n: int) -> Any:
            return b"probe-%d" % n if codec.format_name == "bytes" else f"probe-{n}"

        sent = 0
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            self.send(writer, value(sent))
            sent += 1
            result = self.reader(reader).recv(0.1)
            envelope = result.unwrap() if is_successful(result) else None
            if envelope is not None:
                while envelope is not None and envelope.value != value(sent - 1):
                    left = deadline - time.monotonic()
                    result = self.reader(reader).recv(max(0.0, left))
                    envelope = result.unwrap() if is_successful(result) and left > 0 else None
                self.drain(reader, quiet=0.05)  # a broker may reorder: an earlier probe
                return
        raise AssertionError(f"{reader!r} never received a probe sent through {writer!r}")

    # -- evidence ----------------------------------------------------------------------

    def wire_log(self, since: float, keep: int = WIRE_KEEP) -> tuple[list[dict[str, Any]], int]:
        """Every packet the scenario's proxies saw, decoded, oldest first (at most
        ``keep``; the second value counts those left out)."""
        seen: list[tuple[float, str, WirePacket]] = []
        for party in self.parties.values():
            if party.proxy is not None:
                seen += [(p.at, party.name, p) for p in party.proxy.all_packets()]
        seen.sort(key=lambda entry: entry[0])
        log = []
        for at, name, packet in seen[:keep]:
            entry = packet.describe()
            entry["t"] = round(at - since, 4)
            entry["conn"] = f"{name}#{packet.connection}"
            log.append(entry)
        return log, max(0, len(seen) - keep)

    # -- teardown ----------------------------------------------------------------------

    def close(self) -> None:
        for cleanup in self.cleanups:
            with contextlib.suppress(Exception):
                cleanup()
        for party in self.parties.values():
            if party.proxy is not None:  # a stalled path would only delay closing
                party.proxy.resume()
                party.proxy.restore()
        for party in self.parties.values():
            with contextlib.suppress(Exception):
                party.connector.close(timeout=2.0)
        for party in self.parties.values():
            if party.proxy is not None:
                with contextlib.suppress(Exception):
                    party.proxy.close()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.close()
        self.broker = None
        if self.mosquitto is not None:
            with contextlib.suppress(Exception):
                self.mosquitto.close()
        self.mosquitto = None


def is_probe(value: Any) -> bool:
    """A value ``World.probe`` sent (a broker may still deliver one late)."""
    return isinstance(value, str | bytes) and value[:6] in ("probe-", b"probe-")


def harness_thread(thread: threading.Thread) -> bool:
    """Threads of the kit's own harness (brokers, proxies), not of a connector."""
    return thread.name.startswith("conformance-harness")


def qos(level: int) -> MqttQos:
    return MqttQos(level)


def timed_send(
    handle: ChannelWriter[Any, MqttRouting], value: Any, writer: str
) -> Result[SendOutcome, ConnectorError]:
    """``handle.send(value)``, failing the step when it took longer than SEND_BOUND."""
    began = time.monotonic()
    result = handle.send(value)
    took = time.monotonic() - began
    assert took <= SEND_BOUND, (
        f"send through {writer!r} took {took:.2f} s; send must never block (it accepts "
        f"into the bounded bridge or refuses with BackPressure; the kit allows "
        f"{SEND_BOUND:g} s)"
    )
    return result
