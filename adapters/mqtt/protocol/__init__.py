"""The MQTT 3.1.1 protocol, pure: bytes and packets, the session's state table,
packet identifiers, the SUBSCRIBE handshake's books, keep-alive and backoff rules.

Nothing here opens a socket, starts a thread, reads a clock or imports paho (an
import-linter contract keeps it so): time is passed in, and every rule is tested
without a network. The kit's proxy reuses the codec (``packets``).
"""
