"""Where each faulty or fair connector says what the kit must make of it.

A faulty factory is registered where it is defined::

    @breaks("REQ_0250", caught_by="TEST_2505")
    def lazy_with(options, codec): ...

and the kit's own tests read the registry: nothing else lists the factories.

Two runs check each claim:

- the quick one (``make test``) runs the first scenario of ``caught_by`` (the one
  written to catch it) plus one ``control`` scenario of another requirement, with
  the kit's normal patience. The first must fail, the control must pass, and the
  report must FAIL exactly the requirement the fault breaks;
- a fault registered with ``quick=False`` (most of the wire's, ``wire.py``: each is a
  kit process, and ``make test`` has a time budget) skips the quick run;
- the whole kit (``make test-slow``, a CI step of its own) runs every scenario: the
  requirements that FAIL are still exactly those, and the scenarios that fail are
  exactly ``caught_by``, so no other scenario hides or shares the catch, except
  those named in ``may_also_fail``: scenarios whose premise the fault itself makes
  a matter of timing (a connector that reports deliveries early may close before a
  message reached the broker), each with the reason.

A connector that breaks a statement no broker lets through (``@refused``: a CONNECT
with the reserved flag set, a SUBSCRIBE whose filter is not UTF-8) cannot fail one
scenario only: the broker refuses or misreads the connection it needs, so every
scenario on that broker fails, and a whole-kit run mostly waits out timeouts. The
kit is then run selecting by the statement (``-m "MQTT-3.1.2-3"``, its scenarios
only), as a reader of a failed report would rerun it: the protocol profile must FAIL
exactly its statements and the verdict FAIL; which requirements fail with them is
the broker's doing and is not asserted.

A fair factory (``@fair``) is unusual but correct: the quick suite runs the
scenarios of the requirement its oddity touches and the control on it, the whole
kit runs on it in ``make test-slow``, and nothing may FAIL.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: The control scenario of a quick run: a QoS 0 round trip (REQ_0252) ...
CONTROL = "TEST_0130"
#: ... or, for a fault of REQ_0252 itself, the received envelope's routing (REQ_0251).
CONTROL_FOR_0252 = "TEST_2510"


@dataclass(frozen=True)
class Fault:
    """A registered faulty factory and the verdict the kit must reach on it."""

    name: str
    factory: str  # module:callable, as --connector-factory takes it
    requirement: str  # the one requirement (or optional capability) it breaks
    caught_by: tuple[str, ...]  # the scenarios (test ids) it fails, and no other;
    # the first is the one written to catch it
    control: str  # a scenario of another requirement it must pass
    broker: str  # the broker the kit starts for its scenarios
    may_also_fail: tuple[str, ...] = ()  # of the same requirement, by timing only
    #: The MQTT 3.1.1 statements it breaks: exactly those FAIL in the protocol profile.
    statements: tuple[str, ...] = ()
    #: In the quick suite too (``make test``), or in the whole-kit runs only.
    quick: bool = True

    def quick_selection(self) -> str:
        """The ``-m`` expression of the quick run."""
        return f"{self.caught_by[0]} or {self.control}"


@dataclass(frozen=True)
class Refused:
    """A registered faulty factory whose statements the broker refuses or misreads."""

    name: str
    factory: str
    statements: tuple[str, ...]  # exactly those FAIL in the protocol profile
    because: str  # why no broker lets the connection carry on
    broker: str = "amqtt"

    def selection(self) -> str:
        """The ``-m`` expression of its run: the scenarios of its first statement (the
        others are those the kit judges by the same check, in the same scenarios)."""
        return self.statements[0]


@dataclass(frozen=True)
class Fair:
    """A registered fair factory: the kit must pass it whole."""

    name: str
    factory: str
    requirement: str  # the requirement (or optional capability) its oddity touches


FAULTS: dict[str, Fault] = {}
FAIRS: dict[str, Fair] = {}
REFUSED: dict[str, Refused] = {}


def _check_new(name: str) -> None:
    if name in FAULTS or name in FAIRS or name in REFUSED:
        raise ValueError(f"{name!r} is registered twice")


def breaks(
    requirement: str,
    *,
    caught_by: str | tuple[str, ...],
    control: str | None = None,
    broker: str = "amqtt",
    may_also_fail: tuple[str, ...] = (),
    because: str = "",
    statements: tuple[str, ...] = (),
    quick: bool = True,
) -> Callable[[F], F]:
    """Register a faulty factory: the kit must FAIL ``requirement`` and no other, and
    the scenarios that fail must be exactly ``caught_by`` (test ids; an outline's
    rows share theirs), the one written to catch it first."""
    caught = (caught_by,) if isinstance(caught_by, str) else tuple(caught_by)
    if not caught or not all(t.startswith("TEST_") for t in caught):
        raise ValueError(f"caught_by names test ids (TEST_...), got {caught_by!r}")
    if not requirement.startswith(("REQ_", "CAP_")):
        raise ValueError(f"a requirement is REQ_... (or a capability CAP_...); got {requirement!r}")
    if may_also_fail and not because:
        raise ValueError("may_also_fail needs its reason: because=...")
    if set(may_also_fail) & set(caught):
        raise ValueError(f"may_also_fail repeats caught_by: {may_also_fail!r}")

    def register(factory: F) -> F:
        _check_new(factory.__name__)
        chosen = control or (CONTROL_FOR_0252 if requirement == "REQ_0252" else CONTROL)
        if chosen in caught:
            raise ValueError(f"{factory.__name__}: the control {chosen} is a scenario it fails")
        FAULTS[factory.__name__] = Fault(
            name=factory.__name__,
            factory=f"{factory.__module__}:{factory.__name__}",
            requirement=requirement,
            caught_by=caught,
            control=chosen,
            broker=broker,
            may_also_fail=tuple(may_also_fail),
            statements=tuple(statements),
            quick=quick,
        )
        return factory

    return register


def refused(*statements: str, because: str, broker: str = "amqtt") -> Callable[[F], F]:
    """Register a faulty factory that breaks ``statements`` in a way brokers refuse."""
    if not statements or not all(s.startswith("MQTT-") for s in statements):
        raise ValueError(f"refused names MQTT 3.1.1 statements (MQTT-...), got {statements!r}")
    if not because:
        raise ValueError("refused needs its reason: because=...")

    def register(factory: F) -> F:
        _check_new(factory.__name__)
        REFUSED[factory.__name__] = Refused(
            name=factory.__name__,
            factory=f"{factory.__module__}:{factory.__name__}",
            statements=tuple(statements),
            because=because,
            broker=broker,
        )
        return factory

    return register


def fair(requirement: str) -> Callable[[F], F]:
    """Register a fair factory: the whole kit passes it, ``requirement`` included."""

    def register(factory: F) -> F:
        _check_new(factory.__name__)
        FAIRS[factory.__name__] = Fair(
            name=factory.__name__,
            factory=f"{factory.__module__}:{factory.__name__}",
            requirement=requirement,
        )
        return factory

    return register


def load_all() -> tuple[dict[str, Fault], dict[str, Fair]]:
    """Import every module of this package, so that every factory is registered."""
    package = importlib.import_module(__package__ or "tests.faulty")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return FAULTS, FAIRS
