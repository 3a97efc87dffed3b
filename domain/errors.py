"""The connector error model: every failure a caller can see.

Rules of this module:
- every error is a ``ConnectorError`` (an ``Exception``), so callers can match one
  base type, and each kind carries the facts a caller needs as attributes;
- messages say what was wrong and, where there is a rule, what is allowed;
- errors are values: ports return them inside ``returns.result.Failure`` and only
  programmer mistakes are raised.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error a connector reports."""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.args == getattr(other, "args", None)

    def __hash__(self) -> int:
        return hash((type(self), self.args))


class CodecError(ConnectorError):
    """A value did not encode, or bytes did not decode, with the channel's codec.

    ``payload`` holds the raw bytes that failed to decode (``None`` for encode
    failures), so a caller can log or dead-letter them.
    """

    def __init__(self, format: str, cause: str, payload: bytes | None = None) -> None:
        super().__init__(format, cause)
        self.format = format
        self.cause = cause
        self.payload = payload

    def __str__(self) -> str:
        return f"{self.format} codec: {self.cause}"


class BackPressure(ConnectorError):
    """The outbound bridge is full: the message was not accepted; retry later."""

    def __init__(self, capacity: int | None = None) -> None:
        super().__init__(capacity)
        self.capacity = capacity

    def __str__(self) -> str:
        where = f" (capacity {self.capacity})" if self.capacity is not None else ""
        return f"outbound bridge is full{where}: message not accepted, retry later"


class PayloadOverflow(ConnectorError):
    """The encoded payload is larger than the channel's ``max_payload_size``."""

    def __init__(self, actual: int, max: int) -> None:
        super().__init__(actual, max)
        self.actual = actual
        self.max = max

    def __str__(self) -> str:
        return (
            f"encoded payload is {self.actual} bytes; the channel allows at most {self.max} bytes"
        )


class ConfigurationError(ConnectorError, ValueError):
    """An option, descriptor or routing value breaks a rule.

    Also a ``ValueError``, since constructors raise it for invalid arguments.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConnectorDown(ConnectorError):
    """The connector, or the channel used, is closed or gave up connecting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"connector is down: {self.reason}"


class StackError(ConnectorError):
    """The protocol stack underneath reported an error."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause

    def __str__(self) -> str:
        return f"protocol stack error: {self.cause}"


class ConnectorTimeout(ConnectorError):
    """A ``wait``, ``flush`` or ``close`` ran out of time."""

    def __init__(self, operation: str, seconds: float) -> None:
        super().__init__(operation, seconds)
        self.operation = operation
        self.seconds = seconds

    def __str__(self) -> str:
        return f"{self.operation} did not complete within {self.seconds:g} s"
