"""The wheel: nothing at its top level but ``taktora_connector`` and its dist-info;
the licence and the metadata of a package like its peers."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once for the tests of this module."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("*.whl")
    return built


def test_wheel_has_one_import_root(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "taktora_connector",
        "taktora_connector-0.1.0.dist-info",
    }
    for package in ("domain", "ports", "adapters", "conformance"):
        assert f"taktora_connector/{package}/py.typed" in names
    assert "taktora_connector/adapters/mqtt/sidecar/gateway.py" in names
    assert "taktora_connector/conformance/steps/common.py" in names
    assert not any(name.startswith("taktora_connector/tests") for name in names)


def test_wheel_carries_the_licence_and_the_metadata(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    licence = archive.read("taktora_connector-0.1.0.dist-info/licenses/LICENSE").decode()
    assert licence == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    metadata = Parser().parsestr(
        archive.read("taktora_connector-0.1.0.dist-info/METADATA").decode()
    )
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["License-File"] == "LICENSE"
    classifiers = metadata.get_all("Classifier") or []
    assert "Framework :: Pytest" in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    extras = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("pytest-timeout") and 'extra == "conformance"' in r for r in extras)
    entry_points = archive.read("taktora_connector-0.1.0.dist-info/entry_points.txt").decode()
    assert "taktora-conformance = taktora_connector.conformance.entry:main" in entry_points
    assert "taktora_conformance = taktora_connector.conformance.entry" in entry_points
