"""REQ_0258, the sidecar: no protocol I/O on the caller's thread, no thread left behind.

Also a fair connector: waking an asyncio loop from send is not protocol I/O."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from returns.result import Result

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
    ConnectorError,
)
from taktora_connector.ports import PayloadCodec

from .base import ChannelWrapper, Wrapper
from .registry import breaks, fair


class LeaksThread(Wrapper):
    def start(self) -> Result[None, ConnectorError]:
        threading.Thread(target=time.sleep, args=(30,), name="leaky-worker", daemon=True).start()
        return self.inner.start()


@breaks("REQ_0258", caught_by="TEST_2582")
def leaks_thread(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return LeaksThread(MqttConnector(options, codec))


class CallerThreadIoWriter(ChannelWrapper):
    """After each send, writes a PINGREQ to the broker from the caller's thread."""

    def __init__(self, inner: Any, side: SideConnection) -> None:
        super().__init__(inner)
        self.side = side

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        self.side.ping()
        return result


class SideConnection:
    """An MQTT connection of its own, opened and used on whatever thread calls it."""

    PINGREQ = b"\xc0\x00"

    def __init__(self, options: MqttConnectorOptions) -> None:
        self.options = options
        self.sock: socket.socket | None = None

    def ping(self) -> None:
        try:
            self._ping()
        except OSError:  # the broker went away: connect again next time
            self.close()
            self.sock = None

    def _ping(self) -> None:
        if self.sock is None:
            self.sock = socket.create_connection((self.options.host, self.options.port), 5)
            client_id = f"{self.options.client_id}-side".encode()
            variable = b"\x00\x04MQTT\x04\x02\x00\x00"  # level 4, clean session, no keep-alive
            body = variable + len(client_id).to_bytes(2, "big") + client_id
            self.sock.sendall(bytes([0x10, len(body)]) + body)
        self.sock.sendall(self.PINGREQ)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


class IoOnCallerThread(Wrapper):
    def __init__(self, inner: MqttConnector[Any], options: MqttConnectorOptions) -> None:
        super().__init__(inner)
        self.side = SideConnection(options)

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(
            lambda w: CallerThreadIoWriter(w, self.side)
        )

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        self.side.close()
        return self.inner.close(timeout)


@breaks("REQ_0258", caught_by="TEST_2580")
def io_on_caller_thread(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return IoOnCallerThread(MqttConnector(options, codec), options)


# Fair connectors: unusual but correct, so the kit must pass them --------------------


class LoopWakingWriter(ChannelWrapper):
    """Wakes an asyncio loop from the caller's thread on every send, as a connector
    built on an asyncio stack does (``call_soon_threadsafe`` writes a byte to the
    loop's own socket pair: not protocol I/O)."""

    def __init__(self, inner: Any, loop: asyncio.AbstractEventLoop, woken: list[int]) -> None:
        super().__init__(inner)
        self.loop = loop
        self.woken = woken

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        result = self.inner.send(value, correlation_id=correlation_id)
        if not self.loop.is_closed():  # after close() the loop is gone, the send refused
            self.loop.call_soon_threadsafe(self.woken.append, 1)
        return result


class WakesAsyncioLoop(Wrapper):
    def __init__(self, inner: MqttConnector[Any]) -> None:
        super().__init__(inner)
        self.loop = asyncio.new_event_loop()
        self.woken: list[int] = []
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="fair-asyncio-loop", daemon=True
        )
        self.thread.start()

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(
            lambda w: LoopWakingWriter(w, self.loop, self.woken)
        )

    def close(self, timeout: float = 5.0) -> Result[None, ConnectorError]:
        result = self.inner.close(timeout)
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
            self.loop.close()
        return result


@fair("REQ_0258")
def wakes_asyncio_loop(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return WakesAsyncioLoop(MqttConnector(options, codec))


class ShowsItsLoop(Wrapper):
    """Offers its event loop through a public method: a stack type in the port surface."""

    def event_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()


@breaks("REQ_0258", caught_by="TEST_2581")
def shows_its_loop(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return ShowsItsLoop(MqttConnector(options, codec))
