"""URLs as they may be shown: without the credentials a user put into them."""

from __future__ import annotations

import base64
import re
import urllib.parse

from .redact import REDACTED

_SECRET_PARAMETER = re.compile(r"(api[_-]?key|apikey|key|access[_-]?token|token|secret|password|passwd|sig|"
                               r"signature|client[_-]?secret)$", re.IGNORECASE)


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` taken out and secret query parameters' values (``?api_key=...``) redacted
    (it goes into names, messages and results files)."""
    parts = urllib.parse.urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    if parts.query:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if any(_SECRET_PARAMETER.match(name) for name, _ in pairs):
            parts = parts._replace(query="&".join(
                f"{name}={REDACTED if _SECRET_PARAMETER.match(name) else value}" for name, value in pairs))
    return urllib.parse.urlunsplit(parts)


def url_secrets(url: str) -> list[str]:
    """What of ``url`` is secret, in every form a server could echo it: its password (as written and decoded: the
    URL's ``p%40ss`` is the password ``p@ss``), or its user when it has no password (``https://TOKEN@host``: a token),
    the Basic credentials made of them (base64), and secret query parameters' values."""
    parts = urllib.parse.urlsplit(url)
    found: list[str] = []
    if parts.password:
        password = urllib.parse.unquote(parts.password)
        found += dict.fromkeys((parts.password, password))
        basic = f"{urllib.parse.unquote(parts.username or '')}:{password}"
        found.append(base64.b64encode(basic.encode("utf-8")).decode("ascii"))
    elif parts.username:
        user = urllib.parse.unquote(parts.username)
        found += dict.fromkeys((parts.username, user))
        found.append(base64.b64encode(f"{user}:".encode()).decode("ascii"))
    found += [value for name, value in urllib.parse.parse_qsl(parts.query) if _SECRET_PARAMETER.match(name) and value]
    return found
