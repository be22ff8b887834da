"""Secrets never reach a trajectory: API keys, Authorization headers and bearer tokens are redacted."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

REDACTED = "[REDACTED]"
# A key whose value is a secret, read as words (split at _ - . and spaces and at camelCase: userPassword is
# user, password): a secret word as its last word (db_password, userPassword, apiSecret; not password_policy,
# secret_santa, cookie_recipe), or two words that name a credential anywhere in it (my_api_key_old, access_token_v2,
# AWS_ACCESS_KEY_ID; not valid_tokens, eos_token), or the key "token" itself; and an environment variable's name, in
# capitals, ending in a token's or a password's word (GITHUB_TOKEN, GITHUB_PAT, DB_PASS, MYSQL_PWD, PGPASSWORD; not
# CACHE_KEY, S3_KEY: a key is many things; not PAD_TOKEN or MAX_TOKEN).
_LAST_WORDS = frozenset({"secret", "password", "passwd", "passphrase", "passcode", "cookie", "credential",
                         "credentials", "authorization", "apikey"})
_PAIRS = frozenset({("api", "key"), ("api", "token"), ("access", "token"), ("refresh", "token"), ("auth", "token"),
                    ("oauth", "token"), ("bearer", "token"), ("id", "token"), ("session", "token"), ("csrf", "token"),
                    ("jwt", "token"), ("private", "key"), ("client", "secret"), ("secret", "key"),
                    ("access", "key")})
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_ENV_NAME = re.compile(r"(?![A-Z0-9_]*(?:^|_)(?:PAD|EOS|BOS|UNK|SEP|CLS|MASK|MAX|MIN|NUM|N)_)"
                       r"[A-Z0-9_]*(?:_(?:TOKEN|PAT|PASS|PWD)|PASSWORD|PASSWD)")  # (matched whole)


def is_secret_key(key: str) -> bool:
    """Whether a field of this name holds a secret (see ``_LAST_WORDS`` and ``_PAIRS``)."""
    words = [w.lower() for w in _WORD.findall(key)]
    if not words:
        return False
    if words[-1] in _LAST_WORDS or words == ["token"] or _ENV_NAME.fullmatch(key):
        return True
    return any(pair in _PAIRS for pair in zip(words, words[1:], strict=False))


_TOKEN = r"[A-Za-z0-9._\-~+/=]"
_SECRET_VALUE = re.compile(  # a key starts a word: "Mask-RCNN-Object_Detection" holds no "sk-" key
    r"(?<![A-Za-z0-9])(sk-[A-Za-z0-9_\-]{12,}|sk-ant-[A-Za-z0-9_\-]{12,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|"
    r"hf_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_\-]{20,}|"
    r"gsk_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}|(?:AKIA|ASIA)[0-9A-Z]{16}|"
    r"xox[abprse]-[A-Za-z0-9\-]{10,}|"
    # a webhook URL's secret path (the URL is the credential: whoever has it posts to the channel)
    r"(?<=hooks\.slack\.com/services/)[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]{16,}|"
    r"(?<=/api/webhooks/)[0-9]{6,}/[A-Za-z0-9_\-]{20,}|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}|"
    # a bearer token: a run of token characters with a digit or a sign inside it (not a full stop ending a
    # sentence: "a bearer instrument."), or a long one (prose has "Bearer bonds")
    rf"(?i:bearer)\s+(?:(?=[A-Za-z]*(?:[0-9_\-~+/=]|\.[A-Za-z0-9])){_TOKEN}{{8,}}|[A-Za-z]{{16,}}{_TOKEN}*)|"
    # an Authorization header written out with its scheme ("authorization = make_header()" is code, not a header)
    rf"(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?i:bearer|basic|token|digest)\s+{_TOKEN}{{6,}})"
)
# https://user:password@host (not a template's ://{user}:{password}@host)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/:@\"'<>{}$]+:[^\s/@\"'<>{}$]+(?=@)")
# a secret-named key written out in text, then its value: ``DB_PASSWORD=s3cr3t-pass1``, ``"api_key": "a1b2c3d4e5"``
# (a tool's output, a config file read back); the key must name a secret (``_text_secret_key``), and the value must end
# there and look like one (see ``_keyed_secret_at``): not "password: required", "api_key={API_KEY}", "token = get_token()".
# The value is looked at, not taken: a value may hold another key and value (``x=DB_PASSWORD=...``), found next.
_KEYED_SECRET = re.compile(r"(?P<key>(?:(?<![A-Za-z0-9_.\-\\])|(?<=\\[nrt])|(?<=--)|(?<=\s-)|(?<=^-))[A-Za-z][A-Za-z0-9_.\-]*)"
                           r"(?P<sep>\\?[\"']?\]?[ \t]*(?::=|=>|[:=])[ \t]*\\?[\"']?)"
                           r"(?=(?P<value>[^\s\"'`&,;(){}\[\]<>\\]{8,128})(?:[\s\"'`&,;\\]|$))")  # (bounded: linear)
# a command line's long option naming a secret, then a space and its value: ``mysql --password S3cr3t-2024``,
# ``gh auth login --token ghx0123456789``, ``--api-key "..."`` (``--password=...`` is ``_KEYED_SECRET``'s)
_FLAG_SECRET = re.compile(r"(?<![^\s\"'`])--(?P<key>[A-Za-z][A-Za-z0-9_\-]*)[ \t]+[\"']?"
                          r"(?=(?P<value>[^\s\"'`&,;(){}\[\]<>\\|$]{8,128})(?:[\s\"'`&,;\\|)]|$))")
# a secret-named element of XML or HTML around its value: ``<password>s3cr3t-pass1</password>`` (a config file a tool
# read back); as for ``_KEYED_SECRET``, the key must name a secret and the value look like one
_TAG_SECRET = re.compile(r"<(?P<key>[A-Za-z][A-Za-z0-9_.\-]{0,60})>[ \t]*(?P<value>[^\s<>\"'`]{8,128})[ \t]*</(?P=key)>")
_DIGIT = re.compile(r"\d")
_PLACEHOLDER = re.compile(r"[A-Z_]+|.*(?:YOUR|[Yy]our).*")  # YOUR_GOOGLE_MAPS_API_KEY, your-token-here: not a value
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")  # self.password, settings.api_key: code, not a value
# a variable's name (api_key_from_config_2, CLIENT_SECRET_2: words and a short number; not tok_a1b2c3d4, shpat_0123...),
# a file's path (/home/user/key.json) or a URL (a URL's credentials have their own pattern)
_NAME_OR_PATH = re.compile(r"[a-z]+(?:_(?:[a-z]+|[0-9]{1,2}))+|[A-Z]+(?:_(?:[A-Z]+|[0-9]{1,2}))+|"
                           r"[~.]?/(?:home|etc|usr|var|tmp|opt|mnt|srv|root|Users|data|app)/.*|.*/[\w\-]+\.[A-Za-z]{1,5}|"
                           r"[A-Za-z][\w+.\-]*://.*")
# a secret key's words, lower-cased (not a cookie's: a browsing agent's header dumps are full of tracking cookies)
_KEY_WORDS = ("key", "token", "ecret", "assw", "assphrase", "asscode", "redential", "uthorization", "_pat", "_pass",
              "_pwd")
_TEXT_LAST_WORDS = _LAST_WORDS - {"cookie"}  # a key's last words that name a secret where it is written in text
_QUERY_SECRET = re.compile(  # ?api_key=... &token=...: the name stays, its value goes
    r"(?i)([?&;](?:api[_-]?key|apikey|key|access[_-]?token|token|secret|password|passwd|sig|signature|"
    r"client[_-]?secret)=)(?=[A-Za-z0-9._\-~+/=%]*\d)[A-Za-z0-9._\-~+/=%]{8,}")  # (a value like a key: not {API_KEY}, not 1)
# Fast screens (plain substring search runs at C speed; Python's regex alternation does not): a hit sends the
# text through the full redaction. Every match of the value patterns contains a value hint, and every key that
# ``is_secret_key`` accepts contains a key hint once lower-cased, so a JSON text without any hint is clean. Each
# substring search scans the whole text: strings are screened once per distinct value, with the value hints alone;
# the key hints are for JSON texts of a request's own fields.
_VALUE_HINTS = ("sk-", "k_live_", "k_test_", "Bearer", "bearer", "BEARER", "hf_", "AIza", "gsk_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
                "github_pat_", "AKIA", "ASIA", "xox", "eyJ", "uthorization", "UTHORIZATION", "hooks.slack.com/",
                "/api/webhooks/")
# (a URL's credentials and a secret query parameter are screened by their own patterns, run only on a text with
# "://" or "=" in it: hints as broad as those would send every request that mentions a URL down the slow path)
_KEY_HINTS = tuple(sorted({f'{word}"' for word in _LAST_WORDS} | {'"token"', '_token"', '_pat"', '_pass"', '_pwd"'}
                          | {f"{a}{sep}{b}" for a, b in _PAIRS for sep in ("_", "-", "", " ", ".")}))
# (a key's words lower-cased, as they stand in a JSON text: "userPassword" holds 'password"', "AWS_ACCESS_KEY_ID"
# holds "access_key"; not "token" alone: every usage dict has "prompt_tokens")
_HINTS = tuple(h.lower() for h in _VALUE_HINTS) + _KEY_HINTS  # for lower-cased JSON texts
_SCALARS = frozenset({int, float, bool, type(None)})
_KNOWN_BEGINNINGS = 32  # first messages (with a request's other fields) whose conversations a run keeps hashing
_CONVERSATIONS_PER_BEGINNING = 8  # conversations kept per first message: a team's agents, one each
_ENV_HINT = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PAT|AUTH)$", re.IGNORECASE)  # (not *_CREDENTIALS: a path)


def fill_missing(found: list[Any], items: Sequence[Any], make: Callable[[Any], Any]) -> None:
    """Replace each None (each falsy entry) in ``found`` by ``make`` of the item at its place: a conversation's
    new messages come last, so the walk starts at the first one missing rather than at the top."""
    if all(found):  # found items are non-empty JSON objects or digests: a miss is the only falsy entry
        return
    start = found.index(None) if None in found else 0
    for i in range(start, len(found)):
        if not found[i]:
            found[i] = make(items[i])


_env_read: tuple[dict[Any, Any], list[str]] | None = None  # the environment as last read, and its secrets


def env_secrets() -> list[str]:
    """Values of environment variables named like secrets (``*_KEY``, ``*_TOKEN``, ...), at least 8 long.

    Read again only when the environment changed since the last read (each run's redactor asks, and reading
    ``os.environ`` decodes every variable in Python)."""
    global _env_read
    raw = getattr(os.environ, "_data", None)  # CPython's encoded copy, updated in place by os.environ's setters
    snapshot = raw.copy() if type(raw) is dict else None
    if snapshot is not None and _env_read is not None and _env_read[0] == snapshot:
        return list(_env_read[1])
    secrets = [v for k, v in os.environ.items() if _ENV_HINT.search(k) and v and len(v) >= 8]
    if snapshot is not None:
        _env_read = (snapshot, secrets)
    return list(secrets)


_UNDERSCORE_HINTS = tuple(h for h in _VALUE_HINTS if "_" in h)  # screened only in a text with a "_" in it
_DASH_HINTS = tuple(h for h in _VALUE_HINTS if "-" in h and "_" not in h) + ("xox",)  # (xoxb-...) with a "-"
_OTHER_HINTS = tuple(h for h in _VALUE_HINTS if h not in _UNDERSCORE_HINTS + _DASH_HINTS)


def _value_suspect(text: str) -> bool:
    """The fast screen of a string: False means redaction leaves it as it is (the value hints, searched in groups
    that a cheap test of one character rules out for most texts)."""
    return (("_" in text and holds_any(text, _UNDERSCORE_HINTS)) or ("-" in text and holds_any(text, _DASH_HINTS))
            or holds_any(text, _OTHER_HINTS) or _url_or_query_secret(text) or _keyed_suspect(text))


def _url_or_query_secret(text: str) -> bool:
    """Whether ``text`` holds a URL's ``user:password`` or a secret query parameter."""
    return ("://" in text and _URL_CREDENTIALS.search(text) is not None) or (
        "=" in text and _QUERY_SECRET.search(text) is not None)


