"""Connector options: broker address(es), session, credentials, TLS, bridges, reconnect.

Rules of this module:
- every option is validated in the constructor; a bad value is a
  ``ConfigurationError`` naming the option, the value and what is allowed;
- the password never appears in a repr or an error message;
- TLS always verifies the broker (against the given CA, or the system's trust
  store when none is given): no option turns verification off;
- one server (``host``, ``port``) or several (``servers``, tried in turn: each
  connection attempt takes the next); with several, ``host`` and ``port`` are the
  first server's, so code that reads them sees where the list starts.
"""

from __future__ import annotations

import math
import os
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from taktora_connector.domain import ConfigurationError

DEFAULT_PORT: Final = 1883
_DEFAULT_HOST: Final = "localhost"
DEFAULT_TLS_PORT: Final = 8883
MAX_CAPACITY: Final = 10_000_000
_MAX_U16: Final = 65_535


@dataclass(frozen=True, slots=True)
class Credentials:
    """Username and password presented on CONNECT (REQ_0255)."""

    username: str
    password: str | bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.username, str):
            raise ConfigurationError(f"username must be a str, got {type(self.username).__name__}")
        if not isinstance(self.password, str | bytes):
            raise ConfigurationError(
                f"password must be a str or bytes, got {type(self.password).__name__}"
            )
        _require_utf8("username", self.username, secret=False)
        if isinstance(self.password, str):
            _require_utf8("password", self.password, secret=True)
        for what, value in (("username", self.username), ("password", self.password)):
            size = len(value.encode("utf-8")) if isinstance(value, str) else len(value)
            if size > _MAX_U16:
                raise ConfigurationError(f"{what} is {size} bytes; MQTT allows at most {_MAX_U16}")
        if "\x00" in self.username:
            raise ConfigurationError("username contains NUL (U+0000), which MQTT does not allow")

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS to the broker, verified against a CA (REQ_0256).

    ``ca_pem`` (PEM text) and ``ca_file`` (a path) add trusted CAs; with neither,
    the system's trust store is used. ``server_hostname`` is the name the
    broker's certificate must carry when it differs from the host connected to.
    Client certificates are deferred to a later release.
    """

    ca_pem: str | bytes | None = None
    ca_file: str | os.PathLike[str] | None = None
    server_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise ConfigurationError(f"TLS ca_file {str(self.ca_file)!r} is not a readable file")
        if self.server_hostname is not None and (
            not isinstance(self.server_hostname, str) or not self.server_hostname.strip()
        ):
            raise ConfigurationError(
                f"TLS server_hostname must be a non-empty str, got {self.server_hostname!r}"
            )
        if self.server_hostname is not None:
            _require_utf8("server_hostname", self.server_hostname, secret=False)
            if "\x00" in self.server_hostname:
                raise ConfigurationError("server_hostname contains NUL (U+0000)")
        self.context()  # fail now, not on the sidecar thread, if the CA does not load

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the broker's certificate and host name."""
        context: ssl.SSLContext
        if self.server_hostname is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        else:
            context = _NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)
            context.server_name = self.server_hostname
        # PROTOCOL_TLS_CLIENT verifies the chain and the host name by default.
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            if self.ca_pem is None and self.ca_file is None:
                context.load_default_certs(ssl.Purpose.SERVER_AUTH)
                return context
            if self.ca_file is not None:
                context.load_verify_locations(cafile=os.fspath(self.ca_file))
            if self.ca_pem is not None:
                pem = self.ca_pem.decode("ascii") if isinstance(self.ca_pem, bytes) else self.ca_pem
                context.load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError, OSError) as err:
            raise ConfigurationError(f"TLS CA could not be loaded: {err}") from None
        return context


class _NamedServerContext(ssl.SSLContext):
    """Checks the broker's certificate for a fixed name, whatever host was dialled."""

    server_name: str = ""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def default_client_id() -> str:
    """A fresh client id: ``taktora`` and 16 random hex digits.

    23 ASCII letters and digits, which every MQTT 3.1.1 broker must accept
    (MQTT-3.1.3-5); random, so that two connectors left at the default never
    take each other's session over.
    """
    return f"taktora{secrets.token_hex(8)}"


