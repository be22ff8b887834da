"""Secrets never reach a trajectory: API keys, Authorization headers and bearer tokens are redacted."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
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
# text through the full redaction. Every match of ``_SECRET_VALUE`` contains a value hint, and every key that
# ``_SECRET_KEY`` matches contains a key hint once lower-cased, so a JSON text without any hint is clean.
_VALUE_HINTS = ("sk-", "bearer", "hf_", "aiza", "gsk_")
_KEY_HINTS = ("api_key", "api-key", "apikey", "authoriz", "secret", "passw", "cookie", "credential", '"token"',
              "access_token", "access-token", "accesstoken", "refresh_token", "refresh-token", "refreshtoken",
              "auth_token", "auth-token", "authtoken")  # not "token" alone: every usage dict has "prompt_tokens"
_HINTS = _VALUE_HINTS + _KEY_HINTS
_SCALARS = frozenset({int, float, bool, type(None)})
_ENV_HINT = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


def fill_missing(found: list[Any], items: Sequence[Any], make: Callable[[Any], Any]) -> None:
    """Replace each None (each falsy entry) in ``found`` by ``make`` of the item at its place: a conversation's
    new messages come last, so the walk starts at the first one missing rather than at the top."""
    if all(found):  # found items are non-empty JSON objects or digests: a miss is the only falsy entry
        return
    start = found.index(None) if None in found else 0
    for i in range(start, len(found)):
        if not found[i]:
            found[i] = make(items[i])


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
    return Redactor(secrets)(obj)


class FrozenJSON(dict):
    """A JSON object its maker promises never to change, e.g. one message of a conversation: a ``Redactor``
    dumps, screens and hashes it once per run however often later requests repeat it (kept by identity)."""

    __slots__ = ()


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
# The C encoder behind ``json.dumps``, built once: ``JSONEncoder.encode`` builds a new one on every call, which
# costs more than encoding one message. Same bytes as ``_ENCODER.encode`` (no circular-reference check).
_C_ENCODER = None if json.encoder.c_make_encoder is None else json.encoder.c_make_encoder(
    None, str, json.encoder.encode_basestring, None, ":", ",", True, False, True)


def _dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, compact separators, unescaped non-ASCII, ``str`` for anything else."""
    if _C_ENCODER is None or isinstance(obj, str):
        return _ENCODER.encode(obj)
    return "".join(_C_ENCODER(obj, 0))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain_key(message: Any) -> tuple[tuple[str, str], ...] | None:
    """A hashable key for a dict whose keys and values are all plain ``str``, else None (equal keys, equal JSON)."""
    if type(message) is not dict or not all(type(k) is str and type(v) is str for k, v in message.items()):
        return None
    return tuple(message.items())


