"""Connector options: broker address, session, credentials, TLS, bridges, reconnect.

Rules of this module:
- every option is validated in the constructor; a bad value is a
  ``ConfigurationError`` naming the option, the value and what is allowed;
- the password never appears in a repr or an error message;
- TLS always verifies the broker (against the given CA, or the system's trust
  store when none is given): no option turns verification off.
"""

from __future__ import annotations

import math
import os
import secrets
import ssl
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from taktora_connector.domain import ConfigurationError

DEFAULT_PORT: Final = 1883
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

    host: str = "localhost"
    port: int = DEFAULT_PORT
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
        if not isinstance(self.host, str) or not self.host or any(c.isspace() for c in self.host):
            raise ConfigurationError(
                f"host must be a non-empty host name or address without spaces, got {self.host!r}"
            )
        _require_utf8("host", self.host, secret=False)
        if "\x00" in self.host:
            raise ConfigurationError(f"host {self.host!r} contains NUL (U+0000)")
        _require_int("port", self.port, 1, _MAX_U16)
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

    def broker_url(self) -> str:
        """Where this connects, as a URL without credentials (safe to log)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def replace(self, **changes: Any) -> MqttConnectorOptions:
        """A copy with ``changes`` applied and validated."""
        return replace(self, **changes)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> MqttConnectorOptions:
        """Options from ``mqtt[s]://[user:pass@]host[:port]``; keywords override the rest.

        ``mqtts`` turns on TLS with the system trust store unless ``tls`` is given.
        """
        if not isinstance(url, str):
            raise ConfigurationError(f"broker URL must be a str, got {type(url).__name__}")
        try:
            parts = urlsplit(url.strip())
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
                "only mqtt[s]://[user:pass@]host[:port] is understood"
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
