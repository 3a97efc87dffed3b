"""The kit's entry points, safe where the ``[conformance]`` extra is not installed.

Rules of this module:
- it imports nothing outside the standard library, so it loads in any install;
- ``main`` is the ``taktora-conformance`` command: without the extra it says what
  is missing and how to install it (exit status 2), never a traceback;
- as the ``pytest11`` entry point it asks pytest to load the kit's plugin only
  when the extra is installed; otherwise every pytest run in that environment
  would fail importing pytest-bdd.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

#: Import names of the kit's dependencies (the [conformance] extra) and their packages.
NEEDED = {
    "pytest": "pytest",
    "pytest_bdd": "pytest-bdd",
    "amqtt": "amqtt",
    "trustme": "trustme",
    "pwdlib": "pwdlib[argon2]",
}

INSTALL_HINT = "pip install 'taktora-connector[conformance]'"


def missing() -> list[str]:
    """The kit's dependencies that cannot be imported here, by package name."""
    return [package for name, package in NEEDED.items() if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    absent = missing()
    if absent:
        print(
            "taktora-conformance needs the conformance extra, which is not installed here "
            f"(missing: {', '.join(absent)}).\nInstall it with:  {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    from .cli import main as run_kit

    return run_kit(argv)


pytest_plugins: tuple[str, ...] = () if missing() else ("taktora_connector.conformance.plugin",)


if __name__ == "__main__":
    sys.exit(main())
