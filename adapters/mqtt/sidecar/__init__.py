"""The sidecar: the one thread that owns the broker connection (REQ_0258).

The gateway is its loop (socket, TLS, selector, wake-ups); the data plane moves
PUBLISH and PUBACK bytes; the other modules are the loop's helpers (connecting,
stopping, failing waiters, the unrouted hold, the fork guard). Only the
connector facade (``adapters.mqtt.connector``) imports this package, and only
``gateway`` and ``paho_contact`` import paho (import-linter contracts).
"""
