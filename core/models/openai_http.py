"""Any OpenAI-compatible chat server (OpenAI, ``vllm serve``, SGLang, llama.cpp …) over async httpx.

Spec: ``openai:http://127.0.0.1:8000/v1@Qwen3-8B`` (endpoint ``@`` model), or ``openai:gpt-4o`` for
``$OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``). The key comes from ``AGENTRACER_API_KEY`` or
``OPENAI_API_KEY`` (or ``api_key=`` in code); it is sent as a header and never logged, cached or written (a server's
error that echoes it, or a ``user:password@`` in the URL, is redacted from messages and names).

What it does for you:

* bounded concurrency (``max_concurrency`` requests in flight per event loop, each on a kept-alive
  connection);
* retries with exponential backoff and full jitter on HTTP 408/409/425/429/5xx, timeouts and connection
  errors, waiting at least what a ``Retry-After`` header asks (a wait longer than ``max_retry_wait``, 600 s by
  default, fails at once, saying so); other 4xx fail at once with the server's message. After ``breaker_threshold`` failures to connect in a row (the server is down), later requests
  make one attempt each instead of a full retry cycle, so a dead server fails an evaluation fast;
* a per-attempt timeout (``timeout``, else ``$AGENTRACER_TIMEOUT``, else 300 s), for the whole answer (a server that
  trickles its body is cut off too); token accounting (``usage``, ``stats``);
* an on-disk answer cache keyed by the hash of endpoint + request body (see ``agentracer.models.cache``),
  so re-running an evaluation costs nothing. ``cache=False`` or ``AGENTRACER_CACHE=off`` turns it off;
  ``cache_read=False`` asks the server again and stores its new answer (``eval --retry-errors``); an empty answer is
  never stored.

When a server splits reasoning out (vLLM's ``reasoning_content``), the text is rebuilt as
``<think>reasoning</think>answer`` so tracer answers keep the paper's format.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import random
import re
import ssl
import time
import urllib.parse
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx

from ..errors import InputError
from ..redact import env_secrets, redact_text
from ..schema import Usage
from ..urls import url_secrets, without_credentials
from .base import BaseChatModel, Completion, Message, ModelError, RequestRefused
from .cache import ResponseCache, cache_disabled_by_env, redacted_answer, request_key

KEY_ENVS = ("AGENTRACER_API_KEY", "OPENAI_API_KEY")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 425, 429})
REQUEST_REFUSALS = frozenset({400, 413, 422})  # this request's fault (too long, a bad parameter): not the server's
#: The shortest URL credential (password, token, secret query value) taken out of answers, as for the API key: a
#: shorter one ("test", "pass", "1234") is a piece of ordinary words ("tester"), and taking it out of an answer
#: mangled the agent names and steps a tracer's verdict is read from.
URL_SECRET_MIN = 8


def _api_key_from_env() -> str | None:
    return next((os.environ[name] for name in KEY_ENVS if os.environ.get(name)), None)


TIMEOUT_ENV = "AGENTRACER_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
#: Share of the attempt's timeout a connection may take: a hung connect times out (and counts toward the breaker)
#: before the attempt's whole wait does, which could not tell it from a slow answer.
CONNECT_SHARE = 0.9


def _timeout_from_env() -> float:
    """Seconds per attempt: ``$AGENTRACER_TIMEOUT`` when set (every command's model), else 300."""
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        raise InputError(f"{TIMEOUT_ENV}={value!r} must be a number of seconds") from None
    if seconds <= 0:
        raise InputError(f"{TIMEOUT_ENV}={value!r} must be above 0")
    return seconds


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _shown_url(url: str) -> str:
    """``url`` as names and messages show it (``without_credentials``); one urllib cannot split (an unclosed ``[``)
    without anything before its host's ``@``."""
    try:
        return without_credentials(url)
    except ValueError:
        return re.sub(r"^([^:/?#]+://)[^/?#]*@", r"\1", url)


def _url_problem(url: str) -> str | None:
    """What makes ``url`` one no request can go to (no host, a port out of range, what httpx cannot parse), if
    anything."""
    try:
        parsed = httpx.URL(url)
        urllib.parse.urlsplit(url)  # (the credentials are read from it: it must split too)
    except (httpx.InvalidURL, ValueError) as exc:
        return str(exc)  # (names a host or port, never the credentials)
    if not parsed.host:
        return "it names no host"
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return f"port {parsed.port} is not in 1-65535"
    return None


def _content_text(content: Any) -> str:
    """A message's ``content`` as text: a list of parts (``[{"type": "text", "text": ...}]``) joined."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)




def _json_object(response: httpx.Response) -> dict[str, Any] | str:
    """The JSON object of a 200 answer, or what is wrong with its body."""
    try:
        payload = response.json()
    except ValueError:
        start = response.text.lstrip()[:60]
        if start.startswith("data:"):
            return "a stream (server-sent events) to a request that asked for none: does a proxy force streaming?"
        return f"a body that is not JSON: {start!r}"
    return payload if isinstance(payload, dict) else f"JSON that is not an object: {str(payload)[:60]}"


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", body["error"]))[:300]
    return str(body)[:300]


class _ClientPool:
    """At most ``size`` requests at once, each on its own one-connection client (kept alive and reused).

    One small client per slot instead of one client with ``size`` connections: httpcore checks every idle
    connection of a pool on each request, which costs more CPU than the request itself at high concurrency.

    A client whose request was cancelled is closed, never reused: httpcore (1.0.9, encode/httpcore#1093) can
    leave a connection cancelled while connecting in its pool for good, and with one connection per client
    every later request would wait out the whole timeout.
    """

    def __init__(self, factory: Callable[[], httpx.AsyncClient], size: int) -> None:
        self._factory = factory
        self._gate = asyncio.Semaphore(size)
        self._idle: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []
        self._closing: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        async with self._gate:
            if self._idle:
                client = self._idle.pop()
            else:
                client = self._factory()
                self._all.append(client)
            cancelled = False
            try:
                yield client
            except asyncio.CancelledError:
                cancelled = True
                raise
            finally:
                if cancelled:
                    self._discard(client)
                else:
                    self._idle.append(client)

    def _discard(self, client: httpx.AsyncClient) -> None:
        """Close ``client`` in the background (the cancelled task cannot await it) and forget it."""
        self._all.remove(client)
        closing = asyncio.get_running_loop().create_task(client.aclose())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        for client in self._all:
            await client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class OpenAIChatModel(BaseChatModel):
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_concurrency: int = 8,
        max_retries: int = 5,
        timeout: float | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_wait: float = 600.0,
        breaker_threshold: int = 8,
        cache: bool | ResponseCache = True,
        cache_dir: str | None = None,
        cache_read: bool = True,
        context_window: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = _shown_url(self.base_url)  # (what names and errors show)
        if not _SCHEME.match(base_url):
            raise InputError(f"model endpoint {self.shown_url!r} must start with http:// or https://")
        if not model:
            raise InputError(f"no model name for endpoint {self.shown_url!r}; write URL@MODEL")
        if problem := _url_problem(self.base_url):  # (refused here, not as a traceback at the first request)
            raise InputError(f"model endpoint {self.shown_url!r} is not a usable URL: {problem}")
        self.model = model
        self.name = f"openai:{self.shown_url}@{model}"
        self._api_key = api_key if api_key is not None else _api_key_from_env()
        credentials = url_secrets(self.base_url)
        self._secrets = [secret for secret in (self._api_key, *credentials) if secret]
        # what an answer is redacted of as the cache keeps it: the key and the URL's own credentials from 8 characters
        # (a key like EMPTY, a password like "test", is a word of the answers)
        self._answer_secrets = [*([self._api_key] if self._api_key and len(self._api_key) >= 8 else []),
                                *(secret for secret in credentials if len(secret) >= URL_SECRET_MIN)]
        self.max_concurrency = max(1, int(max_concurrency))
        self.max_retries = max(0, int(max_retries))
        self.timeout = float(timeout) if timeout is not None else _timeout_from_env()
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.max_retry_wait = float(max_retry_wait)
        self.breaker_threshold = max(1, int(breaker_threshold))
        self._given_window = int(context_window) if context_window else None
        self._served_window: int | None = None
        self._window_asked = False
        self.params = dict(params or {})
        if isinstance(cache, ResponseCache):
            self.cache: ResponseCache | None = cache
        elif cache and not cache_disabled_by_env():
            self.cache = ResponseCache(cache_dir)
        else:
            self.cache = None
        self.cache_read = cache_read
        self.usage = Usage()
        self.stats = {"requests": 0, "attempts": 0, "retries": 0, "failures": 0, "cache_hits": 0}
        self._connect_failures = 0
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ClientPool]
        self._per_loop = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIChatModel({self.shown_url!r}, {self.model!r})"

    @property
    def context_window(self) -> int | None:  # type: ignore[override]
        """Tokens the model reads at most (prompt and answer): as given, else what the server's ``/models`` says of
        this model (vLLM's ``max_model_len``), asked once; None when it does not say (tracers then use a default)."""
        if self._given_window is not None:
            return self._given_window
        if not self._window_asked:
            self._window_asked = True
            self._served_window = self._ask_window()
        return self._served_window

    @context_window.setter
    def context_window(self, value: int | None) -> None:
        self._given_window = int(value) if value else None

    def _ask_window(self) -> int | None:
        """This model's window from the server's model list; when the server cannot be asked, the one it said
        before (kept in the answer cache: prompts fitted to it then are fitted alike now, and hit the cache)."""
        key = request_key({"endpoint": self.base_url, "context_window_of": self.model})
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        listed: Any = None
        try:  # (verified as the completions are: with the system's certificates)
            response = httpx.get(f"{self.base_url}/models", headers=headers, timeout=min(self.timeout, WINDOW_ASK_S),
                                 verify=ssl.create_default_context())
            if response.status_code == 200:
                payload = response.json()
                listed = payload.get("data") if isinstance(payload, dict) else None
        except (httpx.HTTPError, ValueError):
            pass
        if not isinstance(listed, list):  # not answered (down, a proxy's 502, another route): as it said before
            entry = self.cache.get(key) if self.cache is not None else None
            window = entry.get("context_window") if entry is not None else None
            return window if type(window) is int and window > 0 else None
        window = served_window(listed, self.model)
        if window is not None and self.cache is not None:
            self.cache.put(key, {"context_window": window})
        return window

    def _scrubbed(self, text: str) -> str:
        """``text`` (a server's error, which may echo the request's credentials) without the key, the URL's password
        or anything shaped like a key."""
        return redact_text(text, [*self._secrets, *env_secrets()])

    # ------------------------------------------------------------------ plumbing
    def _pool(self) -> _ClientPool:
        loop = asyncio.get_running_loop()
        pool = self._per_loop.get(loop)
        if pool is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            tls = ssl.create_default_context()  # one TLS context shared by the clients (each costs ~10 ms)
            pool = _ClientPool(lambda: httpx.AsyncClient(
                headers=headers, timeout=httpx.Timeout(self.timeout, connect=self.timeout * CONNECT_SHARE), verify=tls,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)), self.max_concurrency)
            self._per_loop[loop] = pool
        return pool

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections."""
        pool = self._per_loop.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: exponential backoff with full jitter, and at least what the server's
        ``Retry-After`` asked."""
        jittered = random.uniform(0, min(self.backoff_max, self.backoff_base * (2**attempt)))
        return max(jittered, retry_after) if retry_after is not None else jittered

    # ------------------------------------------------------------------ API
    async def acomplete(self, messages: Sequence[Message], **params: Any) -> Completion:
        """One chat completion (from the cache when this exact request was answered before)."""
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages],
                                **self.params, **params}
        key = request_key({"endpoint": self.base_url, "body": body}) if self.cache is not None else ""
        if self.cache is not None and self.cache_read:
            entry = self.cache.get(key)
            usage = _cached_usage(entry) if entry is not None else None
            if entry is not None and isinstance(entry.get("text"), str) and usage is not None:
                self.stats["cache_hits"] += 1
                return Completion(text=entry["text"], usage=usage, cached=True, raw=entry.get("raw"))
        async with self._pool().client() as client:
            payload = await self._post(client, body)
        payload = redacted_answer(payload, self._answer_secrets)  # (this endpoint's key and URL credentials too)
        completion = self._completion(payload)
        self.usage = self.usage + completion.usage
        if self.cache is not None and completion.text.strip():  # an empty answer is asked again next time
            self.cache.put(key, {"text": completion.text, "usage": completion.usage.model_dump(), "raw": payload})
        return completion

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        shown = f"{self.shown_url}/chat/completions"
        self.stats["requests"] += 1
        attempts = 1 if self._connect_failures >= self.breaker_threshold else self.max_retries + 1
        problem = "no attempt made"
        for attempt in range(attempts):
            self.stats["attempts"] += 1
            retry_after: float | None = None
            try:  # (httpx's timeout bounds each read; the wait bounds the whole answer)
                response = await asyncio.wait_for(client.post(url, json=body), self.timeout)
            except httpx.ConnectTimeout:  # (a TimeoutException too: caught first, it counts as the server down)
                self._connect_failures += 1
                problem = f"cannot connect to {self.shown_url} within {self.timeout * CONNECT_SHARE:g}s"
            except (TimeoutError, httpx.TimeoutException):
                problem = f"no answer within {self.timeout:g}s"
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError):  # no server there: a connection dropped mid-answer is
                    self._connect_failures += 1  # retried but says nothing about that
                problem = f"cannot reach {self.shown_url} ({type(exc).__name__}: {exc})"
            else:
                self._connect_failures = 0
                if response.status_code == 200:
                    payload = _json_object(response)
                    if isinstance(payload, dict):
                        return payload
                    self.stats["failures"] += 1  # the same request would get the same body: no retry
                    raise ModelError(self._scrubbed(f"{shown} answered HTTP 200 with {payload}"))
                elif response.status_code in RETRY_STATUSES or response.status_code >= 500:
                    retry_after = _retry_after(response)
                    problem = f"HTTP {response.status_code}: {_error_message(response)}"
                elif 300 <= response.status_code < 400:  # (not followed: a POST's body and key go only where given)
                    self.stats["failures"] += 1
                    raise ModelError(self._scrubbed(_redirected(shown, url, response)))
                else:
                    self.stats["failures"] += 1
                    refused = RequestRefused if response.status_code in REQUEST_REFUSALS else ModelError
                    raise refused(self._scrubbed(f"{shown} refused the request: HTTP {response.status_code}: "
                                                 f"{_error_message(response)}"))
            if self._connect_failures >= self.breaker_threshold:
                break  # the server looks down: no retry cycle (each later request still tries once)
            if attempt + 1 < attempts:
                if retry_after is not None and retry_after > self.max_retry_wait:
                    self.stats["failures"] += 1
                    raise ModelError(self._scrubbed(
                        f"{shown} asks to wait {retry_after:.0f}s before asking again (Retry-After), more than "
                        f"max_retry_wait={self.max_retry_wait:g}s: {problem}"))
                self.stats["retries"] += 1
                await asyncio.sleep(self._delay(attempt, retry_after))
        self.stats["failures"] += 1
        raise ModelError(self._scrubbed(f"{shown} failed after {attempt + 1} attempt(s): {problem}"))

    def _completion(self, payload: dict[str, Any]) -> Completion:
        """The answer of a 200 body; a body not shaped as a chat completion is the server's failure (``ModelError``),
        while token counts it writes oddly count as 0 (they only inform)."""
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            self.stats["failures"] += 1
            raise ModelError(self._scrubbed(f"{self.name} answered without choices: {str(payload)[:200]}"))
        message = choices[0].get("message")
        if not isinstance(message, dict):  # (a /completions body's "text", a null: not a chat completion)
            self.stats["failures"] += 1
            raise ModelError(self._scrubbed(f"{self.name} answered HTTP 200 with a malformed body (its first choice "
                                            f"has no message object): {str(payload)[:200]}"))
        text = _content_text(message.get("content"))
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning and "<think>" not in text:
            text = f"<think>{reasoning}</think>{text}"
        raw_usage = payload.get("usage")
        counts = raw_usage if isinstance(raw_usage, dict) else {}
        usage = Usage(prompt_tokens=_count(counts.get("prompt_tokens")),
                      completion_tokens=_count(counts.get("completion_tokens")))
        return Completion(text=text, usage=usage, raw=payload)