def _keyed_suspect(text: str) -> bool:
    """Whether ``text`` writes out a secret-named key with a value (``_KEYED_SECRET``; only where a key's word stands
    shortly before a ":" or "=", ``_key_before_separator``, is the pattern run) or a secret-named long option with
    one (``_FLAG_SECRET``, looked for only in a text with "--" in it)."""
    return (_key_before_separator(text) and any(map(_keyed_secret_at, _KEYED_SECRET.finditer(text)))) or (
        "--" in text and any(map(_flag_secret_at, _FLAG_SECRET.finditer(text)))) or (
        "</" in text and any(map(_keyed_secret_at, _TAG_SECRET.finditer(text))))


_KEY_REACH = 40  # how far before its ":" or "=" the end of a key may be (quotes, a bracket and spaces between)
_FEW_SEPARATORS = 8  # up to this many of each, the text before each is looked at; more (code, JSON), the whole text
# how a key that ``_text_secret_key`` accepts ends, lower-cased (apiKey, userPassword, AWS_SECRET_ACCESS_KEY, DB_PASS)
_KEY_ENDINGS = ("key", "token", "secret", "password", "passwd", "passphrase", "passcode", "credential", "credentials",
                "authorization", "pat", "pass", "pwd")


def _key_before_separator(text: str) -> bool:
    """Whether a key that may name a secret ends right before one of ``text``'s ":" or "=" (``_KEY_ENDINGS``): a
    prose message with one "Note:" costs a look at one word, not a search of all of it."""
    for separator in (":", "="):
        at, seen = text.find(separator), 0
        while at >= 0:
            seen += 1
            if seen > _FEW_SEPARATORS:
                return holds_any(text.lower(), _KEY_WORDS)
            if text[max(0, at - _KEY_REACH):at].rstrip(" \t\"'\\]_.-").lower().endswith(_KEY_ENDINGS):
                return True
            at = text.find(separator, at + 1)
    return False


