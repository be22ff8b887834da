"""An on-disk cache of model answers, keyed by a hash of the request, so a re-run of an evaluation is free.

One JSON file per answer under ``<dir>/<hash[:2]>/<hash>.json``, written atomically (temp file + rename),
so concurrent writers and an interrupted run never leave a torn entry. The directory is ``cache_dir``
when given, else ``$AGENTRACER_CACHE_DIR``, else ``~/.cache/agentracer``; ``AGENTRACER_CACHE=off``
turns caching off. Keys never include credentials: callers hash only the request body and the endpoint; what is
stored is redacted as everything agentracer writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..redact import Redactor, env_secrets

CACHE_ENV = "AGENTRACER_CACHE_DIR"
CACHE_SWITCH_ENV = "AGENTRACER_CACHE"


def default_cache_dir() -> Path:
    """Where answers are cached unless a directory is given."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "agentracer"


def cache_disabled_by_env() -> bool:
    """Whether ``AGENTRACER_CACHE`` switches caching off (``off``, ``0``, ``false``, ``no``)."""
    return os.environ.get(CACHE_SWITCH_ENV, "").strip().lower() in {"off", "0", "false", "no"}


def request_key(payload: Any) -> str:
    """A stable sha256 hex digest of a JSON-able request (sorted keys, compact)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _redacted(entry: dict[str, Any], secrets: list[str] | None = None) -> dict[str, Any]:
    """A cache entry redacted as every record is (key-shaped values, fields named like secrets, this environment's
    keys, and ``secrets``), but for the logprobs of a raw reply, whose ``token`` fields are words: those are redacted
    by value only."""
    redactor = Redactor() if secrets is None else Redactor(secrets=[*secrets, *env_secrets()])
    clean = redactor(entry)
    raw, kept = entry.get("raw"), clean.get("raw")
    choices = raw.get("choices") if isinstance(raw, dict) else None
    if isinstance(choices, list) and isinstance(kept, dict):
        for choice, clean_choice in zip(choices, kept.get("choices") or [], strict=False):
            if isinstance(choice, dict) and isinstance(clean_choice, dict) and "logprobs" in choice:
                clean_choice["logprobs"] = redactor.own_values(choice["logprobs"])
    return clean


def redacted_answer(payload: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """A model's raw answer as the cache keeps it (see ``_redacted``), with an endpoint's own ``secrets`` (its key,
    its URL's password) among those taken out: an answer reads the same live and from the cache."""
    redactor = Redactor(secrets=[*secrets, *env_secrets()])
    if not redactor.may_hold_secret(json.dumps(payload, ensure_ascii=False, default=str)):
        return payload
    return _redacted({"raw": payload}, secrets)["raw"]


class ResponseCache:
    """Answers stored by request key. ``get`` returns ``None`` on a miss or an unreadable entry."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, namespace: str = "chat") -> None:
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        self.root = self.directory / namespace
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.misses += 1
            return None
        if not isinstance(entry, dict):
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Store ``entry`` atomically, secrets redacted (an answer, or a server's raw reply, may quote the key it was
        sent); a cache that cannot be written is skipped, never fatal."""
        entry = _redacted(entry)
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, ensure_ascii=False)
            os.replace(tmp, path)
        except OSError:
            return

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.exists() else 0
