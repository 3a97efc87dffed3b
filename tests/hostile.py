"""A fake MQTT broker on loopback that misbehaves on purpose.

Each connection is answered by a script: a list of bytes to send after the
client's CONNECT arrives, and whether to close afterwards. Nothing here is a
real broker; it only exists to feed a connector broken or hostile input.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

CONNACK_OK = b"\x20\x02\x00\x00"


def publish(topic: bytes, payload: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    """A PUBLISH packet with a raw (possibly invalid) topic."""
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += packet_id.to_bytes(2, "big")
    body += payload
    return bytes([0x30 | (qos << 1)]) + remaining_length(len(body)) + body


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@dataclass
class FakeBroker:
    """Answers every CONNECT with ``script`` and then, if ``close``, hangs up."""

    script: list[bytes]
    close: bool = True
    connects: int = 0
    port: int = 0
    _server: socket.socket | None = field(default=None, repr=False)
    _stop: bool = field(default=False, repr=False)
    _clients: list[socket.socket] = field(default_factory=list, repr=False)
    #: Every byte the clients sent (kept while ``close`` is False), all connections.
    received: bytearray = field(default_factory=bytearray, repr=False)

    def start(self) -> FakeBroker:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._serve, name="conformance-harness-fake", daemon=True).start()
        return self

    def _serve(self) -> None:
        assert self._server is not None
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._clients.append(client)
            threading.Thread(
                target=self._answer, args=(client,), name="conformance-harness-fake", daemon=True
            ).start()

    def _answer(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            client.settimeout(5)
            first = client.recv(4096)  # the CONNECT (small enough for one read here)
            if not first:
                return
            self.received += first
            self.connects += 1
            for chunk in self.script:
                client.sendall(chunk)
            if self.close:
                client.close()
                return
            while not self._stop:
                try:
                    data = client.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    return
                self.received += data

    def stop(self) -> None:
        self._stop = True
        for client in self._clients:
            with contextlib.suppress(OSError):
                client.close()
        if self._server is not None:
            self._server.close()

    def __enter__(self) -> FakeBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