def _require_utf8(name: str, value: str, *, secret: bool) -> None:
    """MQTT strings are UTF-8 (MQTT-1.5.3-1): a lone surrogate cannot be sent."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        shown = "" if secret else f" {value!r}"
        raise ConfigurationError(
            f"{name}{shown} is not encodable as UTF-8 (a lone surrogate at position "
            f"{err.start}); MQTT strings must be valid UTF-8"
        ) from None


def _require_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise ConfigurationError(f"{name} is {value}; it must be between {low} and {high}")


def _require_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} is {value!r}; it must be a finite number {bound}")
    return seconds


@dataclass(frozen=True, slots=True)
class MqttConnectorOptions:
    """Everything the MQTT connector needs to reach and use a broker."""

    host: str = _DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: Several brokers of one cluster, tried in this order (each attempt takes the
    #: next; see ``server_list``). Empty: the one server ``host``:``port``.
    servers: Sequence[tuple[str, int]] = ()
    client_id: str = field(default_factory=default_client_id)
    keep_alive: float = 60.0
    clean_session: bool = True
    credentials: Credentials | None = None
    tls: TlsOptions | None = None
    outbound_capacity: int = 64
    inbound_capacity: int = 64
    inbound_drop_threshold: int = 1
    reconnect_initial_backoff: float = 0.1
    reconnect_max_backoff: float = 30.0
    reconnect_attempt_ceiling: int | None = 10
    max_inflight: int = 100
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        _require_host("host", self.host)
        _require_int("port", self.port, 1, _MAX_U16)
        servers = _servers(self.servers)
        object.__setattr__(self, "servers", servers)
        if servers:
            first = servers[0]
            if (self.host, self.port) not in ((_DEFAULT_HOST, DEFAULT_PORT), first):
                raise ConfigurationError(
                    f"host and port ({self.host}:{self.port}) and servers ({_listed(servers)}) "
                    "both say where to connect; give servers alone (host and port are then "
                    "the first server's)"
                )
            object.__setattr__(self, "host", first[0])
            object.__setattr__(self, "port", first[1])
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ConfigurationError(
                f"client_id must be a non-empty str, got {self.client_id!r}; each connector "
                "connected to one broker needs its own"
            )
        _require_utf8("client_id", self.client_id, secret=False)
        if "\x00" in self.client_id:
            raise ConfigurationError(
                f"client_id {self.client_id!r} contains NUL (U+0000), which MQTT does not allow"
            )
        if len(self.client_id.encode("utf-8")) > _MAX_U16:
            raise ConfigurationError(f"client_id is longer than {_MAX_U16} bytes")
        keep_alive = _require_seconds("keep_alive", self.keep_alive, allow_zero=True)
        if keep_alive != int(keep_alive) or keep_alive > _MAX_U16:
            raise ConfigurationError(
                f"keep_alive is {self.keep_alive!r}; MQTT counts it in whole seconds "
                f"from 0 (off) to {_MAX_U16}"
            )
        if not isinstance(self.clean_session, bool):
            raise ConfigurationError(
                f"clean_session must be True or False, got {self.clean_session!r}"
            )
        if self.credentials is not None and not isinstance(self.credentials, Credentials):
            raise ConfigurationError("credentials must be a Credentials(username, password)")
        if self.tls is not None and not isinstance(self.tls, TlsOptions):
            raise ConfigurationError("tls must be a TlsOptions(...)")
        _require_int("outbound_capacity", self.outbound_capacity, 1, MAX_CAPACITY)
        _require_int("inbound_capacity", self.inbound_capacity, 1, MAX_CAPACITY)
        _require_int("inbound_drop_threshold", self.inbound_drop_threshold, 1, MAX_CAPACITY)
        initial = _require_seconds("reconnect_initial_backoff", self.reconnect_initial_backoff)
        maximum = _require_seconds("reconnect_max_backoff", self.reconnect_max_backoff)
        if maximum < initial:
            raise ConfigurationError(
                f"reconnect_max_backoff ({maximum:g} s) must not be below "
                f"reconnect_initial_backoff ({initial:g} s)"
            )
        if self.reconnect_attempt_ceiling is not None:
            _require_int("reconnect_attempt_ceiling", self.reconnect_attempt_ceiling, 0, 2**31)
        _require_int("max_inflight", self.max_inflight, 1, _MAX_U16)
        _require_seconds("connect_timeout", self.connect_timeout)

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls is not None else "mqtt"

    @property
    def server_list(self) -> tuple[tuple[str, int], ...]:
        """Every server to try, in order: ``servers``, or the one ``(host, port)``."""
        return tuple(self.servers) or ((self.host, self.port),)

    def server_url(self, server: tuple[str, int]) -> str:
        """One server as a URL without credentials (safe to log)."""
        return f"{self.scheme}://{_netloc(server)}"

    def broker_url(self) -> str:
        """Where this connects, as a URL without credentials (safe to log); with several
        servers, ``mqtt://h1:1883,h2:1884`` (what ``from_url`` reads)."""
        return f"{self.scheme}://{','.join(_netloc(s) for s in self.server_list)}"

    def replace(self, **changes: Any) -> MqttConnectorOptions:
        """A copy with ``changes`` applied and validated.

        ``servers=[...]`` alone moves ``host`` and ``port`` with it; ``host`` or ``port``
        alone on options with several servers is refused (which server would it be?).
        """
        moves_address = "host" in changes or "port" in changes
        if "servers" in changes and not moves_address:
            changes = {**changes, "host": _DEFAULT_HOST, "port": DEFAULT_PORT}
        elif moves_address and "servers" not in changes and self.servers:
            if len(self.servers) > 1:
                raise ConfigurationError(
                    f"these options name {len(self.servers)} servers ({_listed(self.servers)}); "
                    "replace servers=[(host, port), ...] rather than host or port"
                )
            changes = {**changes, "servers": ()}
        return replace(self, **changes)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> MqttConnectorOptions:
        """Options from ``mqtt[s]://[user:pass@]host[:port][,host[:port]...]``; keywords
        override the rest. Several comma-separated hosts are ``servers``, tried in turn.

        ``mqtts`` turns on TLS with the system trust store unless ``tls`` is given.
        """
        if not isinstance(url, str):
            raise ConfigurationError(f"broker URL must be a str, got {type(url).__name__}")
        text = url.strip()
        scheme_part, sep, rest = text.partition("://")
        netloc, slash, tail = rest.partition("/")
        userinfo, at, hosts = netloc.rpartition("@")
        # the first host carries the credentials and the rest of the URL; the others
        # are host[:port] alone
        if "," in userinfo:
            raise ConfigurationError(
                f"broker URL {_redact(url)!r} has credentials after a comma; with several "
                "servers they go before the first host only: mqtt://user:pass@h1,h2"
            )
        first, *others = hosts.split(",") if sep else [hosts]
        try:
            parts = urlsplit(f"{scheme_part}{sep}{userinfo}{at}{first}{slash}{tail}")
            port = parts.port
        except ValueError as err:
            raise ConfigurationError(f"broker URL {_redact(url)!r} is malformed: {err}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("mqtt", "mqtts"):
            raise ConfigurationError(
                f"broker URL {_redact(url)!r} has scheme {parts.scheme!r}; "
                "use mqtt://host[:port] or mqtts://host[:port]"
            )
        if not parts.hostname:
            raise ConfigurationError(f"broker URL {_redact(url)!r} names no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigurationError(
                f"broker URL {_redact(url)!r} has a path, query or fragment; "
                "only mqtt[s]://[user:pass@]host[:port][,host[:port]...] is understood"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        default_port = DEFAULT_TLS_PORT if scheme == "mqtts" else DEFAULT_PORT
        values: dict[str, Any] = {
            "host": parts.hostname,
            "port": port if port is not None else default_port,
        }
        if others:
            servers = [(values["host"], values["port"])]
            for other in others:
                try:
                    more = urlsplit(f"{scheme}://{other}")
                    more_port = more.port
                except ValueError as err:
                    raise ConfigurationError(
                        f"broker URL {_redact(url)!r}: server {other!r} is malformed: {err}"
                    ) from None
                if not more.hostname or more.username is not None or more.netloc != other:
                    raise ConfigurationError(
                        f"broker URL {_redact(url)!r}: server {other!r} is not host[:port] "
                        "(credentials go before the first host only)"
                    )
                servers.append((more.hostname, more_port or default_port))
            values = {"servers": servers}
        if parts.username is not None:
            values["credentials"] = Credentials(
                unquote(parts.username), unquote(parts.password or "")
            )
        if scheme == "mqtts":
            values["tls"] = TlsOptions()
        values.update(overrides)
        return cls(**values)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"MqttConnectorOptions({shown})"


def _require_host(name: str, host: object) -> None:
    if not isinstance(host, str) or not host or any(c.isspace() for c in host):
        raise ConfigurationError(
            f"{name} must be a non-empty host name or address without spaces, got {host!r}"
        )
    _require_utf8(name, host, secret=False)
    if "\x00" in host:
        raise ConfigurationError(f"{name} {host!r} contains NUL (U+0000)")


def _servers(value: object) -> tuple[tuple[str, int], ...]:
    """``servers`` as a tuple of (host, port), each checked like ``host`` and ``port``."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ConfigurationError(f"servers must be a list of (host, port) pairs, got {value!r}")
    servers: list[tuple[str, int]] = []
    for index, server in enumerate(value):
        if isinstance(server, str | bytes) or not isinstance(server, Sequence) or len(server) != 2:
            raise ConfigurationError(
                f"servers[{index}] is {server!r}; each server is a (host, port) pair"
            )
        host, port = server
        _require_host(f"servers[{index}] host", host)
        _require_int(f"servers[{index}] port", port, 1, _MAX_U16)
        if (host, port) in servers:
            raise ConfigurationError(f"servers lists {_netloc((host, port))} twice")
        servers.append((host, port))
    return tuple(servers)


def _netloc(server: tuple[str, int]) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listed(servers: Sequence[tuple[str, int]]) -> str:
    return ", ".join(_netloc(s) for s in servers)


def _redact(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}" if ":" in userinfo else url
