"""How the sidecar fails what waits on it, when it stops or cannot go on.

Rules of this module:
- it never imports paho and never raises: each step is tried even if one before
  it failed (``all_down``), so no waiter is left hanging;
- readers fail for good (``Reader.fail`` is sticky); messages accepted and not
  delivered fail in the data plane and in the bridge, which accepts no more;
- ``all_down`` also turns health ``Down`` with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from taktora_connector.adapters.mqtt.bridge import OutboundBridge
from taktora_connector.adapters.mqtt.health_control import HealthController, Phase
from taktora_connector.adapters.mqtt.records import Outbound
from taktora_connector.domain import ConnectorDown, ConnectorError

from .data_plane import DataPlane
from .subscriptions import Subscriptions

log = logging.getLogger("taktora_connector.mqtt")


class Waiters:
    """Everything that can wait on the sidecar: readers, outbound messages, health."""

    def __init__(
        self,
        controller: HealthController,
        subscriptions: Subscriptions[Any],
        plane: DataPlane,
        outbound: OutboundBridge[Outbound],
    ) -> None:
        self._controller = controller
        self._subscriptions = subscriptions
        self._plane = plane
        self._outbound = outbound

    def fail_readers(self, error: ConnectorError) -> None:
        for reader in self._subscriptions.all_readers():
            reader.fail(error)

    def fail_outbound(self, error: ConnectorError) -> None:
        """Fail every message accepted and not delivered, and accept no more."""
        self._plane.fail_all(error)
        for item in self._outbound.close():
            item.delivery.fail(error)
            self._plane.deliveries_failed += 1

    def all_down(self, reason: str) -> None:
        """Health ``Down`` with ``reason``; every waiter fails with ``ConnectorDown``."""
        down = ConnectorDown(reason)
        steps: tuple[Callable[[], object], ...] = (
            lambda: self._controller.set_phase(Phase.DOWN, reason),
            lambda: self.fail_readers(down),
            lambda: self.fail_outbound(down),
        )
        for step in steps:
            try:
                step()
            except Exception:  # keep failing the rest
                log.debug("sidecar: while reporting its stop", exc_info=True)