def _keyed_secret_at(found: re.Match[str]) -> bool:
    """Whether a ``_KEYED_SECRET`` match's value goes: its key names a secret (``_text_secret_key``) and the value
    looks like one: 8 or more characters with a digit in them, or 20 or more (a passphrase); not a dotted name, a
    variable's name, a path, a URL or a placeholder. A value ends where an escape starts (``\\n`` in a repr): a
    text and its repr lose the same characters."""
    return _credential_like(found.group("value")) and _text_secret_key(found.group("key"))


def _flag_secret_at(found: re.Match[str]) -> bool:
    """Whether a ``_FLAG_SECRET`` match's value goes: as ``_keyed_secret_at``, and ``--token`` names a secret (an
    option is no tokenizer's token)."""
    return _keyed_secret_at(found) or (found.group("key").lower() == "token" and _credential_like(found.group("value")))


def _credential_like(value: str) -> bool:
    """Whether a value written after a secret's name looks like one (see ``_keyed_secret_at``)."""
    return not ((len(value) < 20 and _DIGIT.search(value) is None) or _DOTTED_NAME.fullmatch(value)
                or _NAME_OR_PATH.fullmatch(value) or _PLACEHOLDER.fullmatch(value))


@functools.lru_cache(maxsize=4096)
def _text_secret_key(key: str) -> bool:
    """A key written out in text that names a secret: as ``is_secret_key``, but a pair of words only at its end (in
    text, ``access_token_url`` and ``api_key_id`` are a URL and an id, not the secret), not ``token`` alone (a
    tokenizer's or a logprob's token written out, as often as a credential), and not a cookie."""
    words = [w.lower() for w in _WORD.findall(key)]
    return bool(words) and (words[-1] in _TEXT_LAST_WORDS or _ENV_NAME.fullmatch(key) is not None
                            or tuple(words[-2:]) in _PAIRS)



