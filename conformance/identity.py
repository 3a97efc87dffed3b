"""What was tested, and a stable name for every scenario run.

Rules of this module:
- a run is one scenario, or one example row of a scenario outline; its id is
  the scenario's test id when that id names one run only, and the test id with
  ``_1``, ``_2``, ... (in feature-file order) when it names several, so
  ``TEST_2511_3`` means the same row in every report of the same feature files;
- run ids come from the feature files themselves, never from what a run
  selected, so a selection does not renumber them;
- the identity of a run names the factory, the connector's distribution when
  it can be found, the kit's version and a hash of the feature files.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from .paths import FEATURES_DIR
from .registry import TESTS

#: (feature file name, scenario line, example row index or -1)
RunKey = tuple[str, int, int]


def run_ids(features: Iterable[Any] | None = None) -> dict[RunKey, str]:
    """Every run of the kit's feature files, by key, with its unique id."""
    if features is None:
        return dict(_kit_run_ids())
    return _run_ids_of(features)


@functools.cache
def _kit_run_ids() -> dict[RunKey, str]:
    """The kit's own feature files, parsed once per process (the command line and the
    plugin both ask)."""
    from pytest_bdd.feature import get_features

    return _run_ids_of(get_features([str(FEATURES_DIR)]))


def _run_ids_of(features: Iterable[Any]) -> dict[RunKey, str]:
    by_test: dict[str, list[RunKey]] = {}
    ordered = sorted(features, key=lambda f: Path(f.filename).name)
    for feature in ordered:
        name = Path(feature.filename).name
        templates = sorted(feature.scenarios.values(), key=lambda s: s.line_number)
        for template in templates:
            tests = sorted(t for t in template.tags if t in TESTS) or [
                f"{name}:{template.line_number}"
            ]
            rows = sum(len(examples.examples) for examples in template.examples)
            keys = [(name, template.line_number, i) for i in range(rows)] or [
                (name, template.line_number, -1)
            ]
            by_test.setdefault(tests[0], []).extend(keys)
    found: dict[RunKey, str] = {}
    for test, keys in by_test.items():
        if len(keys) == 1:
            found[keys[0]] = test
        else:
            for number, key in enumerate(keys, start=1):
                found[key] = f"{test}_{number}"
    return found


def features_sha256(directory: Path = FEATURES_DIR) -> str:
    """One hash over every feature file's name and bytes, in name order."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.feature")):
        digest.update(path.name.encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def distribution_of(reference: str) -> str:
    """``name version`` of the installed distribution that holds the factory's module."""
    top = reference.partition(":")[0].split(".")[0]
    # Most distributions are named after their module: ask those first, and read
    # every installed distribution's file list (a fifth of a second here) only when
    # that does not find one that ships the module.
    for name in dict.fromkeys((top, top.replace("_", "-"))):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if top in _top_level_names(dist):
            return f"{dist.metadata['Name']} {dist.version}"
    try:
        names = metadata.packages_distributions().get(top, [])
    except Exception:
        names = []
    for name in [*names, top.replace("_", "-")]:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return f"not found (module {top!r} is not part of an installed distribution)"


def _top_level_names(dist: metadata.Distribution) -> set[str]:
    """The import names a distribution ships, as ``packages_distributions`` reads them."""
    declared = (dist.read_text("top_level.txt") or "").split()
    if declared:
        return set(declared)
    return {
        path.parts[0].removesuffix(".py") if len(path.parts) == 1 else path.parts[0]
        for path in dist.files or ()
        if path.parts and not path.parts[0].endswith((".dist-info", ".egg-info"))
    }


def kit_version() -> str:
    try:
        return metadata.version("taktora-connector")
    except metadata.PackageNotFoundError:
        return "unknown"


def identity(reference: str) -> dict[str, str]:
    return {
        "factory": reference,
        "distribution": distribution_of(reference),
        "kit_version": kit_version(),
        "features_sha256": features_sha256(),
    }
