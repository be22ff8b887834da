"""MaAS tests run against a real checkout when AGENTRACER_MAAS_PATH names one, else against our look-alike."""

import maas_env  # noqa: F401 - puts the chosen ``maas`` package on sys.path before any test imports it
