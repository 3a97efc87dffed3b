"""Where amqtt deviates from MQTT 3.1.1 and mosquitto, and how the kit copes.

Every workaround for the in-process broker lives here, each with its reason.
The kit's scenarios then hold for amqtt and mosquitto alike.

- One copy per client: amqtt sends one copy of a message per matching
  subscription; mosquitto (and most brokers) send one per client at the highest
  matching QoS. The broker below does the latter, so overlapping readers are
  tested against the common behaviour.
- Granted QoS: amqtt delivers at the subscription's QoS, whatever the publisher's
  (a QoS 0 message to a QoS 1 subscriber arrives at QoS 1); MQTT-3.8.4-6 delivers at
  the lower of the two. Fixed below: the publisher's QoS travels with the broadcast.
- Retained messages of other clients' subscriptions reach a client at CONNECT:
  the kit starts a fresh broker per scenario (it takes about a millisecond).
- A publish to a ``$`` topic turns the connection into a zombie: the connector
  refuses such publishes before they reach the wire, so nothing to do here.
- Offline QoS 1 queueing works only for persistent sessions that amqtt does not
  call anonymous, and with anonymous access allowed it calls every session
  anonymous (even one with a username); MQTT keeps a persistent session
  whoever the client is. The broker below marks no session anonymous, so a
  persistent session gets its backlog as on mosquitto.
- A resumed persistent session's kept messages come with RETAIN=1: they were
  kept for an established subscription, and MQTT-3.3.1-9 asks for RETAIN=0 (a
  connector that skips retained copies it already had would drop them). The
  broker below sends them with RETAIN=0, as mosquitto does; the kit's broker
  probe (``probes``) reports the flag of any broker it runs on.
- Unacknowledged QoS 1 is not redelivered on reconnect: at-least-once across a
  broker restart is measured against mosquitto, not amqtt.
- It logs warnings about its own PUBACK bookkeeping ("waiter ... already
  done", "unknown pending message") during normal QoS 1 traffic: its loggers
  are set to ERROR so they do not bury real output.
- Its default ``$SYS`` plugin raises a DeprecationWarning: the harness gives an
  explicit plugin map without it.

The override uses amqtt's broker internals; ``pyproject.toml`` pins amqtt to a
range where they exist, and ``tests/test_brokers.py`` fails loudly if they move.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

#: The QoS of the PUBLISH being handled (each client's handler runs in its own task).
_PUBLISHED_QOS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "taktora_published_qos", default=None
)


def quiet_logs() -> None:
    """Keep amqtt's routine warnings out of the kit's output."""
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)


def patched_broker_class() -> type[Any]:
    """amqtt's ``Broker`` with one copy per client at the granted QoS, and
    persistent sessions kept for every client."""
    from amqtt.broker import Broker
    from amqtt.contexts import Action

    class OneCopyBroker(Broker):  # type: ignore[misc]
        async def _authenticate(self, session: Any, listener: Any) -> bool:
            allowed: bool = await super()._authenticate(session, listener)
            session.is_anonymous = False  # persistent sessions keep their messages
            return allowed

        async def _handle_message_delivery(
            self, client_session: Any, handler: Any, wait_deliver: Any
        ) -> bool:
            message = wait_deliver.result()
            token = _PUBLISHED_QOS.set(getattr(message, "qos", None))
            try:
                delivered: bool = await super()._handle_message_delivery(
                    client_session, handler, wait_deliver
                )
                return delivered
            finally:
                _PUBLISHED_QOS.reset(token)

        async def _broadcast_message(
            self, session: Any, topic: Any, data: Any, force_qos: int | None = None
        ) -> None:
            if force_qos is None:
                force_qos = _PUBLISHED_QOS.get()  # a client's PUBLISH: its own QoS
            await super()._broadcast_message(session, topic, data, force_qos)

        async def _publish_session_retained_messages(self, session: Any) -> None:
            # What was kept for a disconnected persistent session, in order, RETAIN=0
            # (MQTT-3.3.1-9: it matches an established subscription).
            # Sent at once, each on its own task, as amqtt does (its PUBACKs are awaited
            # together, so a client that acknowledges late holds none of the others).
            handler = self._get_handler(session)
            if handler is None:
                return
            sending = []
            while not session.retained_messages.empty():
                kept = await session.retained_messages.get()
                publish = handler.mqtt_publish(kept.topic, kept.data, kept.qos, retain=False)
                sending.append(asyncio.ensure_future(publish))
            if sending:
                await asyncio.wait(sending)

        async def _run_broadcast(self, running_tasks: Any) -> None:
            broadcast = await self._broadcast_queue.get()
            topic: str = broadcast["topic"]
            # client id -> (session, highest QoS among its matching subscriptions)
            targets: dict[str, tuple[Any, int]] = {}
            for topic_filter, subscriptions in self._subscriptions.items():
                if not self._matches(topic, topic_filter):
                    continue
                for session, granted in subscriptions:
                    known = targets.get(session.client_id)
                    if known is None or granted > known[1]:
                        targets[session.client_id] = (session, granted)
            for session, granted in targets.values():
                qos = min(broadcast.get("qos", granted), granted)
                allowed = await self._topic_filtering(session, topic=topic, action=Action.RECEIVE)
                if not allowed:
                    continue
                if session.transitions.state != "connected":
                    if not session.clean_session and qos > 0 and not session.is_anonymous:
                        await self._retain_broadcast_message(broadcast, qos, session)
                    continue
                handler = self._get_handler(session)
                if handler is not None:
                    running_tasks.append(
                        asyncio.ensure_future(
                            handler.mqtt_publish(topic, broadcast["data"], qos, retain=False)
                        )
                    )

    return OneCopyBroker
