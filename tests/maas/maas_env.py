"""Which MaAS the tests use: a real checkout when AGENTRACER_MAAS_PATH names one, else our look-alike."""

import os
import sys
from pathlib import Path

LOOKALIKE = Path(__file__).parent / "lookalike"
MAAS_PATH = os.environ.get("AGENTRACER_MAAS_PATH") or str(LOOKALIKE)
REAL_CHECKOUT = MAAS_PATH != str(LOOKALIKE)
if MAAS_PATH not in sys.path:
    sys.path.insert(0, MAAS_PATH)
