"""Which filters the broker should know, and which readers each message goes to.

Rules of this module:
- each distinct filter is subscribed at the broker with the highest QoS any of
  its readers asks for, and reference-counted by its readers; a new reader of a
  filter already subscribed subscribes it again, so that the broker sends it the
  retained messages (readers drop retained copies they already had);
- changes are recorded as dirty filters; the sidecar alone talks to the broker
  and asks ``changes()`` what to SUBSCRIBE or UNSUBSCRIBE, so adding 10,000
  readers costs 10,000 small steps, not a full comparison each time;
- after a reconnect the sidecar asks for ``everything()`` and subscribes again;
- matching is lock-free (see ``matcher``); changes take one lock;
- a shared filter (``$share/<group>/<filter>``) is its own subscription at the
  broker, distinct from the same filter in another group or unshared; readers
  match received topics against the filter without the prefix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from taktora_connector.adapters.mqtt.matcher import TopicMatcher
from taktora_connector.adapters.mqtt.protocol.subscribe_handshake import FilterChange
from taktora_connector.adapters.mqtt.routing import unshared

S = TypeVar("S", bound=Hashable)


class Subscriptions(Generic[S]):
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self.matcher: TopicMatcher[S] = TopicMatcher()
        self._readers: dict[str, dict[S, int]] = {}  # filter -> reader -> qos
        self._dirty: set[str] = set()
        self._on_change = on_change

    def add(self, topic_filter: str, reader: S, qos: int) -> None:
        with self._lock:
            readers = self._readers.setdefault(topic_filter, {})
            readers[reader] = qos
            self.matcher.add(unshared(topic_filter), reader)
            # Always (re)subscribe: a broker sends retained messages only in answer to a
            # SUBSCRIBE (MQTT-3.3.1-6), so a new reader of a known filter needs one too.
            self._dirty.add(topic_filter)
        self._on_change()

    def remove(self, topic_filter: str, reader: S) -> None:
        with self._lock:
            readers = self._readers.get(topic_filter)
            if readers is None or reader not in readers:
                return
            before = max(readers.values())
            del readers[reader]
            self.matcher.remove(unshared(topic_filter), reader)
            if not readers:
                del self._readers[topic_filter]
                self._dirty.add(topic_filter)
            elif max(readers.values()) != before:
                self._dirty.add(topic_filter)
        self._on_change()

    def wanted_qos(self, topic_filter: str) -> int | None:
        readers = self._readers.get(topic_filter)
        return max(readers.values()) if readers else None

    def readers_of(self, topic_filter: str) -> list[S]:
        with self._lock:
            return list(self._readers.get(topic_filter, {}))

    def all_readers(self) -> list[S]:
        with self._lock:
            return [reader for readers in self._readers.values() for reader in readers]

    @property
    def pending(self) -> bool:
        return bool(self._dirty)

    def changes(self) -> list[FilterChange]:
        """What changed since the last call, as broker steps."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            return [FilterChange(f, self.wanted_qos(f)) for f in sorted(dirty)]

    def everything(self) -> list[FilterChange]:
        """Every wanted filter (after a reconnect); also clears the dirty set."""
        with self._lock:
            self._dirty.clear()
            return [FilterChange(f, self.wanted_qos(f)) for f in sorted(self._readers)]
