"""Secrets never reach a trajectory: API keys, Authorization headers and bearer tokens are redacted."""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"(api[_-]?key|authorization|secret|password|passwd|access[_-]?token|refresh[_-]?token|auth[_-]?token|"
    r"^token$|x-api-key|cookie|credential)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{12,}|sk-ant-[A-Za-z0-9_\-]{12,}|Bearer\s+[A-Za-z0-9._\-~+/=]{8,}|"
    r"hf_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_\-]{20,}|gsk_[A-Za-z0-9]{16,})"
)
_ENV_HINT = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


def env_secrets() -> list[str]:
    return [v for k, v in os.environ.items() if _ENV_HINT.search(k) and v and len(v) >= 8]


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """Replace secret-looking substrings (and values of *_KEY/*_TOKEN environment variables)."""
    text = _SECRET_VALUE.sub(REDACTED, text)
    for secret in secrets if secrets is not None else env_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a JSON-like object with secret keys' values and secret-looking strings redacted."""
    if secrets is None:
        secrets = env_secrets()
    if isinstance(obj, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "") else redact(v, secrets))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    return obj