def _keyed_suspect_in_json(text: str, is_secret: Callable[[Any], bool] = is_secret_key) -> bool:
    """``_keyed_suspect`` of any string a JSON text holds (escapes undone: a tab or a quote inside a string is
    escaped in its JSON); a text that is not JSON is screened as it is."""
    if (":" not in text and "=" not in text) or not holds_any(text.lower(), _KEY_WORDS + ("ookie",)):
        return False
    try:
        value = json.loads(text)
    except ValueError:
        return _keyed_suspect(text)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _keyed_suspect(item):
                return True
        elif isinstance(item, dict):
            for key, inner in item.items():  # (a field named like a secret, however its name ends: "Password:")
                if is_secret(key) and inner not in (None, ""):
                    return True
                stack.append(key)
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _keyed_spans(text: str, pattern: re.Pattern[str] = _KEYED_SECRET,
                 goes: Callable[[re.Match[str]], bool] = _keyed_secret_at) -> list[tuple[int, int]]:
    """Where the values that ``goes`` takes out of ``text`` (of ``pattern``'s matches) are, in order and apart."""
    spans: list[tuple[int, int]] = []
    for found in pattern.finditer(text):
        if (not spans or found.start("value") >= spans[-1][1]) and goes(found):
            spans.append(found.span("value"))
    return spans


def _without_keyed_secrets(text: str, pattern: re.Pattern[str] = _KEYED_SECRET,
                           goes: Callable[[re.Match[str]], bool] = _keyed_secret_at) -> str:
    """``text`` with each value ``_keyed_spans`` finds redacted."""
    spans = _keyed_spans(text, pattern, goes)
    if not spans:
        return text
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], REDACTED]
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _names_parameters(key: Any, value: Any) -> bool:
    """Whether ``value`` is a JSON schema's ``properties``: each key names a tool's parameter and holds its schema."""
    return key == "properties" and isinstance(value, dict) and all(isinstance(inner, dict) for inner in value.values())


_SCHEMA_SHAPE = frozenset({"type", "title", "description", "format", "items", "anyOf", "oneOf", "allOf", "$ref",
                           "minLength", "maxLength", "minimum", "maximum", "nullable", "additionalProperties"})
"""What a parameter's schema says of its shape: kept for a parameter named like a secret, whose other fields (a
``default``, ``const``, ``enum``, ``examples``: values of the secret) are redacted."""


def holds_any(text: str, needles: Sequence[str]) -> bool:
    """Whether ``text`` contains any of ``needles`` (a loop: cheaper than ``any(map(text.__contains__, ...))``,
    which calls each search through a method wrapper)."""
    for needle in needles:
        if needle in text:
            return True
    return False


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """Replace secret-looking substrings (keys of known shapes, bearer tokens, Authorization headers, a URL's
    ``user:password``, secret query parameters) and values of *_KEY/*_TOKEN/... environment variables."""
    text = _SECRET_VALUE.sub(REDACTED, text)
    if "://" in text:
        text = _URL_CREDENTIALS.sub(REDACTED, text)
    if "=" in text:
        text = _QUERY_SECRET.sub(r"\1" + REDACTED, text)
    if _key_before_separator(text):
        text = _without_keyed_secrets(text)
    if "--" in text:
        text = _without_keyed_secrets(text, _FLAG_SECRET, _flag_secret_at)
    if "</" in text:
        text = _without_keyed_secrets(text, _TAG_SECRET)
    for secret in secrets if secrets is not None else env_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


REPAIRED_KEY = "repaired_text"
"""The metadata field that says how many broken characters (lone UTF-16 surrogates) a run's text had mended."""


def mend_surrogates(text: str) -> tuple[str, int]:
    """``text`` with each lone UTF-16 surrogate (half an emoji, as a model's output cut mid-character decodes to)
    replaced by U+FFFD, and how many there were: no JSON file or database can hold one."""
    if text.isascii():
        return text, 0
    try:
        text.encode("utf-8")
        return text, 0
    except UnicodeEncodeError:
        broken = sum(1 for ch in text if "\ud800" <= ch <= "\udfff")
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), broken


