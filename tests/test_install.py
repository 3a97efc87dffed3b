"""How the package installs: the licence in the wheel, the kit's entry points
without the [conformance] extra, and the metadata peers expect."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The kit's dependencies that an install without the [conformance] extra lacks.
EXTRA_ONLY = ("pytest", "_pytest", "py.py", "pytest_bdd", "pytest_bdd-", "amqtt", "amqtt-")


def run_without_the_extra(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python whose site-packages are this venv's minus the kit's
    dependencies: a link per entry, the kit's ones left out, ``.pth`` files honoured."""
    site_dir = tmp_path / "site-packages"
    site_dir.mkdir()
    purelib = Path(sysconfig.get_paths()["purelib"])
    for entry in purelib.iterdir():
        if not entry.name.startswith(EXTRA_ONLY):
            (site_dir / entry.name).symlink_to(entry)
    boot = f"import site, sys; site.addsitedir({str(site_dir)!r})\n"
    return subprocess.run(
        [sys.executable, "-S", "-c", boot + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


def test_conformance_command_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import importlib.util",
        "assert importlib.util.find_spec('pytest') is None",
        "from taktora_connector.conformance.entry import main",
        "raise SystemExit(main(['--help']))",
    )
    done = run_without_the_extra("\n".join(code), tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "pip install 'taktora-connector[conformance]'" in done.stderr
    assert "missing: pytest, pytest-bdd, amqtt" in done.stderr


def test_pytest_entry_point_loads_the_kit_only_with_the_extra(tmp_path: Path) -> None:
    done = run_without_the_extra(
        "import taktora_connector.conformance.entry as entry\nprint(entry.pytest_plugins)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "()"
    from taktora_connector.conformance import entry

    assert entry.pytest_plugins == ("taktora_connector.conformance.plugin",)


def test_the_console_script_is_the_safe_entry() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "taktora-conformance"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--broker-url" in done.stdout


def test_kit_console_shows_no_pytest_configfile(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "taktora-conformance"),
            "-m",
            "TEST_2500",
            "--report-dir",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert "TEST_2500" in done.stdout, done.stderr
    assert "configfile" not in done.stdout + done.stderr
    assert "dev/null" not in done.stdout + done.stderr
