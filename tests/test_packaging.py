"""The wheel holds nothing at its top level but ``taktora_connector`` and its dist-info."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_one_import_root(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "taktora_connector",
        "taktora_connector-0.1.0.dist-info",
    }
    for package in ("domain", "ports", "adapters", "conformance"):
        assert f"taktora_connector/{package}/py.typed" in names
    assert "taktora_connector/adapters/mqtt/gateway.py" in names
    assert "taktora_connector/conformance/steps/common.py" in names
    assert not any(name.startswith("taktora_connector/tests") for name in names)
