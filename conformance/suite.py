"""The kit's scenarios as pytest tests.

pytest-bdd binds scenarios in the module that calls ``scenarios()``, so this is
a module for pytest to collect: ``taktora-conformance`` runs it, and a third
party's own test module can bind the same scenarios with

    from taktora_connector.conformance.suite import *  # noqa: F403
"""

from pytest_bdd import scenarios

from taktora_connector.conformance.paths import FEATURES_DIR

scenarios(str(FEATURES_DIR))
