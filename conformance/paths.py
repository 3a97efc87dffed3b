"""Where the kit's files are, as absolute paths (a consumer's ``bdd_features_base_dir``
must not change them)."""

from pathlib import Path
from typing import Final

import taktora_connector.features as _features

FEATURES_DIR: Final = Path(_features.__file__).resolve().parent
SUITE: Final = Path(__file__).resolve().parent / "suite.py"
DEFAULT_REPORT_DIR: Final = Path("reports") / "conformance"
