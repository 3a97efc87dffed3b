"""Checks made once, before any scenario runs: the selection, the factory, the broker.

Rules of this module:
- each check returns a message for a person (``None`` when all is well) and
  never raises; the caller turns a message into exit status 2;
- the factory probe builds one connector from the kit's options and codec,
  checks its shape against the ``Connector`` port and closes it; it never
  starts it, so no broker is needed;
- the broker probe opens one TCP connection and exchanges CONNECT/CONNACK
  (MQTT 3.1.1) within a few seconds, then disconnects.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from .factory import load_factory

#: What a connector must offer, as the kit uses it (the ``Connector`` port).
PORT_MEMBERS: Final = (
    "name",
    "health",
    "subscribe_health",
    "start",
    "create_writer",
    "create_reader",
    "close",
    "__enter__",
    "__exit__",
)
PROBE_TIMEOUT: Final = 3.0
_WORDS: Final = {"and", "or", "not"}
_CONNACK_CODES: Final = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


def unknown_tags(markexpr: str, known: Iterable[str]) -> list[str]:
    """The names in a ``-m`` expression that are not tags of the kit's scenarios (its
    ``REQ_``/``TEST_`` ids, run ids and ``broker_config``): pytest would only say so
    after the run, and the reports would claim a verdict for a selection of nothing."""
    names = re.findall(r"[A-Za-z_][A-Za-z0-9_.\-]*", markexpr)  # MQTT-4.6.0-2 is one name
    known = {*known, "broker_config"}
    return sorted({n for n in names if n not in _WORDS and n not in known})


def report_dir_problem(report_dir: str | os.PathLike[str]) -> str | None:
    """Why the reports could not be written to ``report_dir``, found before the run
    rather than after it (the run's verdict would be lost)."""
    path = Path(report_dir)
    if path.exists() and not path.is_dir():
        return f"--report-dir {str(path)!r} is a file, not a directory"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"--report-dir {str(path)!r}: {str(existing)!r} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"--report-dir {str(path)!r}: {str(existing)!r} is not writable"
    return None


def malformed_selection(keyword: str | None, markexpr: str | None) -> str | None:
    """Why ``-k``/``-m`` is not a valid selection expression, or None when both are."""
    # pytest's own parser, so the kit refuses exactly what pytest would refuse later
    from _pytest.mark.expression import Expression

    for flag, value in (("-k", keyword), ("-m", markexpr)):
        if not value:
            continue
        try:
            Expression.compile(value)
        except SyntaxError as error:
            return (
                f"{flag} {value!r} is not a valid selection expression ({error.msg}); use "
                "names joined by 'and', 'or', 'not' and parentheses"
            )
    return None


def check_factory(reference: str) -> str | None:
    """Load the factory, build one connector with it, check the port's shape, close it."""
    try:
        factory = load_factory(reference)
    except ValueError as err:
        message = str(err)
        if "cannot be imported" in message:
            module = reference.partition(":")[0]
            if _findable(module):  # the module is there: something it imports is not
                message += (
                    f"\n  hint: {module!r} was found, but something it imports is missing "
                    "or failed; install the connector's dependencies"
                )
            else:
                where = os.environ.get("PYTHONPATH") or "(not set)"
                message += (
                    "\n  hint: the factory's module must be importable; put its folder on "
                    f"PYTHONPATH (now {where}), e.g. "
                    "PYTHONPATH=path/to/folder taktora-conformance ..."
                )
        return message
    from taktora_connector.adapters.codecs import JsonCodec
    from taktora_connector.adapters.mqtt import MqttConnectorOptions

    options = MqttConnectorOptions(
        host="127.0.0.1", port=1, client_id=f"taktora-conformance-probe-{uuid.uuid4().hex[:8]}"
    )
    try:
        made: Any = factory(options, JsonCodec())
    except Exception as err:
        return (
            f"connector factory {reference} raised {type(err).__name__} when called with "
            f"(options: MqttConnectorOptions, codec: PayloadCodec): {err}"
        )
    if made is None:
        return f"connector factory {reference} returned None, not a Connector"
    try:
        missing = [m for m in PORT_MEMBERS if not _has(made, m)]
        if missing:
            return (
                f"connector factory {reference} returned a {type(made).__name__}, which does "
                f"not satisfy the Connector port: missing {', '.join(missing)}"
            )
        name = made.name
        if not isinstance(name, str):
            return (
                f"connector factory {reference} returned a connector whose name is a "
                f"{type(name).__name__}, not a str"
            )
        return None
    finally:
        close = getattr(made, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close(timeout=1.0)


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _has(made: object, member: str) -> bool:
    if member == "name":
        try:
            getattr(made, "name")  # noqa: B009 - a property may raise
        except Exception:
            return False
        return True
    return callable(getattr(made, member, None))


def parse_broker_url(url: str) -> tuple[str, int] | str:
    """``(host, port)`` of an ``mqtt://host:port`` URL, or why it is refused."""
    shape = "it must look like mqtt://host:port"
    if "://" not in url:
        return f"--broker-url {url!r} has no scheme: {shape}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        return f"--broker-url {url!r} is not a valid URL ({err}): {shape}"
    if parts.scheme == "mqtts":
        return (
            f"--broker-url {url!r}: mqtts is not supported; every connector reaches the broker "
            "through the kit's plain-TCP proxy, which reads the MQTT packets (the TLS scenarios "
            "use a broker the kit makes)"
        )
    if parts.scheme != "mqtt":
        return f"--broker-url {url!r} has scheme {parts.scheme!r}: {shape}"
    if not parts.hostname:
        return f"--broker-url {url!r} names no host: {shape}"
    if parts.username or parts.password:
        return (
            f"--broker-url for {parts.hostname} carries credentials: the kit needs a broker "
            "that accepts anonymous clients (credential scenarios use a broker the kit makes)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"--broker-url {url!r} has a path or query: {shape}"
    return parts.hostname, port if port is not None else 1883


def _connect_packet(client_id: str) -> bytes:
    ident = client_id.encode("utf-8")
    body = (
        b"\x00\x04MQTT\x04\x02\x00\x0a"  # MQTT 3.1.1, clean session, keep-alive 10 s
        + len(ident).to_bytes(2, "big")
        + ident
    )
    return bytes([0x10, len(body)]) + body


def probe_broker(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Connect, send CONNECT, expect CONNACK 0; why not, for a person."""
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return f"no broker at {where}: connection refused"
    except TimeoutError:
        return f"no broker at {where}: no TCP connection within {timeout:g} s"
    except OSError as err:
        return f"no broker at {where}: {err}"
    with sock:
        try:
            sock.settimeout(timeout)
            sock.sendall(_connect_packet(f"taktora-conformance-probe-{uuid.uuid4().hex[:8]}"))
            answer = b""
            while len(answer) < 4:
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            return f"{where} accepted a TCP connection but sent no CONNACK within {timeout:g} s"
        except OSError as err:
            return f"{where} broke the connection during the MQTT handshake: {err}"
        if len(answer) < 4 or answer[0] != 0x20 or answer[1] != 2:
            return f"{where} does not answer CONNECT like an MQTT 3.1.1 broker (got {answer!r})"
        code = answer[3]
        if code:
            return (
                f"the broker at {where} refused an anonymous MQTT 3.1.1 connection "
                f"(CONNACK return code {code}: {_CONNACK_CODES.get(code, 'unknown')}); the kit "
                "needs a broker that accepts anonymous clients"
            )
        with contextlib.suppress(OSError):
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    return None


def check_broker_choice(managed: str, url: object) -> str | None:
    """``--broker`` and ``--broker-url`` together, and mosquitto when it is asked for."""
    if url and managed != "amqtt":
        return (
            f"--broker {managed} and --broker-url both name a broker: "
            "use --broker-url for a broker you run, --broker for one the kit starts"
        )
    if managed == "rabbitmq":
        from .brokers import rabbitmq_server

        if rabbitmq_server() is None:
            return (
                "--broker rabbitmq: rabbitmq-server is not installed "
                "(apt-get install rabbitmq-server; it brings the rabbitmq_mqtt plugin)"
            )
    if managed == "mosquitto":
        from .brokers import mosquitto_binary

        if mosquitto_binary() is None:
            return (
                "--broker mosquitto: mosquitto is not installed "
                "(apt-get install mosquitto, or brew install mosquitto)"
            )
    return None


def check_broker(url: str) -> str | None:
    parsed = parse_broker_url(url)
    if isinstance(parsed, str):
        return parsed
    return probe_broker(*parsed)