def _redirected(shown: str, url: str, response: httpx.Response) -> str:
    """What to say of a redirect of the request to ``url`` (shown as ``shown``): where to, and the base URL to give."""
    location = response.headers.get("location")
    said = f"{shown} redirected the request (HTTP {response.status_code})"
    if not location:
        return f"{said} without saying where to"
    try:
        target = _shown_url(str(httpx.URL(url).join(location)))
    except (httpx.InvalidURL, ValueError):
        return f"{said} to {location!r}, which is no URL"
    moved = target.split("?")[0]
    if not moved.endswith("/chat/completions"):
        return f"{said} to {target}"
    return f"{said} to {target}; give its base URL instead, e.g. openai:{moved.removesuffix('/chat/completions')}@MODEL"


def _cached_usage(entry: dict[str, Any]) -> Usage | None:
    """The token counts a cache entry keeps (none kept: 0), or None when they are not whole numbers (an entry
    written by hand or another tool: a miss, asked again, as an unreadable entry is); other keys are ignored."""
    usage = entry.get("usage", {})
    if not isinstance(usage, dict):
        return None
    counts = {name: usage.get(name, 0) for name in ("prompt_tokens", "completion_tokens")}
    if not all(type(count) is int and count >= 0 for count in counts.values()):
        return None
    return Usage(**counts)


