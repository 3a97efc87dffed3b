"""Timeouts as callers give them, made safe for the waits underneath.

Rules of this module:
- ``None`` and ``math.inf`` mean no deadline; a finite number of seconds >= 0 is
  a deadline; anything else (NaN, a negative, not a number) is a
  ``ConfigurationError`` returned, never raised, so that every public wait can
  answer ``Failure(ConfigurationError)``;
- a finite timeout beyond what the platform's waits accept
  (``threading.TIMEOUT_MAX``) is no deadline too: nobody lives that long.
"""

from __future__ import annotations

import math
import threading

from taktora_connector.domain import ConfigurationError

_FAST_MAX = float(threading.TIMEOUT_MAX)


def wait_seconds(timeout: object, what: str = "timeout") -> float | ConfigurationError | None:
    """``None`` (wait forever), seconds to wait, or the error for a bad value."""
    if timeout is None:
        return None
    if type(timeout) is float and 0.0 <= timeout < _FAST_MAX:  # the common case, cheaply
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        return ConfigurationError(f"{what} must be a number of seconds or None, got {timeout!r}")
    if isinstance(timeout, int) and timeout >= threading.TIMEOUT_MAX:
        return None  # also ints too large for a float
    seconds = float(timeout) if not isinstance(timeout, int) or timeout > -(2**53) else -1.0
    if math.isnan(seconds) or seconds < 0:
        return ConfigurationError(
            f"{what} must be >= 0 seconds, math.inf or None (no deadline), got {timeout!r}"
        )
    if seconds >= threading.TIMEOUT_MAX:
        return None
    return seconds


def shown(timeout: float | None) -> float:
    """A timeout as reported in ``ConnectorTimeout`` (inf for no deadline)."""
    return math.inf if timeout is None else timeout
