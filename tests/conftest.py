"""Shared test settings: no test reads a real key or writes outside tmp paths."""

import os

os.environ.setdefault("AGENTRACER_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest-cache-agentracer"))
