"""What a broker can do, found out before the kit trusts it: raw clients of the kit's own.

The kit judges connectors, so it must not blame one for its broker. Before a run it
probes the broker with a minimal blocking MQTT 3.1.1 client built on the project's
sans-IO codec (``adapters.mqtt.protocol.packets``; no paho, no connector):

- ``retained``: a retained message reaches a later subscriber, RETAIN set (required);
- ``qos1``: a QoS 1 PUBLISH is acknowledged and delivered at QoS 1 (required);
- ``persistent session``: a session resumed with ``clean_session=0`` says so in
  CONNACK and brings the QoS 1 messages kept meanwhile (required);
- ``retain flag on a session's backlog``: those kept messages come with RETAIN=0,
  as MQTT-3.3.1-9 asks (they were not published retained); amqtt sets it, which the
  kit corrects (``amqtt_quirks``) rather than count against a connector;
- ``shared subscriptions``: two members of ``$share/<group>/<topic>`` together get
  each message once (optional; a broker that grants the SUBSCRIBE and treats it as
  a literal topic, as RabbitMQ 3.10 does, is found out here);
- ``$SYS``: the broker publishes ``$SYS/...`` topics (optional).

Rules of this module:
- a probe never raises for a broker's answer: it returns a ``Probe`` with its
  evidence (what was sent, what came); only an unreachable broker raises ``OSError``;
- each probe uses topics and client ids of its own (a random prefix), bounded waits
  (a few seconds at most) and closes its sockets;
- a required capability that fails makes the broker unfit (``unfit``): one message,
  no connector is judged on it.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Final

from taktora_connector.adapters.mqtt.protocol.packets import (
    ConnAck,
    Connect,
    Disconnect,
    NeedData,
    PacketReader,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    encode,
    encode_puback,
    encode_publish,
)

#: How long a probe waits for one answer of the broker.
WAIT: Final = 3.0
#: The probes a broker must pass to be fit for the kit.
REQUIRED: Final = ("retained", "qos1", "persistent session")


@dataclass(frozen=True)
class Probe:
    name: str
    ok: bool
    evidence: str
    required: bool = False

    def line(self) -> str:
        return f"{self.name}: {'yes' if self.ok else 'no'} ({self.evidence})"


class RawClient:
    """One blocking MQTT 3.1.1 connection: just enough to probe a broker."""

    def __init__(self, host: str, port: int, client_id: str, *, clean: bool = True) -> None:
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.reader = PacketReader()
        self.next_id = 1
        self.sock.sendall(encode(Connect(client_id, clean_session=clean, keep_alive=30)))
        answer = self.expect(ConnAck)
        if answer is None:
            raise ConnectionError("no CONNACK")
        self.connack: ConnAck = answer

    def close(self) -> None:
        try:
            self.sock.sendall(encode(Disconnect()))
        except OSError:
            pass
        self.sock.close()

    def packets(self, wait: float) -> Iterator[Any]:
        """Packets as they come, until ``wait`` s pass without the caller stopping."""
        deadline = time.monotonic() + wait
        while True:
            packet = self.reader.next_event()
            if not isinstance(packet, NeedData):
                yield packet
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                return
            self.reader.receive_data(data)

    def expect(self, kind: type, wait: float = WAIT) -> Any:
        for packet in self.packets(wait):
            if isinstance(packet, kind):
                return packet
            if isinstance(packet, Publish) and packet.qos:
                self.ack(packet)
        return None

    def ack(self, packet: Publish) -> None:
        assert packet.packet_id is not None
        self.sock.sendall(encode_puback(packet.packet_id))

    def subscribe(self, topic_filter: str, qos: int = 1) -> list[int]:
        packet_id = self._id()
        self.sock.sendall(encode(Subscribe(packet_id, [(topic_filter, qos)])))
        answer = self.expect(SubAck)
        return list(answer.return_codes) if answer is not None else []

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        packet_id = self._id() if qos else None
        self.sock.sendall(encode_publish(topic.encode(), payload, qos, retain, packet_id))
        return not qos or self.expect(PubAck) is not None

    def collect(self, wait: float, until: int | None = None) -> list[Publish]:
        """PUBLISHes that come within ``wait`` s (acknowledged), or until ``until`` came."""
        got: list[Publish] = []
        for packet in self.packets(wait):
            if isinstance(packet, Publish):
                got.append(packet)
                if packet.qos:
                    self.ack(packet)
                if until is not None and len(got) >= until:
                    break
        return got

    def _id(self) -> int:
        packet_id, self.next_id = self.next_id, self.next_id % 65535 + 1
        return packet_id


@contextmanager
def client(host: str, port: int, name: str, *, clean: bool = True) -> Iterator[RawClient]:
    raw = RawClient(host, port, name, clean=clean)
    try:
        yield raw
    finally:
        raw.close()


def probe_broker(host: str, port: int) -> list[Probe]:
    """Every probe, in order, until a required one fails (the broker is unfit then, and
    the rest would only wait); ``OSError`` only when the broker cannot be reached."""
    ns = f"taktora-probe-{uuid.uuid4().hex[:8]}"
    found: list[Probe] = []
    for probe in (_retained, _qos1, _persistent, _shared, _sys):
        made = probe(host, port, ns)
        found += made if isinstance(made, list) else [made]
        if unfit(found) is not None:
            break
    return found


def unfit(probes: list[Probe]) -> str | None:
    """Why the broker cannot serve the kit (a required probe failed), or None."""
    failed = [p for p in probes if p.required and not p.ok]
    if not failed:
        return None
    return (
        "the broker is unfit for the conformance kit, which needs "
        + ", ".join(REQUIRED)
        + "; it failed: "
        + "; ".join(p.line() for p in failed)
        + ". No connector was judged on it."
    )


def as_dicts(probes: list[Probe]) -> list[dict[str, Any]]:
    return [asdict(p) for p in probes]


def _retained(host: str, port: int, ns: str) -> Probe:
    topic = f"{ns}/retained"
    with client(host, port, f"{ns}-r1") as pub:
        if not pub.publish(topic, b"kept", qos=1, retain=True):
            return Probe("retained", False, "a retained QoS 1 PUBLISH got no PUBACK", True)
    with client(host, port, f"{ns}-r2") as sub:
        sub.subscribe(topic)
        got = sub.collect(WAIT, until=1)
    with client(host, port, f"{ns}-r3") as cleaner:
        cleaner.publish(topic, b"", qos=1, retain=True)  # clear it
    if not got:
        return Probe("retained", False, f"a later subscriber of {topic} got nothing", True)
    if not got[0].retain:
        return Probe("retained", False, "the retained message came with RETAIN=0", True)
    return Probe("retained", True, "a later subscriber got it with RETAIN=1", True)


def _qos1(host: str, port: int, ns: str) -> Probe:
    topic = f"{ns}/qos1"
    with client(host, port, f"{ns}-q1") as sub:
        codes = sub.subscribe(topic, 1)
        with client(host, port, f"{ns}-q2") as pub:
            acked = pub.publish(topic, b"one", qos=1)
        got = sub.collect(WAIT, until=1)
    if codes != [1]:
        return Probe("qos1", False, f"SUBSCRIBE at QoS 1 was granted {codes}", True)
    if not acked:
        return Probe("qos1", False, "a QoS 1 PUBLISH got no PUBACK", True)
    if not got or got[0].qos != 1:
        return Probe("qos1", False, f"delivered as {[p.qos for p in got]}", True)
    return Probe("qos1", True, "PUBACK came, delivered at QoS 1", True)


def _persistent(host: str, port: int, ns: str) -> list[Probe]:
    topic, name = f"{ns}/session", f"{ns}-s"
    with client(host, port, name, clean=False) as first:
        first.subscribe(topic, 1)
    with client(host, port, f"{ns}-s-pub") as pub:
        for n in (1, 2):
            pub.publish(topic, str(n).encode(), qos=1)
    with client(host, port, name, clean=False) as again:
        present = again.connack.session_present
        got = again.collect(WAIT, until=2)
    with client(host, port, name, clean=True):
        pass  # end the session
    payloads = [p.payload for p in got]
    if not present or payloads != [b"1", b"2"]:
        session = Probe(
            "persistent session",
            False,
            f"resumed with session present={int(present)}, got {payloads} of [b'1', b'2']",
            True,
        )
        return [session]
    session = Probe("persistent session", True, "session present=1, both kept messages came", True)
    flags = [int(p.retain) for p in got]
    honest = Probe(
        "retain flag on a session's backlog",
        not any(flags),
        "RETAIN=0 on both, as MQTT-3.3.1-9 asks"
        if not any(flags)
        else f"RETAIN flags {flags} on messages not published retained (MQTT-3.3.1-9)",
    )
    return [session, honest]


def _shared(host: str, port: int, ns: str) -> Probe:
    topic = f"{ns}/shared"
    shared = f"$share/probe/{topic}"
    with (
        client(host, port, f"{ns}-m1") as one,
        client(host, port, f"{ns}-m2") as two,
        client(host, port, f"{ns}-sp") as pub,
    ):
        codes = [one.subscribe(shared, 1), two.subscribe(shared, 1)]
        if any(not c or c[0] >= 0x80 for c in codes):
            return Probe("shared subscriptions", False, f"the broker refused {shared}: {codes}")
        for n in range(10):
            pub.publish(topic, str(n).encode(), qos=1)
        got = one.collect(0.5) + two.collect(0.5)
        pub.publish(shared, b"literal", qos=1)
        literal = one.collect(0.5) + two.collect(0.5)
    numbers = sorted(int(p.payload) for p in got if p.payload.isdigit())
    if numbers == list(range(10)):
        return Probe("shared subscriptions", True, f"two members of {shared} got each of 10 once")
    if literal:
        return Probe(
            "shared subscriptions",
            False,
            f"the broker granted {shared} but delivered a message published to the literal "
            f"topic {shared}, and {len(numbers)} of 10 published to {topic}",
        )
    return Probe(
        "shared subscriptions",
        False,
        f"two members of {shared} got {numbers} of the 10 messages published to {topic}",
    )


def _sys(host: str, port: int, ns: str) -> Probe:
    with client(host, port, f"{ns}-sys") as sub:
        sub.subscribe("$SYS/#", 0)
        got = sub.collect(1.0, until=1)
    if got:
        return Probe("$SYS", True, f"{got[0].topic.decode('utf-8', 'replace')} came")
    return Probe("$SYS", False, "no $SYS message within 1 s")


#: The kit's own brokers are known: it starts and configures them (and corrects
#: amqtt, ``amqtt_quirks``), so a run does not probe them again; ``tests/test_probes.py``
#: probes real ones and holds them to these tables.
KNOWN: Final[dict[str, tuple[tuple[str, bool, bool], ...]]] = {
    "amqtt": (
        ("retained", True, True),
        ("qos1", True, True),
        ("persistent session", True, True),
        ("retain flag on a session's backlog", True, False),
        ("shared subscriptions", False, False),
        ("$SYS", False, False),
    ),
    "mosquitto": (
        ("retained", True, True),
        ("qos1", True, True),
        ("persistent session", True, True),
        ("retain flag on a session's backlog", True, False),
        ("shared subscriptions", True, False),
        ("$SYS", True, False),
    ),
}

_KNOWN_WHY: Final = {
    ("amqtt", "retain flag on a session's backlog"): "corrected by the kit (amqtt_quirks)",
    ("amqtt", "shared subscriptions"): (
        "amqtt has none; the shared-subscription scenario runs on a mosquitto the kit starts"
    ),
    ("amqtt", "$SYS"): "the kit publishes the $SYS message itself (amqtt's plugin is off)",
}


def known(managed: str) -> list[Probe]:
    """What the kit knows of one of its own brokers ("amqtt", "mosquitto")."""
    return [
        Probe(
            name,
            ok,
            _KNOWN_WHY.get((managed, name), f"the kit's own {managed}, configured by the kit"),
            required,
        )
        for name, ok, required in KNOWN[managed]
    ]


@dataclass(frozen=True)
class BrokerFacts:
    """The broker of one kit run, as the scenarios see it."""

    managed: str  # "amqtt", "mosquitto" (one per scenario) or "rabbitmq" (one per run)
    url: str | None  # a broker that serves the whole run (--broker-url, or rabbitmq)
    probes: tuple[Probe, ...]
    #: The run's own broker when the kit started one for the run (rabbitmq): it adds
    #: users and has a TLS listener, so those scenarios run on it too.
    run_broker: Any = None

    def probe(self, name: str) -> Probe | None:
        return next((p for p in self.probes if p.name == name), None)
