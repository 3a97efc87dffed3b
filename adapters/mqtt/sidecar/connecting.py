"""Getting a connection: the TCP connect that ``close()`` can interrupt, the
attempts and their backoff (``Reconnect``), and what a failed attempt, a refusal
or a loss is called.

Rules of this module:
- it never imports paho: the gateway hands paho ``open_tcp`` in place of its
  private ``_create_socket_connection`` (same contract: a connected socket with
  the connect timeout set, or an ``OSError``) and passes paho's refusal names in;
- the TCP connect ends within ``connect_timeout``, or sooner when the sidecar is
  asked to stop and its flush time is up (the wake pipe ends the wait);
- reasons name the cause and never a password; each failure is ``last_error``;
- with several servers each attempt takes the next one; the backoff grows per round
  over the list (the servers of one round are tried back to back) and the ceiling
  counts rounds: one server behaves exactly as before;
- every failure, loss and give-up reason names the server it happened on;
- past ``reconnect_attempt_ceiling`` failed rounds in a row, or on a permanent refusal
  (credentials, protocol, client id), it gives up: health ``Down`` with the reason;
- a connection that ends sooner than ``STABLE_AFTER`` after CONNACK is a flap: the
  reconnect delay keeps growing instead of starting over.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Final

from taktora_connector.adapters.mqtt.health_control import HealthController, Phase
from taktora_connector.adapters.mqtt.options import MqttConnectorOptions
from taktora_connector.adapters.mqtt.protocol.backoff import Backoff

from .wakeup import Wakeup

log = logging.getLogger("taktora_connector.mqtt")
#: The longest one wait of the connect lasts, so a stop request is seen in time.
POLL_TICK: Final = 0.5
#: A connection that ends sooner than this after CONNACK counts as a flap: the
#: reconnect delay keeps growing instead of starting over (a broker that accepts
#: and at once drops us, e.g. over a duplicate client id, is not hammered).
STABLE_AFTER: Final = 2.0

_AUTH_REFUSALS: Final = frozenset({"Bad user name or password", "Not authorized"})
#: MQTT 3.1.1's CONNACK refusals (section 3.2.2.3), by return code, named as paho names them.
CONNACK_REFUSALS: Final = {
    1: "Unsupported protocol version",
    2: "Client identifier not valid",
    3: "Server unavailable",
    4: "Bad user name or password",
    5: "Not authorized",
}
_PERMANENT_REFUSALS: Final = frozenset(
    {"Unsupported protocol version", "Client identifier not valid"}
)


def open_tcp(
    server: tuple[str, int],
    connect_timeout: float,
    wakeup: Wakeup,
    abort_at: Callable[[], float | None],
) -> socket.socket:
    """A TCP connection to ``server`` within ``connect_timeout``, that a stop
    interrupts: ``abort_at()`` is the stop's deadline once one is asked for (it
    wakes the sidecar through ``wakeup``)."""
    deadline = time.monotonic() + connect_timeout
    last: OSError = OSError("no address to connect to")
    host, port = server
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            _connect_interruptibly(sock, address, deadline, wakeup, abort_at)
        except OSError as err:
            sock.close()
            last = err
            if isinstance(err, ConnectionAbortedError | TimeoutError):
                raise
            continue
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        return sock
    raise last


def _connect_interruptibly(
    sock: socket.socket,
    address: Any,
    deadline: float,
    wakeup: Wakeup,
    abort_at: Callable[[], float | None],
) -> None:
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code == 0:
        return
    if code not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
        raise OSError(code, os.strerror(code))
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    poller.register(wakeup.fd, select.POLLIN)
    while True:
        now = time.monotonic()
        stop_at = abort_at()
        if stop_at is not None and now >= stop_at:
            # close() is waiting and its flush time is up (with time left, the
            # connection may still come in time to flush what was accepted)
            raise ConnectionAbortedError("closed while connecting")
        left = deadline - now
        if left <= 0:
            raise TimeoutError("timed out")
        if stop_at is not None:
            left = min(left, max(stop_at - now, 0.0))
        ready = dict(poller.poll(min(left, POLL_TICK) * 1000))
        if wakeup.fd in ready:
            wakeup.drain()
        if sock.fileno() in ready:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
            return


def connect_failure(
    err: OSError | ValueError, options: MqttConnectorOptions, server: tuple[str, int]
) -> str:
    """Why a connection attempt to ``server`` failed, from what the connect raised."""
    url = options.server_url(server)
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed at {url}: {err.verify_message or str(err)}"
    if isinstance(err, ssl.SSLError):
        return f"TLS handshake failed at {url}: {err.reason or err}"
    if isinstance(err, TimeoutError):
        if options.tls is not None and "handshake" in str(err):
            return f"TLS handshake failed at {url}: timed out (does the port speak TLS?)"
        return f"cannot connect to {url}: timed out"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve host {server[0]!r} ({url}): {err.strerror or err}"
    return f"cannot connect to {url}: {describe(err)}"


def refusal(name: str) -> tuple[bool, str]:
    """A CONNACK refusal by its name: (permanent, reason)."""
    if name in _AUTH_REFUSALS:
        return True, f"authentication rejected: {name}"
    if name in _PERMANENT_REFUSALS:
        return True, f"broker refused the connection: {name}"
    return False, f"broker refused the connection: {name}"


def lost_reason(reason_code: Any) -> str:
    """How the session engine's disconnect reason code reads (paho's, duck-typed)."""
    if getattr(reason_code, "is_failure", False):
        return f"the connection was closed ({reason_code.getName()})"
    return "the broker closed the connection"


def describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err)
    return text or type(err).__name__


class Reconnect:
    """Between connections: which server to try next, when (failures in a row and
    flaps, spaced by ``backoff`` per round over the servers), when to give up, and
    what ``last_error`` and health say meanwhile."""

    def __init__(
        self,
        backoff: Backoff,
        ceiling: int | None,
        controller: HealthController,
        servers: tuple[tuple[str, int], ...],
        describe_server: Callable[[tuple[str, int]], str],
    ) -> None:
        if not servers:
            raise ValueError("Reconnect needs at least one server")
        self._backoff = backoff
        self._ceiling = ceiling
        self._controller = controller
        self._servers = servers
        self._urls = tuple(describe_server(s) for s in servers)
        self._index = 0  # the server of the next (or the current) attempt
        #: The server of the connection that is up, as a URL; None between connections.
        self.connected_to: str | None = None
        self.failures = 0
        #: For ``metrics()``: every failed attempt, and every connection made.
        self.failed_total = 0
        self.connections = 0
        self._flaps = 0
        self._connected_at = 0.0
        self.next_attempt = 0.0
        self.gave_up = False
        #: The most recent connection failure (never has a password).
        self.last_error: str | None = None
        self._refusal: tuple[bool, str] | None = None  # (permanent, reason)
        self._drop_reason: str | None = None
        self._resuming = False  # the next loss is planned: connect again at once
        #: Planned reconnects that resumed the session (``inbound_acks``).
        self.resumes = 0

    @property
    def server(self) -> tuple[str, int]:
        """The server the next attempt goes to (or the current connection is on)."""
        return self._servers[self._index]

    @property
    def server_url(self) -> str:
        return self._urls[self._index]

    def _named(self, reason: str) -> str:
        """``reason``, naming the server it happened on."""
        url = self.server_url
        return reason if url in reason else f"{reason} (at {url})"

    def _next_server(self) -> None:
        self._index = (self._index + 1) % len(self._servers)

    def restart(self, now: float) -> None:
        """Try again at once, counting from zero (after giving up)."""
        self.gave_up = False
        self.failures = 0
        self.next_attempt = now

    def attempt_started(self) -> None:
        self._controller.set_phase(Phase.CONNECTING)
        self._refusal = None
        self._drop_reason = None
        self._resuming = False

    def failed(self, reason: str) -> None:
        """An attempt failed: the next server at once, or, once a whole round over
        the servers failed, the first again after the backoff; or give up past the
        ceiling (counted in rounds)."""
        self.failures += 1
        self.failed_total += 1
        reason = self._named(reason)
        self.last_error = reason
        count = len(self._servers)
        rounds, in_round = divmod(self.failures, count)
        if self._ceiling is not None and in_round == 0 and rounds > self._ceiling:
            attempts = f"{self.failures} failed connection attempts"
            if count > 1:
                attempts += f" ({rounds} rounds over {count} servers)"
            self.give_up(f"gave up after {attempts}; last: {reason}")
            return
        failed_url = self.server_url
        self._next_server()
        delay = self._backoff.delay(rounds) if in_round == 0 else 0.0
        self.next_attempt = time.monotonic() + delay
        log.warning(
            "connection attempt %d to %s failed (%s); next attempt to %s in %.2f s",
            self.failures,
            failed_url,
            reason,
            self.server_url,
            delay,
        )

    def give_up(self, reason: str) -> None:
        self.gave_up = True
        self.connected_to = None
        reason = self._named(reason)
        self.last_error = reason
        log.error("%s", reason)
        self._controller.set_phase(Phase.DOWN, reason)

    def refused(self, name: str) -> None:
        """CONNACK refused the connection (by ``name``); the disconnect that follows says why."""
        self._refusal = refusal(name)

    def connected(self) -> None:
        self.connections += 1
        self._connected_at = time.monotonic()
        self.failures = 0  # (last_error stays: the most recent failure, for diagnostics)
        self.connected_to = self.server_url
        log.info("connected to %s", self.server_url)
        self._controller.set_phase(Phase.CONNECTED)

    def dropping(self, reason: str) -> None:
        """This side drops the connection: the loss that follows is for ``reason``."""
        self._drop_reason = reason

    @property
    def planned(self) -> bool:
        """The loss being reported is this side's resume (``resuming``)."""
        return self._resuming

    def resuming(self, reason: str) -> None:
        """This side ends a working connection to resume the session on the next one
        (``inbound_acks``): not a failure, so no backoff, no flap, no ``last_error``."""
        self._resuming = True
        self._drop_reason = reason

    def lost(self, was_connected: bool, stopping: bool, described: str) -> None:
        """The connection ended (``described``: how the session engine saw it). A lost
        connection is followed by an attempt to the next server; a resume (this side's
        planned reconnect) stays on the server that holds the session."""
        self.connected_to = None
        if stopping and not was_connected and self._refusal is None:
            return
        if self._resuming and was_connected and self._refusal is None:
            self._resuming = False
            self.resumes += 1
            log.info("%s: %s", self.server_url, self._drop_reason)
            self._drop_reason = None
            if not stopping:
                self._controller.set_phase(Phase.CONNECTING)
                self.next_attempt = time.monotonic()
            return
        refused, self._refusal = self._refusal, None
        if refused is not None:
            permanent, reason = refused
            if permanent:
                self.give_up(reason)
            else:
                self.failed(reason)
            return
        reason = self._drop_reason or described
        self._drop_reason = None
        if was_connected:
            self.last_error = f"connection lost: {reason} (at {self.server_url})"
            log.warning("connection to %s lost: %s", self.server_url, reason)
            if stopping:
                return
            self._controller.set_phase(Phase.CONNECTING)
            now = time.monotonic()
            self._flaps = self._flaps + 1 if now - self._connected_at < STABLE_AFTER else 0
            self.next_attempt = now + self._backoff.delay(self._flaps + 1)
            self._next_server()
        else:
            self.failed(f"connection closed before CONNACK: {reason}")
