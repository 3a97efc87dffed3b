"""Brokers for the kit and the tests: amqtt in-process, mosquitto and RabbitMQ as processes.

Rules of this module:
- every broker listens on loopback only, on a port chosen free at start;
- certificates are made at run time (trustme) and never written to the repo;
- ``stop()`` and ``restart()`` keep the port, so a connector can reconnect to it;
- amqtt's known deviations are worked around in ``amqtt_quirks`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import amqtt_quirks


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: How often a broker on ports it picked itself is tried again on new ones.
PORT_ATTEMPTS = 5


def _fresh_ports(tls: bool) -> tuple[int, int]:
    """A plain port, and a TLS port when asked (else 0), free right now."""
    return free_port(), free_port() if tls else 0


def _address_in_use(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it was raised from) is EADDRINUSE."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def wait_for_port(
    port: int, timeout: float = 10.0, alive: Callable[[], bool] | None = None
) -> None:
    """Until something listens on ``port``. With ``alive`` (the process that should be
    listening): ``ChildProcessError`` once it is gone, also when another process answered
    on the port in its place (it is checked again a moment after the connect)."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None and not alive():
            raise ChildProcessError(f"the process meant to listen on {port} has exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout} s"
                ) from None
            time.sleep(0.01)
            continue
        if alive is not None:
            time.sleep(0.05)  # a process that cannot bind exits at once
            if not alive():
                raise ChildProcessError(f"port {port} answered, but not from the broker")
        return


@dataclass
class TlsMaterial:
    """A CA and a server certificate for ``localhost``/``127.0.0.1``, made at run time."""

    ca_pem: str
    certfile: str
    keyfile: str
    directory: str

    @classmethod
    def create(
        cls, directory: str | None = None, names: Sequence[str] = ("localhost", "127.0.0.1")
    ) -> TlsMaterial:
        """``names``: what the server certificate is valid for."""
        import trustme

        where = directory or tempfile.mkdtemp(prefix="taktora-tls-")
        ca = trustme.CA()
        server = ca.issue_cert(*names)
        certfile = os.path.join(where, "server.pem")
        keyfile = os.path.join(where, "server.key")
        server.cert_chain_pems[0].write_to_path(certfile)
        for extra in server.cert_chain_pems[1:]:
            with open(certfile, "ab") as handle:
                handle.write(extra.bytes())
        server.private_key_pem.write_to_path(keyfile)
        return cls(ca.cert_pem.bytes().decode("ascii"), certfile, keyfile, where)

    @staticmethod
    def other_ca_pem() -> str:
        """A CA that signed nothing of ours: a broker must not be trusted with it."""
        import trustme

        pem: str = trustme.CA().cert_pem.bytes().decode("ascii")
        return pem


