"""The sidecar: one thread that owns the paho client and all protocol I/O (REQ_0258).

The gateway is the loop and the paho glue; each of its other jobs has a module:
``connecting`` (the interruptible TCP connect, attempts, backoff, reasons),
``subscribe_handshake`` (SUBSCRIBE batches, SUBACKs, hang-up suspects),
``outbound_flow`` (bridge to wire, drained), ``liveness``, ``wakeup`` (the
selector and wake pipe), ``stopping`` (requests from application threads),
``failing`` (failing what waits), ``fork_guard``, ``data_plane`` and ``unrouted``.

Rules of this module:
- it and ``paho_contact`` (every private part of paho replaced, in one place) are
  the only modules that import paho; no paho type leaves them;
- paho is the session engine (CONNECT/CONNACK, keep-alive, TLS set-up,
  SUBSCRIBE/UNSUBSCRIBE, DISCONNECT) and runs through its external-loop API
  (``socket``, ``loop_read``, ``loop_write``, ``want_write``, ``loop_misc``)
  inside this thread alone, so every paho callback runs here and never on an
  application thread;
- the data plane (PUBLISH both ways, PUBACK) is ``DataPlane``'s: this loop reads
  the socket, the data plane splits the bytes and hands control packets back
  here for paho (``_to_session``); both write into one ``BufferedSocket``, paho's
  queued packets first, so the wire keeps the order things were asked for;
- application threads talk to it only through the bounded bridges, the
  subscription registry, ``Requests`` (stop, abandon, restart) and ``wake()``;
  it never blocks on them;
- a reader created before a send subscribes first, and new PUBLISHes wait while
  a SUBSCRIBE is unacknowledged (at most ``connect_timeout``), so it gets the message
  (``SubscribeHandshake`` keeps the SUBACK books and the hang-up suspects);
- every packet identifier, paho's included, comes from one ``PacketIds``
  (MQTT-2.3.1-2); paho takes its own through ``paho_contact.install_ids`` (``LentIds``);
- liveness counts complete packets only (``DataPlane.packets_received``, looked
  at by ``Liveness``);
- no exception ends the sidecar unnoticed: expected I/O faults are handled as a
  broken connection where they happen; anything else (a bug, in a step or in a
  paho callback, which paho re-raises into the loop) reaches the one guard in
  ``_run``, which logs it once, makes it ``last_error``, turns health ``Down``
  with the reason and fails every waiter (readers, deliveries, flushes) with
  ``ConnectorDown`` (``Waiters.all_down``). Callbacks do not catch on their own.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from taktora_connector.adapters.mqtt.bridge import OutboundBridge
from taktora_connector.adapters.mqtt.health_control import HealthController
from taktora_connector.adapters.mqtt.inbound_acks import InboundAcks
from taktora_connector.adapters.mqtt.metrics import ConnectorMetrics, ReaderMetrics
from taktora_connector.adapters.mqtt.options import MqttConnectorOptions
from taktora_connector.adapters.mqtt.protocol.backoff import Backoff
from taktora_connector.adapters.mqtt.protocol.deadlines import ConnectionDeadlines
from taktora_connector.adapters.mqtt.protocol.packet_ids import LentIds, PacketIds
from taktora_connector.adapters.mqtt.protocol.packets import ProtocolViolation
from taktora_connector.adapters.mqtt.protocol.session import connack_refusal
from taktora_connector.adapters.mqtt.protocol.subscribe_handshake import (
    FilterChange,
    SubscribeHandshake,
)
from taktora_connector.adapters.mqtt.records import Outbound
from taktora_connector.domain import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    ConnectorDown,
    ConnectorError,
    ConnectorHealth,
    HealthKind,
)

from . import fork_guard
from .buffered_socket import BufferedSocket
from .connecting import (
    CONNACK_REFUSALS,
    Reconnect,
    connect_failure,
    describe,
    lost_reason,
    open_tcp,
)
from .data_plane import DataPlane
from .failing import Waiters
from .outbound_flow import OutboundFlow
from .paho_contact import install_buffer, install_ids, install_tcp_connect
from .stopping import Requests
from .subscriptions import Subscriptions
from .unrouted import UnroutedHold
from .wakeup import Wakeup, has_buffered_input

log = logging.getLogger("taktora_connector.mqtt")

#: Socket reads (up to 64 KiB each) per readable event before the loop looks at other work.
READ_BURST: Final = 16
#: A DISCONNECT packet (MQTT-3.14): fixed header, no variable header, no payload.
_DISCONNECT: Final = b"\xe0\x00"
#: The longest the loop sleeps, so keep-alive and deadlines are checked often.
IDLE_TICK: Final = 0.5


class Gateway:
    """Owns the paho client on one sidecar thread."""

    def __init__(
        self,
        options: MqttConnectorOptions,
        controller: HealthController,
        subscriptions: Subscriptions[Any],
        bridge_capacity: int,
    ) -> None:
        self._options = options
        self._controller = controller
        self._subscriptions = subscriptions
        self._match = subscriptions.matcher.match
        self._unrouted = UnroutedHold(
            self._match,
            lambda: len(subscriptions.matcher),
            controller,
            options.inbound_capacity,
            keep=not options.clean_session,
        )
        self._ids = PacketIds()
        self._lent_ids = LentIds(self._ids)  # the ones paho took and has in flight
        #: A persistent session's PUBACKs wait for the application (``inbound_acks``).
        self.inbound_acks = None if options.clean_session else InboundAcks(self.wake)
        self._plane = DataPlane(
            self._match,
            controller,
            self._ids,
            options.max_inflight,
            self._unrouted.hold,
            acks=self.inbound_acks,
            held_unrouted_limit=0 if options.clean_session else DEFAULT_MAX_PAYLOAD_SIZE,
        )
        self.outbound: OutboundBridge[Outbound] = OutboundBridge(bridge_capacity, self.wake)
        self._waiters = Waiters(controller, subscriptions, self._plane, self.outbound)
        self._reconnect = Reconnect(
            Backoff(options.reconnect_initial_backoff, options.reconnect_max_backoff),
            options.reconnect_attempt_ceiling,
            controller,
            options.server_list,
            options.server_url,
        )
        self._wakeup = Wakeup()
        self._thread: threading.Thread | None = None
        self._client: paho.Client | None = None
        self._wire: BufferedSocket | None = None
        # Connection state, touched by the sidecar only.
        self._socket_open = False
        self._connected = False
        #: When waiting ends on this connection (CONNACK, keep-alive, resends).
        self._deadlines = ConnectionDeadlines(options.connect_timeout, options.keep_alive)
        #: Why the sidecar stopped on an unexpected exception (terminal), else None.
        self.died: str | None = None
        self._next_misc = 0.0
        self._handshake = SubscribeHandshake(
            _failing_readers(subscriptions), options.connect_timeout
        )
        self._flow = OutboundFlow(self._plane, self.outbound, controller, self._handshake)
        # Requests from application threads.
        self._asked = Requests()

    # -- application-thread side -------------------------------------------------

    @property
    def last_error(self) -> str | None:
        """The most recent connection failure, for diagnostics (never has a password);
        once the sidecar stopped on an unexpected exception, that exception for good."""
        return self.died if self.died is not None else self._reconnect.last_error

    def metrics(
        self,
        *,
        health: ConnectorHealth,
        transitions: dict[HealthKind, int],
        dropped: int,
        sends_refused: int,
        readers: tuple[ReaderMetrics, ...],
        consumed: int,
        decode_failures: int,
        session: str,
        closed: bool,
    ) -> ConnectorMetrics:
        """The sidecar's counters as one snapshot (read on the caller's thread)."""
        plane, reconnect, acks = self._plane, self._reconnect, self.inbound_acks
        reason = getattr(health, "reason", None)
        return ConnectorMetrics(
            client_id=self._options.client_id,
            messages_sent=plane.messages_sent,
            bytes_sent=plane.traffic.sent,
            messages_delivered=plane.messages_delivered,
            deliveries_failed=plane.deliveries_failed,
            sends_refused=sends_refused,
            messages_received=plane.publishes_received,
            bytes_received=plane.bytes_received,
            messages_consumed=consumed,
            decode_failures=decode_failures,
            dropped_inbound=dropped,
            unrouted_inbound=self._unrouted.count,
            rejected_inbound=plane.rejected_inbound,
            oversized_inbound=plane.oversized_inbound,
            reconnects=max(0, reconnect.connections - 1),
            failed_attempts=reconnect.failed_total,
            session_resumes=reconnect.resumes,
            unresent_inbound=0 if acks is None else acks.unresent,
            health_transitions=transitions,
            outbound_queued=len(self.outbound),
            inflight=plane.inflight,
            unacknowledged_inbound=0 if acks is None else acks.unacknowledged,
            readers=readers,
            server=reconnect.connected_to,
            session=session,
            health=health.kind,
            health_reason=reason if isinstance(reason, str) else None,
            last_error=self.last_error,
            closed=closed,
        )

    @property
    def server(self) -> str | None:
        """The server of the connection that is up (``mqtt://host:port``), else None."""
        return self._reconnect.connected_to

    @property
    def rejected_inbound(self) -> int:
        """Inbound messages dropped because their topic is not UTF-8."""
        return self._plane.rejected_inbound

    @property
    def session_resumes(self) -> int:
        """Planned reconnects that resumed the session for dropped messages."""
        return self._reconnect.resumes

    @property
    def unrouted_inbound(self) -> int:
        """Inbound messages that matched no reader when they arrived."""
        return self._unrouted.count

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self) -> None:
        if self._thread is not None:
            if self._reconnect.gave_up and self.died is None:
                self._asked.restart = True
                self.wake(force=True)
            return
        fork_guard.watch(self)
        self._thread = threading.Thread(
            target=self._run, name=f"taktora-mqtt[{self._options.client_id}]", daemon=True
        )
        self._thread.start()

    def wake(self, force: bool = False) -> None:
        """Interrupt the sidecar's sleep (cheap when it is awake already)."""
        self._wakeup.wake(force)

    def abandon(self, reason: str) -> None:
        """Stop without waiting (the connector was dropped unclosed): fail what waits."""
        self._asked.abandoned = reason
        if self._thread is None:
            self._waiters.fail_readers(ConnectorDown(reason))
            self.stop(0)
            return
        self._asked.abandon()
        self.wake(force=True)

    def stop(self, timeout: float | None) -> bool:
        """Flush for up to ``timeout`` s (None: no deadline), disconnect, end the thread;
        True if all was flushed."""
        thread = self._thread
        if thread is None:
            for item in self.outbound.close():
                item.delivery.fail(ConnectorDown("connector closed before the message was sent"))
                self._plane.deliveries_failed += 1
            self._wakeup.close()
            return True
        bound = self._asked.ask_stop(timeout, self._options.connect_timeout)
        self.wake(force=True)
        thread.join(bound)
        if thread.is_alive():  # pragma: no cover - a bug, but never hang the caller
            log.error("sidecar %s did not stop in time", thread.name)
            return False
        return self._asked.flushed

    # -- the sidecar loop ----------------------------------------------------------

    def _run(self) -> None:
        # The one guard: whatever escapes a step or a callback ends here, never unnoticed.
        try:
            self._client = self._make_client()
            while not self._asked.should_exit(self._flow.empty, self._reconnect.gave_up):
                self._step()
        except BaseException as err:  # reported by _die, never swallowed
            self._die(err)
        try:
            self._shutdown()
        except BaseException as err:
            self._die(err)
        finally:
            self._reconnect.connected_to = None  # no server once the sidecar ended
            self._wakeup.close()

    def after_fork_in_child(self, pid: int) -> None:
        """In a forked child (see ``fork_guard``): refuse everything with a clear error."""
        reason = (
            f"this connector belongs to process {pid}; after fork() it cannot be used in "
            "the child (create a new connector there)"
        )
        self.died = reason
        self._reconnect.gave_up = True
        self._thread = None
        if self.inbound_acks is not None:
            self.inbound_acks.after_fork()
        fork_guard.refuse_in_child(reason, self.outbound, self._controller, self._subscriptions)

    def _die(self, err: BaseException) -> None:
        """An unexpected exception: report it once, go Down, fail everything that waits."""
        if self.died is not None:
            log.debug("sidecar: a further error after it stopped: %r", err)
            return
        reason = f"internal error: {type(err).__name__}: {err}"
        self.died = reason
        self._reconnect.gave_up = True
        log.error("sidecar of %s stopped: %s", self._options.broker_url(), reason, exc_info=err)
        self._waiters.all_down(reason)

    def _make_client(self) -> paho.Client:
        options = self._options
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            clean_session=options.clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
        )
        install_ids(client, self._lent_ids.take)
        client.connect_timeout = options.connect_timeout
        # paho's TCP connect blocks for up to connect_timeout; this one also ends when
        # close() wakes the sidecar (paho calls it from connect; see its docstring).
        install_tcp_connect(client, self._open_tcp)
        if options.credentials is not None:
            # paho types the password as str, but sends bytes as they are.
            password: Any = options.credentials.password
            client.username_pw_set(options.credentials.username, password)
        if options.tls is not None:
            client.tls_set_context(options.tls.context())
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        # With a write-registration callback paho only queues packets; this loop writes them.
        client.on_socket_register_write = _ignore_socket
        return client

    def _open_tcp(self) -> socket.socket:
        """Stands in for paho's private ``_create_socket_connection``: a TCP connect
        that ``close()`` interrupts (``connecting.open_tcp``)."""
        return open_tcp(
            self._reconnect.server,
            self._options.connect_timeout,
            self._wakeup,
            self._asked.stop_at,
        )

    def _step(self) -> None:
        now = time.monotonic()
        if self._asked.restart:
            self._asked.restart = False
            self._reconnect.restart(now)
        if (
            not self._socket_open
            and not self._reconnect.gave_up
            and now >= self._reconnect.next_attempt
        ):
            self._attempt_connect(now)
        self._unrouted.route_if_changed()
        if self._connected:
            self._plane.write_due_acks()
            acks = self.inbound_acks
            if acks is not None and self._deadlines.resends_over(now, acks.checking):
                acks.resends_over()
            if acks is not None and acks.resume_wanted and not self._handshake.awaiting:
                self._resume_session(acks)  # (not while a SUBSCRIBE waits for its SUBACK)
            else:
                self._pump()
        if self._socket_open:
            self._write()
            expired = self._deadlines.expired(now, self._connected)
            if expired is not None:
                self._force_close(expired)
            elif now >= self._next_misc:
                self._next_misc = now + IDLE_TICK
                self._client_call(lambda c: c.loop_misc())
        self._wait(now)

    def _wait(self, now: float) -> None:
        client = self._client
        assert client is not None
        sock = client.socket() if self._socket_open else None
        self._wakeup.watch(sock, self._wants_write() if sock is not None else False)
        readable = self._wakeup.select(
            self._sleep_budget(now), lambda: self._has_immediate_work(sock)
        )
        for _ in range(readable):
            self._read()
        if sock is not None and self._socket_open and has_buffered_input(sock):
            self._read()

    def _wants_write(self) -> bool:
        client = self._client
        wire = self._wire
        return bool(
            (client is not None and client.want_write()) or (wire is not None and wire.unflushed)
        )

    def _sleep_budget(self, now: float) -> float:
        deadlines = [now + IDLE_TICK]
        if not self._socket_open and not self._reconnect.gave_up:
            deadlines.append(self._reconnect.next_attempt)
        due = self._deadlines.next_deadline(self._connected)
        if due is not None:
            deadlines.append(due)
        if self._asked.stop:
            deadlines.append(self._asked.deadline)
        return max(0.0, min(deadlines) - now)

    def _has_immediate_work(self, sock: Any) -> bool:
        if self._asked.stop and self._flow.empty():
            return True
        if self._asked.restart:
            return True
        if not self._connected:
            return False
        if self._subscriptions.pending:
            return True
        acks = self.inbound_acks
        if acks is not None and (
            acks.waiting or (acks.resume_wanted and not self._handshake.awaiting)
        ):
            return True
        return self._flow.can_pump() or (sock is not None and has_buffered_input(sock))

    # -- connecting ------------------------------------------------------------------

    def _attempt_connect(self, now: float) -> None:
        client = self._client
        assert client is not None
        options = self._options
        self._reconnect.attempt_started()
        server = self._reconnect.server
        try:
            # paho checks the broker's certificate for this server's host name (unless
            # TlsOptions.server_hostname fixes one name for all)
            client.connect(server[0], server[1], int(options.keep_alive))
        except (OSError, ValueError) as err:  # ssl.SSLError and TimeoutError among them
            self._reconnect.failed(connect_failure(err, options, server))
        else:
            self._wire = install_buffer(client, self._plane.traffic)
            self._plane.attach(self._wire)
            self._socket_open = True
            self._deadlines.opened(now)
            self._next_misc = now + IDLE_TICK

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self._reconnect.refused(reason_code.getName())
            return
        self._connected = True
        acks = self.inbound_acks
        if acks is not None:
            acks.session_resumed(bool(flags.session_present))
        # (a resumed session checking resends: the broker has a while to send them again)
        self._deadlines.accepted(time.monotonic(), acks is not None and acks.checking)
        self._reconnect.connected()
        self._send_subscriptions(self._subscriptions.everything())
        self._plane.resend()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if not self._socket_open:
            # paho can report one loss twice (its keep-alive check closes the socket and
            # reports, then its ping check reports again): the first report counts.
            return
        was_connected = self._connected
        self._connected = False
        self._socket_open = False
        self._deadlines.closed()
        self._plane.connection_lost()
        self._handshake.connection_lost(was_connected, planned=self._reconnect.planned)
        self._lent_ids.connection_lost()
        self._reconnect.lost(was_connected, self._asked.stop, lost_reason(reason_code))

    def _resume_session(self, acks: InboundAcks) -> None:
        """A reader whose full queue dropped QoS 1 messages has drained: end this
        connection with DISCONNECT and connect again at once, so the broker sends every
        message not acknowledged again (MQTT-4.4.0-1), the dropped ones among them
        (``inbound_acks``). The session survives a DISCONNECT (clean_session=False)."""
        acks.resume_wanted = False
        reason = (
            f"resuming the session: a reader dropped {acks.withholding} QoS 1 message(s) "
            "for a full queue, not acknowledged; the broker sends them again"
        )
        wire = self._wire
        if wire is not None:
            # Every PUBACK already due must reach the broker first: one lost with the
            # socket makes the broker send its message again, a duplicate for the
            # application. A second at most (a broker that reads nothing goes on).
            wire.write(_DISCONNECT)
            _close_gracefully(wire, time.monotonic() + 1.0)
        self._reconnect.resuming(reason)
        self._force_close(reason)

    def _force_close(self, reason: str) -> None:
        """Drop the connection from this side (the next read reports it as lost)."""
        client = self._client
        self._reconnect.dropping(reason)
        self._deadlines.closed()
        sock = client.socket() if client is not None else None
        if sock is None:
            if self._socket_open:
                self._socket_open = False
                self._connected = False
                self._reconnect.failed(reason)
            return
        self._wakeup.watch(None, False)
        try:
            sock.close()
        except OSError:
            pass
        # Reading the closed socket makes paho tear the connection down and call
        # on_disconnect, which schedules the reconnect.
        self._client_call(lambda c: c.loop_read())
        if self._socket_open:  # paho did not notice: account for it ourselves
            self._socket_open = False
            self._connected = False
            self._reconnect.failed(reason)

    # -- I/O -------------------------------------------------------------------------

    def _client_call(self, call: Callable[[paho.Client], Any]) -> Any:
        client = self._client
        assert client is not None
        try:
            return call(client)
        except (OSError, ValueError, ssl.SSLError) as err:
            log.warning("protocol I/O failed: %s", describe(err))
            if self._socket_open and client.socket() is not None:
                self._force_close(f"I/O error: {describe(err)}")
            return None

    def _read(self) -> None:
        """Read what the socket has; the data plane splits it, paho gets the control packets."""
        wire = self._wire
        if wire is None or not self._socket_open:
            return
        self._unrouted.route_if_changed()  # readers changed: older held messages go first
        for _ in range(READ_BURST):
            try:
                data = wire.receive()
            except (OSError, ValueError) as err:
                log.warning("protocol I/O failed: %s", describe(err))
                self._force_close(f"I/O error: {describe(err)}")
                break
            if data is None:
                break
            if not data:  # the broker closed: paho reads the end and tears the session down
                self._client_call(lambda c: c.loop_read())
                break
            try:
                self._plane.receive(data, self._to_session)
            except ProtocolViolation as err:
                log.warning("broker broke the protocol: %s", err)
                self._force_close(f"protocol error: {err}")
                break
            if wire is not self._wire or not self._socket_open:
                break  # the connection changed under the read
            if not wire.pending() and not self._wakeup.readable_now(wire):
                break
        self._deadlines.liveness.note(self._plane.packets_received, time.monotonic())
        if self._connected:
            self._pump()
            self._write()

    def _to_session(self, packet: bytes) -> bool:
        """Hand one whole control packet to paho; False if the connection is gone after it."""
        wire = self._wire
        if wire is None:
            return False
        if (code := connack_refusal(packet)) is not None and code in CONNACK_REFUSALS:
            # Refused: classified by ``connecting``, never left to paho (``session``).
            name = CONNACK_REFUSALS[code]
            self._reconnect.refused(name)
            self._force_close(f"broker refused the connection: {name}")
            return False
        wire.to_session(packet)
        self._client_call(lambda c: c.loop_read())
        if (violation := self._handshake.take_violation()) is not None:
            log.warning("broker broke the protocol: %s", violation)
            self._force_close(f"protocol error: {violation}")  # not from paho's callback
            return False
        self._session_writes()  # e.g. the SUBSCRIBEs of on_connect, before any PUBLISH
        return self._socket_open and self._wire is wire

    def _session_writes(self) -> None:
        """Move what paho queued into the shared buffer, so the wire keeps the order of
        events: a SUBSCRIBE made before a PUBLISH is written before it."""
        client = self._client
        if client is not None and self._socket_open and client.want_write():
            self._client_call(lambda c: c.loop_write())

    def _write(self) -> None:
        client = self._client
        assert client is not None
        if self._socket_open and client.want_write():
            self._client_call(lambda c: c.loop_write())
        wire = self._wire
        if self._socket_open and wire is not None and wire.unflushed:
            try:
                wire.flush()
            except OSError as err:
                self._force_close(f"I/O error: {describe(err)}")
        self._plane.settle_qos0()
        self._flow.check_drained(self._wire)

    def _pump(self) -> None:
        """Encode queued messages into the socket's buffer while the window allows."""
        if self._subscriptions.pending:  # a reader made before a send subscribes first
            self._send_subscriptions(self._subscriptions.changes())
        self._session_writes()
        self._flow.pump()
        self._flow.check_drained(self._wire)

    # -- subscriptions -------------------------------------------------------------------

    def _send_subscriptions(self, changes: list[FilterChange]) -> None:
        client = self._client
        assert client is not None

        def subscribe(chunk: list[tuple[str, int]]) -> int | None:
            rc, mid = client.subscribe(chunk)
            return mid if rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

        self._handshake.send(changes, subscribe, client.unsubscribe, time.monotonic())

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        self._lent_ids.acknowledged(mid)
        self._handshake.answered(mid, [code.is_failure for code in reason_codes])

    def _on_unsubscribe(
        self, client: paho.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        self._lent_ids.acknowledged(mid)

    # -- shutdown ----------------------------------------------------------------------

    def _shutdown(self) -> None:
        if self._asked.abandoned is not None:
            self._waiters.fail_readers(ConnectorDown(self._asked.abandoned))
        client = self._client
        if client is not None and self._socket_open:
            wire = self._wire
            if self._connected:
                self._plane.write_due_acks()  # what the application was done with
                self._connected = False
                if wire is not None:
                    if client.want_write():  # what paho still holds goes first
                        self._client_call(lambda c: c.loop_write())
                    # DISCONNECT written here, behind the PUBACKs, not by paho: paho closes
                    # the socket as soon as its DISCONNECT is buffered, and a close with
                    # unread input sends RST, which drops the bytes still queued (the last
                    # PUBACKs: messages the application had came again next session).
                    wire.write(_DISCONNECT)
                    _close_gracefully(wire, time.monotonic() + 1.0)
                else:  # pragma: no cover - connected always has a wire
                    client.disconnect()
                self._plane.settle_qos0()
            sock = client.socket()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
            self._socket_open = False
        self._waiters.fail_outbound(
            ConnectorDown("connector closed before the message was delivered")
        )


def _close_gracefully(wire: BufferedSocket, deadline: float) -> None:
    """Flush, send FIN, and read (and discard) until the broker closes, by ``deadline``.

    Closing a socket with unread input makes the kernel send RST, and a peer that gets
    RST discards what it had not read yet: the last PUBACKs and the DISCONNECT with it
    (seen on mosquitto: acknowledged messages sent again on the next connection, each
    a duplicate for the application). What is read here was not acknowledged, so the
    broker sends it again."""
    raw = wire.raw
    try:
        while not wire.flush():
            if time.monotonic() >= deadline:
                return
            select.select([], [raw], [], max(0.0, deadline - time.monotonic()))
        raw.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([raw], [], [], left)
            if readable and not raw.recv(65536):
                return  # the broker closed its side: everything before it was read
    except (OSError, ValueError):
        return  # the connection is ending anyway


def _ignore_socket(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Write registration hook: its presence makes paho queue instead of writing inline."""


def _failing_readers(subscriptions: Subscriptions[Any]) -> Callable[[str, ConnectorError], None]:
    """What the handshake calls when the broker refuses a filter: fail its readers."""

    def fail(topic_filter: str, error: ConnectorError) -> None:
        for reader in subscriptions.readers_of(topic_filter):
            reader.fail(error)

    return fail
