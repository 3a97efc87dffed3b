"""Step definitions of the conformance kit, one module per feature file.

``shared`` holds the per-scenario world fixture and helpers, ``common`` the
steps several feature files use; every other module is named after the feature
file whose steps it defines (``features/qos.feature`` -> ``steps/qos.py``).

Rules of this package:
- steps drive connectors only through the ports and the public MQTT values
  (``MqttRouting``, ``MqttConnectorOptions``, ``Credentials``, ``TlsOptions``)
  via the scenario's ``World``; they never reach into a connector;
- what happens on the network is read from each connector's ``FaultProxy``,
  so the same checks hold for any connector and any broker;
- each check is exactly as strict as docs/connector-contract.md, never stricter;
- steps are fixtures of the kit's pytest plugin (every module below is loaded
  as a plugin through ``pytest_plugins``), so a third party's run finds them
  and may override one by defining a step with the same text.
"""

pytest_plugins = tuple(
    f"taktora_connector.conformance.steps.{name}"
    for name in (
        "shared",
        "common",
        "auth",
        "backpressure",
        "bridges",
        "client_statements",
        "connector_port",
        "hostile_broker",
        "inbound_drops",
        "protocol",
        "qos",
        "retained",
        "routing",
        "shared_subscriptions",
        "sidecar",
        "tls",
        "wildcards",
    )
)