class Redactor:
    """Redaction for one run: environment secrets read once, each distinct string redacted once.

    Model requests repeat the whole conversation on every call; caching by string (and each ``FrozenJSON``
    message by identity) keeps recording linear.
    """

    def __init__(self, secrets: list[str] | None = None, *, cache_limit: int = 20_000) -> None:
        self.secrets = env_secrets() if secrets is None else secrets
        self._cache: dict[str, str] = {}
        self._cache_limit = cache_limit
        self._frozen: dict[int, str] = {}  # id of a FrozenJSON message -> its digest
        self._by_value: dict[tuple[tuple[str, str], ...], str] = {}  # a message of plain strings -> its digest
        self._held: list[FrozenJSON] = []
        self._suspect: set[str] = set()  # digests of messages that may hold a secret
        self._secret_keys: dict[str, bool] = {}
        self._rest_suspect: dict[str, bool] = {}  # a request's fields but its messages, as JSON -> suspect
        # a secret that JSON escapes can't be found in a message's JSON text: then every message is walked
        self._secrets_json_safe = all(_dumps(s)[1:-1] == s for s in self.secrets)

    def _may_hold_secret(self, text: str, hints: tuple[str, ...] = _HINTS) -> bool:
        """The fast screen: False means redaction leaves ``text`` (a string, or JSON text with its keys) as it is."""
        return any(map(text.lower().__contains__, hints)) or any(map(text.__contains__, self.secrets))

    def _is_secret_key(self, key: Any) -> bool:
        if not isinstance(key, str):
            return False
        found = self._secret_keys.get(key)
        if found is None:
            found = self._secret_keys[key] = _SECRET_KEY.search(key) is not None
        return found

    def text(self, value: str) -> str:
        cached = self._cache.get(value)
        if cached is None:
            cached = redact_text(value, self.secrets) if self._may_hold_secret(value, _VALUE_HINTS) else value
            if len(self._cache) < self._cache_limit:
                self._cache[value] = cached
        return cached

    def request(self, obj: Any) -> tuple[Any, str]:
        """A request redacted, with its ``request_hash``; a message seen before in the run costs one lookup."""
        text, suspect = self._hashed_form(obj)
        if suspect:
            obj = self(obj)
            text, _ = self._hashed_form(obj)
        return obj, _sha256(text)[:32]

    def _hashed_form(self, obj: Any) -> tuple[str, bool]:
        """The text ``request_hash`` digests, and whether the request may hold a secret."""
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(messages, list):
            text = _dumps(obj)
            return text, self._may_hold_secret(text)
        rest = _dumps({k: v for k, v in obj.items() if k != "messages"}) if len(obj) > 1 else "{}"
        suspect = self._rest_suspect.get(rest)
        if suspect is None:
            suspect = self._may_hold_secret(rest) or not self._secrets_json_safe
            if len(self._rest_suspect) < self._cache_limit:
                self._rest_suspect[rest] = suspect
        digests = list(map(self._frozen.get, map(id, messages)))  # at C speed: most messages were seen
        fill_missing(digests, messages, self._digest)
        return "\n".join([rest, *digests]), suspect or not self._suspect.isdisjoint(digests)

    def _digest(self, message: Any) -> str:
        """A message's digest, noted as suspect when redaction changes it; kept by identity for a ``FrozenJSON``.

        Its JSON text (which the digest needs anyway) is screened at C speed; only a message that may hold a
        secret is walked value by value. A message of plain strings
        (``{"role": ..., "content": ...}``) is also kept by value: frameworks that rebuild the conversation's
        dicts for every call (CAMEL) repeat equal messages, not the same objects.
        """
        key = _plain_key(message)
        if key is not None:
            digest = self._by_value.get(key)
            if digest is not None:
                return digest
        text = _dumps(message)
        digest = _sha256(text)
        if (not self._secrets_json_safe or self._may_hold_secret(text)) and not self._clean(message):
            self._suspect.add(digest)
        if type(message) is FrozenJSON:
            self._frozen[id(message)] = digest
            self._held.append(message)  # holding the message keeps its id unique
        elif key is not None and len(self._by_value) < self._cache_limit:
            self._by_value[key] = digest
        return digest

    def _clean(self, obj: Any) -> bool:
        """Whether redacting ``obj`` would leave it as it is (without building the redacted copy)."""
        kind = type(obj)
        if kind is str:
            return (self._cache.get(obj) or self.text(obj)) == obj
        if kind in _SCALARS:
            return True
        if isinstance(obj, dict):
            secret_keys = self._secret_keys
            for k, v in obj.items():
                secret = secret_keys.get(k)
                if secret is None:
                    secret = self._is_secret_key(k)
                if (secret and v not in (None, "")) or not self._clean(v):
                    return False
            return True
        if isinstance(obj, list | tuple):
            return all(map(self._clean, obj))
        return self(obj) == obj

    def own(self, obj: Any) -> Any:
        """``obj`` redacted, for a JSON value made for the caller alone (a codec's encoding of one response): when
        its JSON text passes the fast screen it is returned itself, with no walk and no copy."""
        kind = type(obj)
        if (kind is dict or kind is list) and self._secrets_json_safe and not self._may_hold_secret(_dumps(obj)):
            return obj
        return self(obj)

    def __call__(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is str:
            return self._cache.get(obj) or self.text(obj)
        if kind in _SCALARS:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return self._dict(obj)
        if isinstance(obj, list | tuple):
            return [self(v) for v in obj]
        return obj

    def _dict(self, obj: dict[Any, Any]) -> dict[Any, Any]:
        out = {}
        secret_keys, cache = self._secret_keys, self._cache
        for k, v in obj.items():
            secret = secret_keys.get(k)
            if secret is None:
                secret = self._is_secret_key(k)
            kind = type(v)
            if secret and v not in (None, ""):
                out[k] = REDACTED
            elif kind is str:
                out[k] = cache.get(v) or self.text(v)
            elif kind in _SCALARS:
                out[k] = v
            else:
                out[k] = self(v)
        return out


def request_hash(request: dict[str, Any]) -> str:
    """The stable hash of a (redacted) model request: the sha256 of the canonical JSON (sorted keys, compact)
    of its fields but ``messages``, then one line per message with the sha256 of that message's canonical
    JSON, so a conversation re-sent on every call is dumped and hashed once per message, not once per call."""
    return _sha256(Redactor(secrets=[])._hashed_form(request)[0])[:32]
