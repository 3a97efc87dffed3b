"""After ``fork()``: a child process must not use the connectors it inherited.

A forked child has one thread and a copy of memory: each connector's sidecar,
socket and locks belong to the parent. ``watch`` records a started gateway; in
the child, every recorded one is told (``after_fork_in_child``) and refuses
everything with a clear error.

Rules of this module:
- it never imports paho and never raises into the child's ``fork()``;
- locks a parent thread held at the fork stay held in the child, so the ones the
  child can still reach are replaced (``replace_locks``) before anything uses them.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Protocol

from taktora_connector.adapters.mqtt.bridge import OutboundBridge
from taktora_connector.adapters.mqtt.health_control import HealthController, Phase
from taktora_connector.domain import ConnectorDown

from .subscriptions import Subscriptions

log = logging.getLogger("taktora_connector.mqtt")


class Forkable(Protocol):
    def after_fork_in_child(self, parent_pid: int) -> None: ...


#: Started gateways, so that a forked child can disable the ones it inherited.
_LIVE: weakref.WeakSet[Forkable] = weakref.WeakSet()
_PARENT_PID = [os.getpid()]


def watch(gateway: Forkable) -> None:
    _LIVE.add(gateway)


def refuse_in_child(
    reason: str,
    bridge: OutboundBridge[Any],
    controller: HealthController,
    subscriptions: Subscriptions[Any],
) -> None:
    """Close the bridge, fail every reader and turn health ``Down``, with new locks."""
    replace_locks(bridge, controller, subscriptions)
    bridge.closed_reason = reason
    bridge.close()
    down = ConnectorDown(reason)
    for reader in subscriptions.all_readers():
        reader.after_fork()
        reader.fail(down)
    controller.set_phase(Phase.DOWN, reason)


def replace_locks(
    bridge: OutboundBridge[Any], controller: HealthController, subscriptions: Subscriptions[Any]
) -> None:
    """New locks for everything of one connector the child can still reach."""
    bridge._lock = threading.Lock()
    controller._lock = threading.RLock()
    broadcaster = controller._broadcaster
    broadcaster._lock = threading.Lock()
    for sub in broadcaster._subscriptions:
        sub._cond = threading.Condition(threading.Lock())
    subscriptions._lock = threading.Lock()


def _before_fork() -> None:
    _PARENT_PID[0] = os.getpid()


def _after_fork_in_child() -> None:
    for gateway in list(_LIVE):
        try:
            gateway.after_fork_in_child(_PARENT_PID[0])
        except Exception:  # never break the child's fork  # pragma: no cover
            log.debug("after fork: could not disable a connector", exc_info=True)
    _LIVE.clear()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
