"""Reconnect backoff: exponential growth with jitter, between two bounds.

Pure arithmetic on an injected random source, so it is testable without time.
The delay before attempt ``n`` (1-based, counting failures so far) is
``initial * growth**(n-1)``, capped at ``maximum``, then spread by +/- jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

GROWTH: Final = 2.0
JITTER: Final = 0.1


@dataclass(frozen=True)
class Backoff:
    initial: float
    maximum: float
    growth: float = GROWTH
    jitter: float = JITTER
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failed attempts (>= 1)."""
        exponent = max(failures - 1, 0)
        # Cap the exponent so huge failure counts cannot overflow the float.
        base = min(self.initial * self.growth ** min(exponent, 64), self.maximum)
        spread = base * self.jitter
        return max(0.0, min(self.maximum, base + self.rng.uniform(-spread, spread)))