def _count(value: Any) -> int:
    """A token count as a server wrote it: a whole number, else 0."""
    return value if type(value) is int and value >= 0 else 0


WINDOW_ASK_S = 5.0  # how long to wait for a server's model list
WINDOW_FIELDS = ("max_model_len", "context_length", "context_window")  # vLLM's, then others' names for it


def served_window(listed: Any, model: str) -> int | None:
    """The context window a server's ``/models`` list (its ``data``) gives ``model``, if it gives one."""
    for card in listed if isinstance(listed, list) else ():
        if isinstance(card, dict) and card.get("id") == model:
            found = next((card[name] for name in WINDOW_FIELDS if type(card.get(name)) is int), None)
            return found if found is not None and found > 0 else None
    return None


_SCHEME = re.compile(r"^(https?)://", re.IGNORECASE)
# what a URL without its scheme begins with: a host and port before a path (myhost:8000/v1), or a bare host and port of
# a named or dotted host (localhost:8000, 127.0.0.1:8000; a model tag like llama3:70 is not one)
_HOST_PORT = re.compile(r"^([\w.-]+:\d+/|(localhost|[\w-]+(\.[\w-]+)+):\d+$)")
# a URL's authority as a spec writes it: maybe credentials, a host name or [IPv6] (a zone id too), maybe :port
_AUTHORITY = re.compile(r"([^@/?#]*@)?([\w.-]+|\[[0-9A-Fa-f:.%\w]+\])(:\d*)?")
# what follows credentials' @ (and cannot follow a host's @ before a model name): a host that is plainly one
# (localhost, dotted, [IPv6], or with a :port), then its path or the model's @
_HOST_THEN = re.compile(r"(localhost|[\w-]+(\.[\w-]+)+|\[[0-9A-Fa-f:.%\w]+\]|[\w.-]+(?=:\d))(:\d+)?[/@]")


