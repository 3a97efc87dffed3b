"""The README's asyncio example is examples/async_quickstart.py, and it runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from taktora_connector.conformance.brokers import MosquittoBroker

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "async_quickstart.py"


def test_readme_shows_the_async_quickstart_file() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks


def test_async_quickstart_runs_against_mosquitto(mosquitto_broker: MosquittoBroker) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=dict(os.environ, MQTT_URL=mosquitto_broker.url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "plant/hall-b/temperature {'celsius': 19.0}"
