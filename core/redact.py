"""Secrets never reach a trajectory: API keys, Authorization headers and bearer tokens are redacted."""

from __future__ import annotations

import json
import os
import re
import uuid
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
# Fast screens (plain substring search runs at C speed; Python's regex alternation does not): a hit sends the
# text through the full regex redaction.
_VALUE_HINTS = ("sk-", "bearer", "hf_", "aiza", "gsk_")
_KEY_HINTS = ("api_key", "api-key", "apikey", "authoriz", "secret", "passw", "token\"", "cookie", "credential")
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


class FrozenJSON(dict):
    """A JSON object its maker promises never to change, e.g. one message of a conversation: a ``Redactor``
    dumps and screens it once per run however often later requests repeat it (kept by identity)."""

    __slots__ = ()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class Redactor:
    """Redaction for one run: environment secrets read once, each distinct string redacted once.

    Model requests repeat the whole conversation on every call; caching by string keeps recording linear.
    """

    def __init__(self, secrets: list[str] | None = None, *, cache_limit: int = 20_000) -> None:
        self.secrets = env_secrets() if secrets is None else secrets
        self._cache: dict[str, str] = {}
        self._cache_limit = cache_limit
        self._frozen: dict[int, tuple[FrozenJSON, str, bool]] = {}
        self._slot = uuid.uuid4().hex  # stands for the messages while the rest of a request is dumped

    def _may_hold_secret(self, text: str) -> bool:
        low = text.lower()
        return (any(h in low for h in _VALUE_HINTS) or any(h in low for h in _KEY_HINTS)
                or any(s in text for s in self.secrets))

    def text(self, value: str) -> str:
        cached = self._cache.get(value)
        if cached is None:
            cached = redact_text(value, self.secrets) if self._may_hold_secret(value) else value
            if len(self._cache) < self._cache_limit:
                self._cache[value] = cached
        return cached

    def request(self, obj: Any) -> tuple[Any, str]:
        """A request redacted, with its canonical JSON: one scan of the JSON text when nothing is secret."""
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if isinstance(messages, list) and messages and all(type(m) is FrozenJSON for m in messages):
            parts = [self._frozen_part(m) for m in messages]
            rest = _dumps({**obj, "messages": self._slot})
            text = rest.replace(f'"{self._slot}"', "[" + ",".join(p[0] for p in parts) + "]", 1)
            suspect = any(p[1] for p in parts) or self._may_hold_secret(rest)
        else:
            text = _dumps(obj)
            suspect = self._may_hold_secret(text)
        if suspect:
            obj = self(obj)
            text = _dumps(obj)
        return obj, text

    def _frozen_part(self, message: FrozenJSON) -> tuple[str, bool]:
        found = self._frozen.get(id(message))
        if found is None or found[0] is not message:
            text = _dumps(message)
            found = (message, text, self._may_hold_secret(text))  # holding the message keeps its id unique
            self._frozen[id(message)] = found
        return found[1], found[2]

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {
                k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "") else self(v))
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self(v) for v in obj]
        return obj
