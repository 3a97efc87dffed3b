"""From the outbound bridge to the wire, and when outbound backpressure ends.

Rules of this module:
- it runs on the sidecar thread only, never imports paho and does no I/O itself
  (the data plane encodes into the socket's write buffer; the gateway flushes it);
- new PUBLISHes wait while the subscription handshake holds them;
- backpressure is cleared only once the whole outbound path is empty (bridge,
  in-flight window, unwritten bytes), not merely the bridge: on a stalled broker
  the bridge empties into the window, and calling that "drained" would flap Up
  and Degraded.
"""

from __future__ import annotations

import time

from taktora_connector.adapters.mqtt.bridge import OutboundBridge
from taktora_connector.adapters.mqtt.health_control import HealthController
from taktora_connector.adapters.mqtt.protocol.subscribe_handshake import SubscribeHandshake
from taktora_connector.adapters.mqtt.records import Outbound

from .buffered_socket import BufferedSocket
from .data_plane import DataPlane


class OutboundFlow:
    def __init__(
        self,
        plane: DataPlane,
        outbound: OutboundBridge[Outbound],
        controller: HealthController,
        handshake: SubscribeHandshake,
    ) -> None:
        self._plane = plane
        self._outbound = outbound
        self._controller = controller
        self._handshake = handshake

    def empty(self) -> bool:
        """Nothing accepted waits to be written or acknowledged."""
        return self._plane.idle and not len(self._outbound)

    def can_pump(self) -> bool:
        return not self._handshake.publishing_held(time.monotonic()) and self._plane.can_pump(
            self._outbound
        )

    def pump(self) -> None:
        """Encode queued messages into the socket's buffer while the window allows."""
        if not self._handshake.publishing_held(time.monotonic()):
            self._plane.pump(self._outbound)

    def check_drained(self, wire: BufferedSocket | None) -> None:
        """Clear outbound backpressure once the whole outbound path is empty."""
        if not self._controller.outbound_latched:
            return
        if (
            self._plane.idle
            and not len(self._outbound)
            and not (wire is not None and wire.unflushed)
        ):
            self._controller.outbound_drained()