def _model_at(body: str) -> int:
    """Where the model begins in a spec after its ``scheme://`` (the position of its @; -1: no model). The model
    begins at the first @ of the URL's path (an @ in the model is the model's); in a URL without a path, at the @
    after its host[:port] (``localhost:8000@org/model``). An @ before the first / is the URL's credentials' when a
    host follows it (``user:pw@127.0.0.1:8000/v1@m``) or when the path after it holds an @ of its own
    (``user@host/v1@m``)."""
    first = body.find("@")
    slash = body.find("/")
    host = 0
    if first >= 0 and (slash < 0 or first < slash):
        later = body.find("/", first)
        if _HOST_THEN.match(body, first + 1) or (later >= 0 and body.find("@", later) >= 0):
            host = first + 1  # (credentials: the host comes after them)
        else:
            return first if _AUTHORITY.fullmatch(body, 0, first) else -1
    path = body.find("/", host)
    return body.find("@", path if path >= 0 else host)


def parse_spec(rest: str) -> tuple[str, str]:
    """``'http://host:port/v1@model'`` → (endpoint, model); a bare model uses ``$OPENAI_BASE_URL``. What looks like
    an endpoint without its ``http://`` is refused: taken as a model name, it would send the prompts (and the key)
    to ``$OPENAI_BASE_URL``, api.openai.com by default."""
    scheme = _SCHEME.match(rest)
    if scheme:
        rest = scheme.group(1).lower() + rest[len(scheme.group(1)):]
        at = _model_at(rest[scheme.end():])
        at = at + scheme.end() if at >= 0 else -1
        endpoint, model = (rest[:at], rest[at + 1:]) if at >= 0 else ("", "")
        if not model or not endpoint:  # (shown without the URL's credentials: this message is printed)
            raise InputError(f"openai model spec {without_credentials(rest)!r} needs URL@MODEL, e.g. "
                             "http://127.0.0.1:8000/v1@Qwen3-8B")
        return endpoint, model
    if not rest:
        raise InputError("openai model spec is empty; use openai:URL@MODEL or openai:MODEL")
    before_at = rest.partition("@")[0] if "@" in rest else ""
    if ("://" in rest or _HOST_PORT.match(rest) or "/" in before_at or _HOST_PORT.match(before_at + "/")
            or rest != rest.strip() or " " in rest):
        raise InputError(f"openai model spec {rest!r} is neither URL@MODEL (the URL begins http:// or https://) nor a "
                         "model name: write e.g. openai:http://127.0.0.1:8000/v1@Qwen3-8B")
    return os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL, rest


def from_spec(rest: str, **options: Any) -> OpenAIChatModel:
    """The backend for ``openai:REST`` (see ``parse_spec``); ``options`` go to ``OpenAIChatModel``."""
    endpoint, model = parse_spec(rest)
    return OpenAIChatModel(endpoint, model, **options)
