"""A RabbitMQ cluster on loopback, as processes of the kit's own.

Three nodes (by default) of Debian's ``rabbitmq-server`` with the MQTT plugin, each
with its own node name, ports and data directory, sharing one Erlang cookie and one
epmd of the cluster's own; nothing listens beyond 127.0.0.1. Nodes 2 and up join
node 1. Each node can be killed (SIGKILL to its process group, by its PID) and
started again: it keeps its data and rejoins the cluster.

MQTT sessions: RabbitMQ 3.10 keeps a persistent session's QoS 1 subscription in a
queue. ``mqtt.durable_queue_type = quorum`` (the default here, the safest this version
offers) makes that a quorum queue with a replica on every node, so it survives the
loss of any one node of three; ``classic`` keeps it on one node, unreachable while
that node is down.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .brokers import RabbitMQBroker, RabbitMQUnavailable, epmd_binary, free_port, start_epmd


@dataclass
class RabbitMQCluster:
    size: int = 3
    durable_queue_type: Literal["quorum", "classic"] = "quorum"
    start_timeout: float = 120.0
    nodes: list[RabbitMQBroker] = field(default_factory=list)
    _epmd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _workdir: str | None = field(default=None, repr=False)

    @property
    def servers(self) -> list[tuple[str, int]]:
        """Every node's MQTT listener, in node order."""
        return [("127.0.0.1", node.port) for node in self.nodes]

    def start(self) -> RabbitMQCluster:
        if self.size < 1:
            raise ValueError(f"a cluster has at least one node, not {self.size}")
        binary = epmd_binary()
        if binary is None:
            raise RabbitMQUnavailable("epmd (Erlang) is not installed")
        self._workdir = tempfile.mkdtemp(prefix="taktora-rabbitmq-cluster-")
        epmd_port = free_port()
        self._epmd = start_epmd(binary, epmd_port)
        cookie = uuid.uuid4().hex.upper()
        config = (f"mqtt.durable_queue_type = {self.durable_queue_type}",)
        self.nodes = [
            RabbitMQBroker(
                start_timeout=self.start_timeout,
                cookie=cookie,
                epmd_port=epmd_port,
                extra_config=config,
                _workdir=str(Path(self._workdir) / f"node{i + 1}"),
            )
            for i in range(self.size)
        ]
        for node in self.nodes:
            Path(node._workdir or "").mkdir(parents=True)
        try:
            self._start_all(self.nodes)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.node_name)
                node.ctl("start_app")
            self.wait_running(len(self.nodes))
        except BaseException:
            self.close()
            raise
        return self

    def _start_all(self, nodes: list[RabbitMQBroker]) -> None:
        """Start nodes side by side (each takes about 18 s alone)."""
        errors: list[BaseException] = []

        def run(node: RabbitMQBroker) -> None:
            try:
                node.start()
            except BaseException as err:  # (re-raised below)
                errors.append(err)

        threads = [threading.Thread(target=run, args=(n,)) for n in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def running_nodes(self) -> list[str]:
        """The node names the cluster reports running, asked of a live node."""
        for node in self.nodes:
            if node.running:
                text = node.ctl("eval", "rabbit_nodes:all_running().")
                return [n for n in self.node_names() if n in text]
        return []

    def node_names(self) -> list[str]:
        return [node.node_name for node in self.nodes]

    def wait_running(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            running = self.running_nodes()
            if len(running) >= count:
                return
            if time.monotonic() > deadline:
                raise RabbitMQUnavailable(
                    f"the cluster has {len(running)} running node(s), not {count}: {running}"
                )
            time.sleep(0.5)

    def kill(self, index: int) -> None:
        """Crash node ``index`` (0-based)."""
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        """Start node ``index`` again; it rejoins (its data says it is a member)."""
        self.nodes[index].start()
        self.wait_running(len(self.nodes))

    def queue_leader(self, name_part: str) -> str | None:
        """The node that leads (quorum) or holds (classic) the queue whose name has
        ``name_part``, as a node name; None when no such queue is listed."""
        for node in self.nodes:
            if not node.running:
                continue
            for line in node.ctl("list_queues", "name", "leader", "pid").splitlines():
                columns = line.split("\t")
                if name_part in columns[0]:
                    where = " ".join(columns[1:])
                    return next((n for n in self.node_names() if n in where), where)
            return None
        return None

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        if self._epmd is not None:
            with contextlib.suppress(ProcessLookupError):
                self._epmd.kill()
            self._epmd.wait(10)
            self._epmd = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> RabbitMQCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
