"""Tracer tests: answers are cached in a per-test folder and no real key is ever in the environment."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("AGENTRACER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    for name in ("OPENAI_API_KEY", "AGENTRACER_API_KEY", "OPENAI_BASE_URL", "AGENTRACER_CACHE"):
        monkeypatch.delenv(name, raising=False)
