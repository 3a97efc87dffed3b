"""The README's example is examples/quickstart.py, and it runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from taktora_connector.conformance.brokers import MosquittoBroker

ROOT = Path(__file__).resolve().parent.parent


def test_readme_example_is_the_quickstart_file() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks[0] == (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")


def test_quickstart_runs_against_mosquitto(mosquitto_broker: MosquittoBroker) -> None:
    env = dict(os.environ, MQTT_URL=mosquitto_broker.url)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "plant/hall-a/temperature {'celsius': 21.5}"