def mend_value(value: Any) -> tuple[Any, int]:
    """A JSON-like value with every string's lone surrogates mended (``mend_surrogates``), and how many there were."""
    count = [0]

    def mend(item: Any) -> Any:
        if isinstance(item, str):
            item, broken = mend_surrogates(item)
            count[0] += broken
            return item
        if isinstance(item, dict):
            return {mend(k): mend(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [mend(v) for v in item]
        return item

    mended = mend(value)
    return (mended, count[0]) if count[0] else (value, 0)


def repaired_note(broken: int) -> str:
    """What ``metadata[REPAIRED_KEY]`` says of a run whose text had ``broken`` characters mended."""
    return f"{broken} broken character(s) (lone UTF-16 surrogates) replaced by U+FFFD"


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a JSON-like object with secret keys' values and secret-looking strings redacted."""
    return Redactor(secrets)(obj)


class FrozenJSON(dict):
    """A JSON object its maker promises never to change, e.g. one message of a conversation: a ``Redactor``
    dumps, screens and hashes it once per run however often later requests repeat it (kept by identity)."""

    __slots__ = ()


class RawMessages:
    """A request's messages as the framework's own objects and the function that encodes a list of them (each a
    ``FrozenJSON``, the same one for the same object): a recording keeps them as they were sent and encodes them
    when the run settles its requests, in the one pass that finds what each conversation adds and hashes it.
    The objects must not change once sent (frameworks build a new message rather than edit one). ``items`` is the
    request's own list (the caller's list copied), which the redactor keeps."""

    __slots__ = ("items", "encode_all")

    def __init__(self, items: list[Any], encode_all: Callable[[list[Any]], list[FrozenJSON]]) -> None:
        self.items = items
        self.encode_all = encode_all


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
# The C encoder behind ``json.dumps``, built once: ``JSONEncoder.encode`` builds a new one on every call, which
# costs more than encoding one message. Same bytes as ``_ENCODER.encode`` (no circular-reference check).
_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # None where json has no C speedups
_C_ENCODER = None if _MAKE_ENCODER is None else _MAKE_ENCODER(
    None, str, json.encoder.encode_basestring, None, ":", ",", True, False, True)


def _dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, compact separators, unescaped non-ASCII, ``str`` for anything else."""
    if _C_ENCODER is None or isinstance(obj, str):
        return _ENCODER.encode(obj)
    return "".join(_C_ENCODER(obj, 0))


HASH_SCHEME = 2  # of the request hashes this version records
_SCHEME_2 = "v2:"
Digest = bytes | str  # of one message: 32 bytes in scheme 2, 64 hex digits in scheme 1


def _strings_only(message: dict[Any, Any]) -> bool:
    """Whether every key and value of ``message`` is a plain ``str`` (a loop: set and map tricks cost more than
    they save on a few keys)."""
    for key, value in message.items():
        if type(key) is not str or type(value) is not str:
            return False
    return True


def hash_scheme(request_hash: str) -> int:
    """The scheme a recorded ``request_hash`` was made with: 2 (``v2:`` and 32 hex digits: what this version
    records) or 1 (32 hex digits, earlier recordings: every message's digest hashed its canonical JSON). A replay
    checks a recording's requests with the scheme they were hashed with."""
    return 2 if request_hash.startswith(_SCHEME_2) else 1


def _plain_key(message: Any) -> tuple[tuple[str, str], ...] | None:
    """A hashable key for a dict whose keys and values are all plain ``str``, else None (equal keys, equal JSON)."""
    if type(message) is not dict or not _strings_only(message):
        return None
    return tuple(message.items())


class Redactor:
    """Redaction for one run: environment secrets read once, each distinct string redacted once.

    Model requests repeat the whole conversation on every call; caching by string (and each ``FrozenJSON``
    message by identity) keeps recording linear.
    """

    def __init__(self, secrets: list[str] | None = None, *, cache_limit: int = 20_000,
                 scheme: int = HASH_SCHEME, parameter_names_secret: bool = False) -> None:
        if scheme not in (1, 2):
            raise ValueError(f"unknown request hash scheme {scheme!r}")
        self.secrets = env_secrets() if secrets is None else secrets
        self._scheme = scheme
        # a JSON schema's "properties" name a tool's parameters ("password": what a model is to give): kept, their
        # values redacted as any; ``parameter_names_secret`` redacts such a parameter's whole schema, as recordings
        # made before did (a replay of one hashes its requests that way too)
        self._names_kept = not parameter_names_secret
        self._prefix = _SCHEME_2 if scheme == 2 else ""
        self._rest_end = "\n" if scheme == 2 else ""  # scheme 2 digests are 32 bytes each, after a newline
        self._cache: dict[str, str] = {}
        self.mended = 0  # lone surrogates replaced in the strings redacted (see ``mend_surrogates``)
        self._cache_limit = cache_limit
        self._frozen: dict[int, Digest] = {}  # id of a FrozenJSON message -> its digest
        self._by_value: dict[tuple[tuple[str, str], ...], Digest] = {}  # a message of plain strings -> its digest
        self._held: list[FrozenJSON] = []
        self._suspect: set[Digest] = set()  # digests of messages that may hold a secret
        self._secret_keys: dict[str, bool] = {}
        self._fields_texts: dict[tuple[tuple[str, str], ...], str] = {}  # a request's fields of strings -> JSON
        self._rest_suspect: dict[str, bool] = {}  # a request's fields but its messages, as JSON -> suspect
        self._rest_redacted: dict[str, tuple[dict[str, Any], str]] = {}  # that JSON -> the fields redacted, their JSON
        # (that JSON, id of a first message) -> the run's conversations that begin with it, each at its latest
        # request: [its messages, the sha256 state after them, whether one may hold a secret, their encodings (for
        # RawMessages)]
        self._known: dict[tuple[str, int], list[list[Any]]] = {}
        # a secret that JSON escapes can't be found in a JSON text: then a request's own fields are always walked
        self._secrets_json_safe = all(_dumps(s)[1:-1] == s for s in self.secrets)

    def clear(self) -> None:
        """Forget every cached string, message and conversation (the secrets and the hash scheme stay)."""
        for cache in (self._cache, self._frozen, self._by_value, self._suspect, self._secret_keys, self._fields_texts,
                      self._rest_suspect, self._rest_redacted, self._known):
            cache.clear()
        self._held = []

    def may_hold_secret(self, json_text: str) -> bool:
        """The fast screen of an object's JSON text: False means redaction leaves the object as it is (a secret that
        JSON would escape cannot be screened in it: then always True)."""
        return self._may_hold_secret(json_text) or not self._secrets_json_safe

    def _may_hold_secret(self, text: str) -> bool:
        """The fast screen of a JSON text: False means redaction leaves the object it encodes as it is."""
        return (holds_any(text.lower(), _HINTS) or _url_or_query_secret(text)
                or _keyed_suspect_in_json(text, self._is_secret_key) or holds_any(text, self.secrets))

    def _is_secret_key(self, key: Any) -> bool:
        if not isinstance(key, str):
            return False
        found = self._secret_keys.get(key)
        if found is None:
            found = self._secret_keys[key] = is_secret_key(key)
        return found

    def text(self, value: str) -> str:
        cached = self._cache.get(value)
        if cached is None:
            whole, broken = mend_surrogates(value)  # (no store could hold half an emoji)
            self.mended += broken
            suspect = _value_suspect(whole) or holds_any(whole, self.secrets)
            cached = redact_text(whole, self.secrets) if suspect else whole
            if len(self._cache) < self._cache_limit:
                self._cache[value] = cached
        return cached

    def request(self, obj: Any) -> tuple[Any, str]:
        """A request redacted, with its ``request_hash``; a message seen before in the run costs one lookup.

        A request whose messages are ``RawMessages`` comes back with them encoded (a new dict)."""
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(messages, (list, RawMessages)):
            text = _dumps(obj)
            if self._may_hold_secret(text):
                obj = self(obj, keep_keys=True)
                text = _dumps(obj)
            return obj, self._whole_hash(text)
        rest = self._rest(obj)
        fields = None
        if self._rest_may_hold_secret(rest):  # (a request's own fields that hold a secret: redacted once per text)
            fields, rest = self._redacted_rest(obj, rest)
        hashed, suspect, encoded = self._conversation_hash(rest, messages)
        if encoded is not None:  # the RawMessages encoded
            obj = {**obj, "messages": encoded}
        if fields is not None:
            obj = {**fields, "messages": obj["messages"]}
        if not suspect:  # (the hash is the one of the whole request redacted: its messages are as they were)
            return obj, hashed
        obj = self(obj, keep_keys=True)  # fresh messages, not remembered as a conversation
        return obj, self._fresh_hash(self._rest(obj), obj["messages"])

    def _redacted_rest(self, request: dict[str, Any], rest: str) -> tuple[dict[str, Any], str]:
        """A request's fields but its messages, redacted, and their JSON (kept by ``rest``, the fields' JSON: a team
        offers the same tools on every call, and a tool's parameter named like a secret makes them suspect)."""
        found = self._rest_redacted.get(rest)
        if found is None:
            fields = self({key: value for key, value in request.items() if key != "messages"}, keep_keys=True)
            found = (fields, self._rest({**fields, "messages": []}))
            if len(self._rest_redacted) < self._cache_limit:
                self._rest_redacted[rest] = found
        return found

    def _rest(self, request: dict[str, Any]) -> str:
        """The JSON of a request's fields but its messages."""
        return "{}" if len(request) == 1 else self._fields_text(request)

    def _rest_may_hold_secret(self, rest: str) -> bool:
        suspect = self._rest_suspect.get(rest)
        if suspect is None:
            suspect = self._may_hold_secret(rest) or not self._secrets_json_safe
            if len(self._rest_suspect) < self._cache_limit:
                self._rest_suspect[rest] = suspect
        return suspect

    def _fields_text(self, request: dict[str, Any]) -> str:
        """The JSON of a request's fields but its messages; kept for fields of strings (a model's name), which
        repeat on every call."""
        fields = request.copy()
        del fields["messages"]
        if not _strings_only(fields):
            return _dumps(fields)
        key = tuple(fields.items())
        text = self._fields_texts.get(key)
        if text is None:
            text = _dumps(fields)
            if len(self._fields_texts) < self._cache_limit:
                self._fields_texts[key] = text
        return text

    def _whole_hash(self, text: str) -> str:
        """The request hash of a request without a message list (its JSON ``text``), or of ``rest`` and no message."""
        return self._prefix + self._started(text).hexdigest()[:32]

    def _joined(self, digests: list[Digest]) -> bytes:
        """What the request hash takes in for these messages' digests, after what it took in before them."""
        return b"".join(digests) if self._scheme == 2 else ("\n" + "\n".join(digests)).encode("utf-8", "surrogatepass")  # type: ignore[arg-type]

    def _started(self, rest: str) -> Any:
        """The sha256 state of a request hash once it has taken in ``rest``."""
        return hashlib.sha256((rest + self._rest_end).encode("utf-8", "surrogatepass"))

    def _digests(self, messages: list[Any]) -> list[Digest]:
        """Each message's digest (one lookup for a ``FrozenJSON`` digested before)."""
        frozen, digest_of = self._frozen, self._digest
        return [frozen.get(id(m)) or digest_of(m) for m in messages]

    def _fresh_hash(self, rest: str, messages: list[Any]) -> str:
        """The request hash of ``rest`` and ``messages`` (see ``request_hash``), from scratch."""
        state = self._started(rest)
        if messages:
            state.update(self._joined(self._digests(messages)))
        return self._prefix + state.hexdigest()[:32]

    def _conversation_hash(self, rest: str, messages: list[Any] | RawMessages
                           ) -> tuple[str, bool, list[Any] | None]:
        """The request hash of ``rest`` and ``messages``, whether a message may hold a secret, and, for
        ``RawMessages``, their encodings; going on from the state of the run's longest known request (with the same
        ``rest``) whose messages began these: every call re-sends its agent's conversation with new messages at its
        end, and costs the new messages only.

        Known conversations are found by their first message's identity (agents of one team often begin with
        the same message, one default system prompt: a few conversations share it, the longest match wins)."""
        raw, items = (messages, messages.items) if isinstance(messages, RawMessages) else (None, messages)
        if not items:
            return self._whole_hash(rest), False, [] if raw is not None else None
        key = (rest, id(items[0]))
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= _KNOWN_BEGINNINGS:
                del self._known[next(iter(self._known))]  # the beginning seen first
            known = self._known[key] = []  # its conversations hold the first message: its id stays unique
        best, best_n, total = None, 0, len(items)
        for entry in known:
            seen = entry[0]
            n = len(seen)
            if best_n < n <= total and (items[n - 1] is seen[-1] or (raw is None and items[n - 1] == seen[-1])) \
                    and items[:n] == seen:
                best, best_n = entry, n
        if best is None:
            state, suspect, encoded = self._started(rest), False, []
        else:
            state, suspect, encoded = best[1].copy(), best[2], best[3]
        if best_n < total:
            tail = items[best_n:]
            if raw is not None:
                tail = raw.encode_all(tail)
                encoded = encoded + tail
            digests = self._digests(tail)
            suspect = suspect or not self._suspect.isdisjoint(digests)
            state.update(self._joined(digests))
        kept = items if raw is not None else items.copy()  # (RawMessages hold their own copy already)
        if best is not None:
            best[0], best[1], best[2], best[3] = kept, state, suspect, encoded
        else:
            known.append([kept, state, suspect, encoded])
            if len(known) > _CONVERSATIONS_PER_BEGINNING:
                del known[0]  # the conversation that started first
        # (the request gets a copy: the conversation's own list is where its next request starts)
        return self._prefix + state.hexdigest()[:32], suspect, encoded.copy() if raw is not None else None

    def _digest(self, message: Any) -> Digest:
        """A message's digest, noted as suspect when redaction changes it; kept by identity for a ``FrozenJSON``.

        Its strings go through the same cache as every other string of the run (a message's text is usually
        seen first as a model's response), so each distinct text is screened once. A message of plain strings
        (``{"role": ..., "content": ...}``) is also kept by value: frameworks that rebuild the conversation's
        dicts for every call (CAMEL) repeat equal messages, not the same objects.
        """
        frozen = type(message) is FrozenJSON  # the caller looked it up by identity
        key = None if frozen else _plain_key(message)
        if key is not None:
            digest = self._by_value.get(key)
            if digest is not None:
                return digest
        digest = self._strings_digest(message) if self._scheme == 2 and isinstance(message, dict) else None
        if digest is None:  # the canonical JSON
            hashed = hashlib.sha256(_dumps(message).encode("utf-8", "surrogatepass"))
            digest = hashed.digest() if self._scheme == 2 else hashed.hexdigest()
            if not self._clean(message, keep_keys=True):
                self._suspect.add(digest)
        if frozen:
            self._frozen[id(message)] = digest
            self._held.append(message)  # holding the message keeps its id unique
        elif key is not None and len(self._by_value) < self._cache_limit:
            self._by_value[key] = digest
        return digest

    def _strings_digest(self, message: dict[Any, Any]) -> bytes | None:
        """The scheme-2 digest of a non-empty dict of plain strings none of which holds a NUL, noting it as suspect
        when redaction would change it (``_clean`` in the same loop); None for any other message, whose canonical
        JSON is digested. What it digests: the keys and values in key order with a NUL between each (no escaping to
        do, unlike JSON: a JSON text never holds a raw NUL, so the two forms never meet)."""
        if not message:
            return None
        try:
            keys = sorted(message)
        except TypeError:  # keys of several types
            return None
        cache, secret_keys, parts, clean = self._cache, self._secret_keys, [], True
        for key in keys:
            value = message[key]
            if type(key) is not str or type(value) is not str:
                return None
            parts.append(key)
            parts.append(value)
            if not clean:
                continue
            if secret_keys.get(key) is not False and self._is_secret_key(key):  # (a key seen for the first time)
                clean = not value
            elif (cache.get(value) or self.text(value)) != value:
                clean = False
        text = "\x00".join(parts)
        if text.count("\x00") != len(parts) - 1:  # a NUL inside a key or value: the JSON form is digested
            return None
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()  # (any str hashes: see text)
        if not clean:
            self._suspect.add(digest)
        return digest

    def _clean(self, obj: Any, keep_keys: bool = False) -> bool:
        """Whether redacting ``obj`` would leave it as it is (without building the redacted copy)."""
        kind = type(obj)
        if kind is str:
            return (self._cache.get(obj) or self.text(obj)) == obj
        if kind in _SCALARS:
            return True
        if isinstance(obj, dict):  # one loop: the set and map tricks cost more than they save on a few keys
            secret_keys, cache = self._secret_keys, self._cache
            for k, v in obj.items():
                if not keep_keys and type(k) is str and (cache.get(k) or self.text(k)) != k:
                    return False
                if self._names_kept and _names_parameters(k, v):  # (a tool's parameters: their names are no fields)
                    if any(self._parameter(name, schema, keep_keys) != schema for name, schema in v.items()):
                        return False
                    continue
                if secret_keys.get(k) is not False and self._is_secret_key(k):  # (a key seen for the first time)
                    if v not in (None, ""):
                        return False
                    continue
                kind = type(v)
                if kind is str:
                    if (cache.get(v) or self.text(v)) != v:
                        return False
                elif kind not in _SCALARS and not self._clean(v, keep_keys):
                    return False
            return True
        if isinstance(obj, list | tuple):
            return all(map(self._clean, obj, itertools.repeat(keep_keys)))
        return self(obj, keep_keys) == obj

    def own_values(self, obj: Any) -> Any:
        """``obj`` with its strings, and its fields' names, redacted by their values only (no field's name makes its
        value a secret), itself when nothing changes: for what a framework also hands on as text (a tool's arguments and result, which the
        next request carries as a string, whose redaction sees no field names), so that both read the same and a
        replay that serves the recorded result rebuilds the recorded request."""
        kind = type(obj)
        if kind is str:
            return self._cache.get(obj) or self.text(obj)
        if isinstance(obj, dict):
            items = self._keys_redacted({k: self.own_values(v) for k, v in obj.items()})
            return obj if items.keys() == obj.keys() and all(items[k] is v for k, v in obj.items()) else items
        if isinstance(obj, list | tuple):
            values = [self.own_values(v) for v in obj]
            return obj if all(a is b for a, b in zip(values, obj, strict=True)) else values
        return obj

    def own(self, obj: Any) -> Any:
        """``obj`` redacted, for a JSON value made for the caller alone (a codec's encoding of one response): when
        redaction would leave it as it is, it is returned itself (a walk that builds no copy)."""
        return obj if self._clean(obj) else self(obj)

    def __call__(self, obj: Any, keep_keys: bool = False) -> Any:
        """``obj`` redacted: its strings, the values of fields named like secrets, and each field's name that is a
        secret itself (``{"sk-...": 1}``); but with ``keep_keys``, as requests are (their hashes, which recordings
        hold, were made of their fields' names as they were: a request's tool arguments are a text anyway)."""
        kind = type(obj)
        if kind is str:
            return self._cache.get(obj) or self.text(obj)
        if kind in _SCALARS:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return self._dict(obj, keep_keys)
        if isinstance(obj, list | tuple):
            return [self(v, keep_keys) for v in obj]
        return obj

    def _keys_redacted(self, obj: dict[Any, Any]) -> dict[Any, Any]:
        """``obj`` with each key that holds a secret redacted as a text is (``{"sk-...": 1}``: ``{"[REDACTED]": 1}``,
        as the same object written out as JSON text reads redacted), itself when none does. Keys that come out the
        same are numbered (``[REDACTED-2]``): no value is lost."""
        cache = self._cache
        renamed = {k: new for k in obj if type(k) is str and (new := cache.get(k) or self.text(k)) != k}
        if not renamed:
            return obj
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            key = renamed.get(k, k)
            if key in out:
                key = _numbered(key, out)
            out[key] = v
        return out

    def _parameter(self, name: Any, schema: dict[Any, Any], keep_keys: bool = False) -> dict[Any, Any]:
        """A parameter's schema redacted: as any object, and for a parameter named like a secret, every field but
        those of its shape (``_SCHEMA_SHAPE``) too."""
        redacted = self(schema, keep_keys)
        if not self._is_secret_key(name):
            return redacted
        return {key: value if key in _SCHEMA_SHAPE or value in (None, "") else REDACTED
                for key, value in redacted.items()}

    def _dict(self, obj: dict[Any, Any], keep_keys: bool) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        secret_keys, cache = self._secret_keys, self._cache
        for k, v in obj.items():
            if self._names_kept and _names_parameters(k, v):  # (a tool's parameters: their names are no fields)
                parameters = {name: self._parameter(name, schema, keep_keys) for name, schema in v.items()}
                out[k] = parameters if keep_keys else self._keys_redacted(parameters)
                continue
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
                out[k] = self(v, keep_keys)
        return out if keep_keys else self._keys_redacted(out)


def _numbered(key: str, taken: dict[Any, Any]) -> str:
    """``key`` numbered (``[REDACTED-2]``, ``name-2``) to a name ``taken`` does not have yet."""
    stem, end = (key[:-1], "]") if key == REDACTED else (key, "")
    n = 2
    while f"{stem}-{n}{end}" in taken:
        n += 1
    return f"{stem}-{n}{end}"


def request_hash(request: dict[str, Any], scheme: int = HASH_SCHEME) -> str:
    """The stable hash of a (redacted) model request, so that a conversation re-sent on every call is hashed once
    per message, not once per call. Scheme 2 (the default; ``v2:`` and 32 hex digits): the sha256 of the
    canonical JSON (sorted keys, compact) of the request's fields but ``messages`` and a newline, then for each
    message the 32-byte sha256 of its digest text: its keys and values NUL-separated for a dict of strings (see
    ``Redactor._strings_digest``), its canonical JSON otherwise. Scheme 1 (32 hex digits): the sha256 of that JSON, then for each
    message a newline and the hex sha256 of its canonical JSON. A request without a message list: as one whose
    fields are all of it and whose message list is empty."""
    redactor = Redactor(secrets=[], scheme=scheme)
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return redactor._whole_hash(_dumps(request))
    return redactor._fresh_hash(redactor._rest(request), messages)
