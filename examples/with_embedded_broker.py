"""Run an example against an in-process amqtt broker.

python examples/with_embedded_broker.py examples/quickstart.py
"""

import os
import runpy
import sys

from taktora_connector.conformance.brokers import EmbeddedBroker

script = (
    sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "quickstart.py")
)
with EmbeddedBroker() as broker:
    os.environ["MQTT_URL"] = broker.url
    print(f"embedded amqtt broker on {broker.url}")
    runpy.run_path(script, run_name="__main__")
