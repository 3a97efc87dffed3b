"""Connector health: the four states, their events and the one transition table.

Rules of this module (after h11's ``_state.py``):
- everything that decides whether a health change is legal lives here, in
  ``LEGAL_TRANSITIONS``: the nine edges of ARCH_0012, and nothing else;
- this module keeps no state and knows nothing of threads or subscribers: it
  validates one step and describes it as a ``HealthEvent``; adapters own the
  current state and the broadcast;
- a step between two states of the same kind is illegal, whatever the reasons.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class HealthKind(enum.Enum):
    """The kind of a health state, without its details."""

    CONNECTING = "connecting"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Up:
    """Connected and working normally."""

    @property
    def kind(self) -> HealthKind:
        return HealthKind.UP


@dataclass(frozen=True, slots=True)
class Connecting:
    """Establishing (or re-establishing) the connection since ``since`` (monotonic ns)."""

    since: int

    @property
    def kind(self) -> HealthKind:
        return HealthKind.CONNECTING


@dataclass(frozen=True, slots=True)
class Degraded:
    """Working, but something needs attention; ``reason`` says what."""

    reason: str

    @property
    def kind(self) -> HealthKind:
        return HealthKind.DEGRADED


@dataclass(frozen=True, slots=True)
class Down:
    """Not working since ``since`` (monotonic ns); ``reason`` says why."""

    reason: str
    since: int

    @property
    def kind(self) -> HealthKind:
        return HealthKind.DOWN


ConnectorHealth = Up | Connecting | Degraded | Down

_C, _U, _G, _D = HealthKind.CONNECTING, HealthKind.UP, HealthKind.DEGRADED, HealthKind.DOWN

#: The nine legal edges of ARCH_0012. Every other ordered pair is illegal.
LEGAL_TRANSITIONS: Final[frozenset[tuple[HealthKind, HealthKind]]] = frozenset(
    {
        (_C, _U),
        (_C, _G),
        (_C, _D),
        (_U, _G),
        (_U, _D),
        (_G, _U),
        (_G, _C),
        (_G, _D),
        (_D, _C),
    }
)


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """One health transition, stamped with a monotonic clock (ns)."""

    from_: ConnectorHealth
    to: ConnectorHealth
    at: int


class IllegalTransition(Exception):
    """A health step that is not one of the nine legal edges."""

    def __init__(self, from_: HealthKind, to: HealthKind) -> None:
        super().__init__(from_, to)
        self.from_ = from_
        self.to = to

    def __str__(self) -> str:
        allowed = sorted(t.value for f, t in LEGAL_TRANSITIONS if f is self.from_)
        return (
            f"illegal health transition {self.from_.value} -> {self.to.value}; "
            f"from {self.from_.value} the legal targets are {', '.join(allowed)}"
        )


def is_legal(from_: HealthKind, to: HealthKind) -> bool:
    """Whether ``from_ -> to`` is one of the nine legal edges."""
    return (from_, to) in LEGAL_TRANSITIONS


def transition(current: ConnectorHealth, target: ConnectorHealth, at: int) -> HealthEvent:
    """Validate one step and describe it; raise ``IllegalTransition`` if it is not legal."""
    if not is_legal(current.kind, target.kind):
        raise IllegalTransition(current.kind, target.kind)
    return HealthEvent(from_=current, to=target, at=at)