@dataclass
class EmbeddedBroker:
    """amqtt on its own asyncio loop in a daemon thread.

    ``users`` turns on authentication (anonymous refused); ``tls`` adds a TLS
    listener (``tls_port``) beside the plain one (``port``).
    """

    users: Mapping[str, str] | None = None
    tls: bool = False
    port: int = 0
    tls_port: int = 0
    tls_material: TlsMaterial | None = None
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _broker: Any = field(default=None, repr=False)
    _workdir: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        amqtt_quirks.quiet_logs()
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="taktora-amqtt-")
        chosen = not self.port and not self.tls_port  # ports we pick may be taken meanwhile
        if self.tls and self.tls_material is None:
            self.tls_material = TlsMaterial.create(self._workdir)
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="conformance-harness-amqtt", daemon=True
        )
        self._thread.start()
        attempts = 0
        while True:
            attempts += 1
            if chosen:
                self.port, self.tls_port = _fresh_ports(self.tls)
            try:
                asyncio.run_coroutine_threadsafe(self._start(), loop).result(15)
                return self
            except Exception as err:
                # free_port() and the bind are two steps: another process (a parallel
                # test, another kit run) can take the port between them. Pick again.
                if not (chosen and attempts < PORT_ATTEMPTS and _address_in_use(err)):
                    self.stop()
                    raise
                with contextlib.suppress(Exception):  # a listener it did bind goes too
                    asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop).result(15)

    async def _start(self) -> None:
        broker_class = amqtt_quirks.patched_broker_class()
        self._broker = broker_class(self._config())
        await self._broker.start()

    def _config(self) -> dict[str, Any]:
        listeners: dict[str, Any] = {
            "default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}", "max_connections": 0}
        }
        if self.tls and self.tls_material is not None:
            listeners["tls"] = {
                "type": "tcp",
                "bind": f"127.0.0.1:{self.tls_port}",
                "ssl": True,
                "certfile": self.tls_material.certfile,
                "keyfile": self.tls_material.keyfile,
            }
        plugins: dict[str, Any] = {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {
                "allow_anonymous": self.users is None
            }
        }
        if self.users is not None:
            plugins["amqtt.plugins.authentication.FileAuthPlugin"] = {
                "password_file": self._password_file(self.users)
            }
        return {"listeners": listeners, "plugins": plugins, "timeout_disconnect_delay": 0}

    def _password_file(self, users: Mapping[str, str]) -> str:
        from pwdlib.hashers.argon2 import Argon2Hasher

        # Cheap argon2 parameters: CONNECT stays fast; these are test credentials.
        hasher = Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1)
        assert self._workdir is not None
        path = os.path.join(self._workdir, "passwd")
        with open(path, "w", encoding="utf-8") as handle:
            for name, password in users.items():
                handle.write(f"{name}:{hasher.hash(password)}\n")
        return path

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        loop.close()
        self._loop = self._thread = self._broker = None

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Publish from the broker itself (how ``$SYS`` messages come about)."""
        assert self._loop is not None
        coroutine = self._broker.internal_message_broadcast(topic, payload, qos)
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def restart(self, pause: float = 0.0) -> None:
        """Stop, wait ``pause`` seconds, start again on the same ports."""
        self.stop()
        time.sleep(pause)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class MosquittoUnavailable(RuntimeError):
    """The mosquitto binary is not installed."""


def mosquitto_binary() -> str | None:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def mosquitto_version() -> str:
    """The installed mosquitto's version ("2.0.18"), or "unknown"."""
    binary = mosquitto_binary()
    if binary is None:
        return "unknown"
    try:
        done = subprocess.run(
            [binary, "-h"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for word in (done.stdout + done.stderr).split():
        if word[:1].isdigit() and word.count(".") >= 1:
            return word
    return "unknown"


@dataclass
class MosquittoBroker:
    """A mosquitto 2.x process on a loopback port, with optional users and TLS."""

    users: Mapping[str, str] | None = None
    tls: bool = False
    persistent: bool = False
    port: int = 0
    tls_port: int = 0
    tls_material: TlsMaterial | None = None
    extra_config: str = ""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _workdir: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The broker process (to pause it with SIGSTOP, say)."""
        assert self._process is not None, "the broker is not running"
        return self._process.pid

    def start(self) -> MosquittoBroker:
        binary = mosquitto_binary()
        if binary is None:
            raise MosquittoUnavailable(
                "mosquitto is not installed (apt-get install mosquitto mosquitto-clients)"
            )
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="taktora-mosquitto-")
        chosen = not self.port and not self.tls_port  # ports we pick may be taken meanwhile
        if self.tls:
            self.tls_material = self.tls_material or TlsMaterial.create(self._workdir)
        attempts = 0
        while True:
            attempts += 1
            if chosen:
                self.port, self.tls_port = _fresh_ports(self.tls)
            if self._launch(binary):
                return self
            # mosquitto exited: most likely another process took the port we picked
            # between free_port() and its bind. Pick again, or give up.
            if not chosen or attempts >= PORT_ATTEMPTS:
                raise MosquittoUnavailable(
                    f"mosquitto exited at start (port {self.port} taken, or a bad configuration)"
                )

    def _launch(self, binary: str) -> bool:
        """Start the process on the current ports; False if it exited before listening."""
        assert self._workdir is not None
        config = Path(self._workdir, "mosquitto.conf")
        config.write_text(self._config(), encoding="utf-8")
        process = self._process = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self._workdir,
        )
        try:
            for port in (self.port, self.tls_port) if self.tls else (self.port,):
                wait_for_port(port, alive=lambda: process.poll() is None)
        except TimeoutError:
            self.stop()
            raise
        except ChildProcessError:
            self._process = None
            return False
        return True

    def _config(self) -> str:
        assert self._workdir is not None
        lines = [
            # As root, mosquitto would switch to its own user, which cannot read
            # our private temporary directory; stay the user that started it.
            *(["user root"] if os.geteuid() == 0 else []),
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "log_dest none",
        ]
        if self.persistent:
            lines += ["persistence true", f"persistence_location {self._workdir}/"]
        if self.users is not None:
            passwd = Path(self._workdir, "passwd")
            passwd.write_text(
                "".join(f"{name}:{password}\n" for name, password in self.users.items()),
                encoding="utf-8",
            )
            subprocess.run(  # hashes the plain-text file in place
                [shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-U", str(passwd)],
                check=True,
                capture_output=True,
            )
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls and self.tls_material is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"certfile {self.tls_material.certfile}",
                f"keyfile {self.tls_material.keyfile}",
            ]
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def stop(self, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def restart(self, pause: float = 0.0, kill: bool = True) -> None:
        self.stop(kill=kill)
        time.sleep(pause)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class RabbitMQUnavailable(RuntimeError):
    """rabbitmq-server (with its MQTT plugin) is not installed, or did not start."""


#: Where Debian's rabbitmq-server package keeps the scripts that run as any user.
RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")


def start_epmd(binary: str, port: int) -> subprocess.Popen[bytes]:
    """An Erlang port mapper of the kit's own on 127.0.0.1:``port``."""
    return subprocess.Popen(
        [binary, "-port", str(port), "-address", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def epmd_binary() -> str | None:
    return shutil.which("epmd") or next(
        (str(p) for p in Path("/usr/lib/erlang").glob("erts-*/bin/epmd")), None
    )


def rabbitmq_server() -> str | None:
    """The rabbitmq-server script that runs as the calling user, or None."""
    for candidate in (RABBITMQ_SCRIPTS / "rabbitmq-server", shutil.which("rabbitmq-server")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def rabbitmq_version() -> str:
    """The installed RabbitMQ's version, read from its MQTT plugin's folder, or "unknown"."""
    for plugin in Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*/plugins/rabbitmq_mqtt-*"):
        return plugin.name.removeprefix("rabbitmq_mqtt-")
    return "unknown"


@dataclass
class RabbitMQBroker:
    """A RabbitMQ node with its MQTT plugin, as processes of the kit's own, on loopback.

    Its own node name, ports (MQTT, AMQP, Erlang distribution and an epmd of its
    own), cookie and data directory under a temporary folder; nothing listens beyond
    127.0.0.1. It takes about 18 s to start, so one serves a whole kit run. Anonymous
    MQTT clients are the default user's. ``stop`` ends the node's process group by
    its PID, and the epmd it started."""

    port: int = 0
    tls: bool = False
    tls_port: int = 0
    tls_material: TlsMaterial | None = None
    start_timeout: float = 90.0
    #: A cluster's nodes share a cookie and an epmd (``RabbitMQCluster``); left
    #: empty, the node has a cookie and an epmd of its own.
    cookie: str = ""
    epmd_port: int = 0
    #: More ``rabbitmq.conf`` lines (``mqtt.durable_queue_type = quorum``).
    extra_config: tuple[str, ...] = ()
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _epmd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _workdir: str | None = field(default=None, repr=False)
    _env: dict[str, str] = field(default_factory=dict, repr=False)
    _amqp_port: int = field(default=0, repr=False)
    _dist_port: int = field(default=0, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the broker is not running"
        return self._process.pid

    @property
    def node_name(self) -> str:
        return f"taktora-{self.port}@localhost"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RabbitMQBroker:
        """Start the node (again, after ``stop`` or ``kill``: same ports and data, so
        a cluster's node rejoins its cluster)."""
        server = rabbitmq_server()
        if server is None:
            raise RabbitMQUnavailable(
                "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
            )
        epmd_binary_ = epmd_binary()
        if epmd_binary_ is None:
            raise RabbitMQUnavailable("epmd (Erlang) is not installed")
        work = Path(self._workdir or tempfile.mkdtemp(prefix="taktora-rabbitmq-"))
        self._workdir = str(work)
        self.port = self.port or free_port()
        if not self._env:
            self._amqp_port, self._dist_port = free_port(), free_port()
        amqp, dist = self._amqp_port, self._dist_port
        own_epmd = not self.epmd_port
        epmd = self.epmd_port or free_port()
        lines = [
            f"listeners.tcp.default = 127.0.0.1:{amqp}",
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}",
            "mqtt.allow_anonymous = true",
            "loopback_users = none",
            "log.console = false",
            "log.file.level = warning",
        ]
        if self.tls:
            material = self.tls_material = self.tls_material or TlsMaterial.create(str(work))
            cafile = work / "ca.pem"
            cafile.write_text(material.ca_pem, encoding="ascii")
            self.tls_port = self.tls_port or free_port()
            lines += [
                f"mqtt.listeners.ssl.default = 127.0.0.1:{self.tls_port}",
                f"ssl_options.cacertfile = {cafile}",
                f"ssl_options.certfile = {material.certfile}",
                f"ssl_options.keyfile = {material.keyfile}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        lines += self.extra_config
        (work / "rabbitmq.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (work / "enabled_plugins").write_text("[rabbitmq_mqtt].\n", encoding="utf-8")
        cookie = work / ".erlang.cookie"
        self.cookie = self.cookie or uuid.uuid4().hex.upper()
        cookie.unlink(missing_ok=True)  # (read-only once written: a restart writes it anew)
        cookie.write_text(self.cookie, encoding="utf-8")
        cookie.chmod(0o400)
        env = {
            **os.environ,
            "HOME": str(work),  # the cookie
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(amqp),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_CONFIG_FILE": str(work / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(work / "mnesia"),
            "RABBITMQ_LOG_BASE": str(work / "log"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(work / "plugins-expand"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(epmd),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self._env = env
        if own_epmd:
            self._epmd = start_epmd(epmd_binary_, epmd)
        log = (work / "server.out").open("wb")
        process = self._process = subprocess.Popen(
            [server],
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one, by its PID
        )
        log.close()
        try:
            wait_for_port(self.port, self.start_timeout, alive=lambda: process.poll() is None)
        except (TimeoutError, ChildProcessError) as err:
            tail = (work / "server.out").read_text(errors="replace")[-1500:]
            self.stop()
            raise RabbitMQUnavailable(f"RabbitMQ did not start: {err}\n{tail}") from err
        return self

    def ctl(self, *arguments: str, timeout: float = 60) -> str:
        """``rabbitmqctl`` against this node; its output, or ``RabbitMQUnavailable``."""
        done = subprocess.run(
            [str(RABBITMQ_SCRIPTS / "rabbitmqctl"), "-q", "-n", self.node_name, *arguments],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode:
            raise RabbitMQUnavailable(
                f"rabbitmqctl {arguments[0]} failed: {(done.stderr or done.stdout).strip()}"
            )
        return done.stdout

    def kill(self) -> None:
        """End the node at once (SIGKILL to its process group, by its PID): a crash,
        no goodbye to clients or to the cluster."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait(20)

    def add_user(self, name: str, password: str) -> None:
        """A user that may connect with ``password`` (and do anything on the default
        virtual host): for the scenarios that present credentials. A few seconds each
        (``rabbitmqctl`` starts an Erlang node of its own)."""
        # "--" ends rabbitmqctl's options: a name or password that starts with "-"
        # (token_urlsafe gives one in 32) is an argument, not a switch
        self.ctl("add_user", "--", name, password)
        self.ctl("set_permissions", "-p", "/", "--", name, ".*", ".*", ".*")

    def stop(self) -> None:
        for attribute in ("_process", "_epmd"):
            process = getattr(self, attribute)
            setattr(self, attribute, None)
            if process is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                process.wait(10)

    def close(self) -> None:
        self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> RabbitMQBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
