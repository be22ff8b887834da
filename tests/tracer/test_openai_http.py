"""The OpenAI-compatible backend against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from agentracer.errors import InputError
from agentracer.models import load_model
from agentracer.models.base import ModelError, RequestRefused
from agentracer.models.cache import ResponseCache
from agentracer.models.openai_http import OpenAIChatModel, parse_spec
from agentracer.testing.openai_server import OpenAIServer

MESSAGES = [{"role": "user", "content": "who failed?"}]


def _model(server: OpenAIServer, **options) -> OpenAIChatModel:
    options.setdefault("backoff_base", 0.01)
    return load_model(f"openai:{server.base_url}@tracer", **options)


def test_spec_parsing() -> None:
    assert parse_spec("http://127.0.0.1:8000/v1@Qwen3-8B") == ("http://127.0.0.1:8000/v1", "Qwen3-8B")
    assert parse_spec("gpt-4o") == ("https://api.openai.com/v1", "gpt-4o")
    assert parse_spec("ft:gpt-4o:org::id")[1] == "ft:gpt-4o:org::id" and parse_spec("Qwen/Qwen3-8B")[1] == "Qwen/Qwen3-8B"
    assert parse_spec("HTTP://127.0.0.1:8000/v1@m") == ("http://127.0.0.1:8000/v1", "m")
    for name in ("claude-3-5-sonnet-v2@20241022", "gemini-1.5-pro@001", "llama3:70", "qwen2.5:7b"):  # (a proxy's)
        assert parse_spec(name)[1] == name
    assert parse_spec("http://proxy:4000/v1@claude-3-5-sonnet-v2@20241022") == (
        "http://proxy:4000/v1", "claude-3-5-sonnet-v2@20241022")
    assert parse_spec("http://user:pw@host:8000/v1@m") == ("http://user:pw@host:8000/v1", "m")
    assert parse_spec("http://host:8000@m") == ("http://host:8000", "m")


@pytest.mark.parametrize(("spec", "split"), [
    ("http://localhost:8000@Qwen/Qwen3-8B", ("http://localhost:8000", "Qwen/Qwen3-8B")),  # no path, org/model
    ("http://127.0.0.1:8000@meta-llama/Llama-3.1-8B-Instruct", ("http://127.0.0.1:8000", "meta-llama/Llama-3.1-8B-Instruct")),
    ("http://localhost@model", ("http://localhost", "model")),
    ("http://user:pw@host:8000@m", ("http://user:pw@host:8000", "m")),
    ("https://user@host/v1@model", ("https://user@host/v1", "model")),
    ("http://[::1]:8000/v1@m", ("http://[::1]:8000/v1", "m")),
    ("http://[fe80::1%25eth0]:8000@m", ("http://[fe80::1%25eth0]:8000", "m")),
    ("http://h/v1@org/model@v2", ("http://h/v1", "org/model@v2")),
])
def test_a_url_and_its_model_are_told_apart_with_or_without_a_path(spec: str, split: tuple[str, str]) -> None:
    assert parse_spec(spec) == split


@pytest.mark.parametrize("spec", ["127.0.0.1:8000/v1@Qwen3-8B", "localhost:8000/v1@m", "localhost:8000",
                                  "ftp://host/v1@m", "my model", "myhost:8000/v1@m", "127.0.0.1:8000@m",
                                  "vllm.internal:8000"])
def test_an_endpoint_without_its_scheme_is_refused_not_sent_to_api_openai_com(spec) -> None:
    """Taken as a bare model name, it went to $OPENAI_BASE_URL (api.openai.com), prompts and key with it."""
    with pytest.raises(Exception, match="neither URL@MODEL"):
        parse_spec(spec)
    with pytest.raises(Exception, match="URL@MODEL"):
        parse_spec("http://127.0.0.1:8000/v1")


def test_completion_usage_and_request_body() -> None:
    with OpenAIServer("<answer>A|1</answer>") as server:
        model = _model(server, cache=False)
        completion = model.complete(MESSAGES, temperature=0.0)
        assert completion.text == "<answer>A|1</answer>" and not completion.cached
        assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
        assert model.usage == completion.usage
        assert server.requests[0]["model"] == "tracer" and server.requests[0]["temperature"] == 0.0
        assert server.requests[0]["messages"] == MESSAGES


def test_retries_absorb_injected_500s() -> None:
    with OpenAIServer("ok", fail_every=3) as server:
        model = _model(server, cache=False)
        results = asyncio.run(model.abatch([[{"role": "user", "content": f"q{i}"}] for i in range(10)]))
        assert all(not isinstance(r, Exception) and r.text == "ok" for r in results)
        assert model.stats["retries"] >= 3 and model.stats["failures"] == 0
        assert len(server.requests) == model.stats["attempts"]


def test_429_honours_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, *args):
        waits.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("agentracer.models.openai_http.asyncio.sleep", recording_sleep)
    with OpenAIServer("fine", fail_every=2, fail_status=429) as server:
        model = _model(server, cache=False, backoff_base=0.0)
        model.complete(MESSAGES)          # request 1 answers
        assert model.complete([{"role": "user", "content": "again"}]).text == "fine"  # 2 is a 429, 3 answers
        assert model.stats["retries"] == 1 and waits == [0.0]  # Retry-After: 0 from the server


def test_retry_after_header_sets_the_minimum_wait() -> None:
    import httpx
    from agentracer.models.openai_http import _retry_after

    model = OpenAIChatModel("http://x/v1", "m", backoff_base=0.01, backoff_max=10)
    response = httpx.Response(429, headers={"Retry-After": "2"})
    assert _retry_after(response) == 2.0
    assert model._delay(0, 2.0) >= 2.0
    assert model._delay(0, 100.0) >= 100  # the server's wait, however long: retrying sooner is refused again
    assert 0 <= model._delay(3, None) <= 0.08


class _Misbehaving(BaseHTTPRequestHandler):
    """``/slow``: a 200 whose body trickles in slower than any timeout allows in all; ``/wait``: a 429 asking for
    20 minutes; ``/text``: a /completions-shaped 200 (no message)."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/wait"):
            self.send_response(429)
            self.send_header("Retry-After", "1200")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "A|1"}}]} if self.path.startswith(
            "/slow") else {"choices": [{"text": "A|1", "finish_reason": "stop"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/slow"):
            for i in range(0, len(body), 4):
                self.wfile.write(body[i:i + 4])
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self.wfile.write(body)


@pytest.fixture()
def misbehaving():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_timeout_bounds_a_whole_answer_not_each_read(misbehaving: str) -> None:
    """A server trickling its body (4 bytes per 0.1 s, ~2 s in all) never waits out a per-read timeout."""
    model = OpenAIChatModel(f"{misbehaving}/slow/v1", "m", cache=False, timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(ModelError, match="no answer within 0.5s"):
        model.complete(MESSAGES)
    assert time.monotonic() - started < 1.5


def test_a_retry_after_beyond_the_longest_wait_fails_at_once_saying_so(misbehaving: str) -> None:
    model = OpenAIChatModel(f"{misbehaving}/wait/v1", "m", cache=False, max_retry_wait=60)
    with pytest.raises(ModelError, match=r"asks to wait 1200s before asking again \(Retry-After\), more than "
                                         r"max_retry_wait=60s: HTTP 429"):
        model.complete(MESSAGES)
    assert model.stats["attempts"] == 1 and model.stats["failures"] == 1


def test_a_choice_without_a_message_is_the_servers_failure_not_an_empty_answer(misbehaving: str) -> None:
    model = OpenAIChatModel(f"{misbehaving}/text/v1", "m", cache=False)
    with pytest.raises(ModelError, match="its first choice has no message object"):
        model.complete(MESSAGES)


class _Refusing(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": {"message": "model 'm' does not exist"}}).encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Redirecting(BaseHTTPRequestHandler):
    """Redirects every request (307) to the same path under ``/moved``, or without a Location for ``/nowhere``."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        if not self.path.startswith("/nowhere"):
            self.send_header("Location", f"/moved{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_redirect_says_where_to_and_the_base_url_to_give() -> None:
    """It said 'refused the request: HTTP 307: ' and nothing else."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"127.0.0.1:{server.server_address[1]}"
    try:
        model = OpenAIChatModel(f"http://bob:hunter2pw@{base}/v1", "m", cache=False)
        with pytest.raises(ModelError) as caught:
            model.complete(MESSAGES)
        nowhere = OpenAIChatModel(f"http://{base}/nowhere/v1", "m", cache=False)
        with pytest.raises(ModelError, match=r"redirected the request \(HTTP 307\) without saying where to"):
            nowhere.complete(MESSAGES)
    finally:
        server.shutdown()
        server.server_close()
    assert str(caught.value) == (f"http://{base}/v1/chat/completions redirected the request (HTTP 307) to "
                                 f"http://{base}/moved/v1/chat/completions; give its base URL instead, e.g. "
                                 f"openai:http://{base}/moved/v1@MODEL")
    assert model.stats["attempts"] == 1


def test_client_errors_fail_at_once_with_the_servers_message() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = OpenAIChatModel(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", cache=False)
        with pytest.raises(RequestRefused, match="HTTP 400: model 'm' does not exist"):  # (this request: a batch goes on)
            model.complete(MESSAGES)
        assert model.stats["attempts"] == 1
    finally:
        server.shutdown()
        server.server_close()


def test_server_down_fails_with_a_clear_error_and_the_breaker_stops_retrying() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAIChatModel(f"http://127.0.0.1:{port}/v1", "m", cache=False, backoff_base=0.01,
                            max_retries=3, breaker_threshold=4)
    with pytest.raises(ModelError, match="cannot reach"):
        model.complete(MESSAGES)
    assert model.stats["attempts"] == 4
    with pytest.raises(ModelError):
        model.complete(MESSAGES)
    assert model.stats["attempts"] == 5  # the breaker is open: one attempt, no retry cycle


def test_connects_that_time_out_open_the_breaker() -> None:
    """A server whose accept queue is full leaves connect() hanging: each ConnectTimeout was taken for a slow answer
    (its except clause came second), so a dead server cost every request a full retry cycle."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        port = listening.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:  # (fill the queue: later connects get no SYN-ACK and hang)
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            model = OpenAIChatModel(f"http://127.0.0.1:{port}/v1", "m", cache=False, timeout=0.3, max_retries=3,
                                    breaker_threshold=2, backoff_base=0.01)
            for _ in range(3):
                with pytest.raises(ModelError, match="cannot connect"):
                    model.complete(MESSAGES)
        finally:
            for filler in fillers:
                filler.close()
    assert model.stats["attempts"] == 2 + 1 + 1  # two failed connects open the breaker: one attempt each after


def test_timeout_is_retried_then_reported() -> None:
    with OpenAIServer("slow", latency=0.5) as server:
        model = _model(server, cache=False, timeout=0.1, max_retries=1)
        with pytest.raises(ModelError, match="no answer within 0.1s"):
            model.complete(MESSAGES)
        assert model.stats["attempts"] == 2


def test_concurrency_is_bounded() -> None:
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def responder(request):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return "ok"

    with OpenAIServer(responder) as server:
        model = _model(server, cache=False, max_concurrency=3)
        results = asyncio.run(model.abatch([[{"role": "user", "content": str(i)}] for i in range(12)]))
        assert all(r.text == "ok" for r in results)
    assert state["peak"] == 3


def test_a_request_cancelled_at_any_point_leaves_the_next_one_working() -> None:
    """A cancelled request (a counterfactual search cancels the steps past a flip) must not leave its client
    stuck: httpcore can keep a connection cancelled while connecting in its pool for good, and the next
    request on that one-connection client then waited the whole timeout (a CI hang, twice 300 s)."""

    async def cancel_after(model: OpenAIChatModel, yields: int) -> None:
        task = asyncio.ensure_future(model.acomplete(MESSAGES))
        for _ in range(yields):
            await asyncio.sleep(0)
        if task.done():  # (on a loaded machine the answer may be in by now: then there is nothing to cancel)
            return
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def scenario(server: OpenAIServer) -> list[int]:
        stuck = []
        for yields in range(40):  # every await point of a request, connecting included, gets a cancel
            model = _model(server, cache=False, max_concurrency=1, timeout=2.0, max_retries=0)
            await cancel_after(model, yields)
            try:
                await model.acomplete([{"role": "user", "content": "and now?"}])
            except ModelError:
                stuck.append(yields)
            await model.aclose()
        return stuck

    with OpenAIServer("ok", latency=0.01) as server:
        assert asyncio.run(scenario(server)) == []


def test_the_scripted_server_ignores_a_client_that_hangs_up_before_its_body() -> None:
    asked = []
    with OpenAIServer(lambda request: asked.append(request) or "ok") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 500\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)  # a cancelled client: headers sent, body never
            assert sock.recv(1024) == b""  # no answer, the connection closed
        assert _model(server, cache=False).complete(MESSAGES).text == "ok"
    assert asked == [{"model": "tracer", "messages": MESSAGES}]


def test_cache_makes_a_rerun_free_and_never_stores_the_key(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-do-not-store")
    with OpenAIServer("cached answer") as server:
        first = _model(server, cache_dir=str(tmp_path))
        assert first.complete(MESSAGES).text == "cached answer"
        second = _model(server, cache_dir=str(tmp_path))
        again = second.complete(MESSAGES)
        assert again.cached and again.text == "cached answer" and second.stats["cache_hits"] == 1
        assert len(server.requests) == 1
        assert server.headers[0].get("Authorization") == "Bearer sk-secret-do-not-store"
        different = second.complete(MESSAGES, temperature=0.7)
        assert not different.cached and len(server.requests) == 2
    stored = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert "cached answer" in stored and "sk-secret" not in stored
    assert "sk-secret" not in repr(second)
    assert len(ResponseCache(tmp_path)) == 2


def test_an_answer_that_quotes_the_key_is_cached_without_it(tmp_path, monkeypatch) -> None:
    """A server may echo what it was sent: the answer, live or cached, and the raw reply are redacted."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-do-not-store-1234")
    with OpenAIServer("<think>your header was Bearer sk-secret-do-not-store-1234</think><answer>A|1</answer>") as server:
        live = _model(server, cache_dir=str(tmp_path)).complete(MESSAGES)
        cached = _model(server, cache_dir=str(tmp_path)).complete(MESSAGES)
    assert "sk-secret-do-not-store-1234" not in live.text  # (the model's own key: live and cached answers read alike)
    stored = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert stored and "sk-secret-do-not-store" not in stored and "[REDACTED]" in stored
    assert cached.cached and "sk-secret" not in cached.text and cached.text.endswith("<answer>A|1</answer>")


@pytest.mark.parametrize(("usage", "kept"), [(None, False), ([1, 2], False), ({"prompt_tokens": "3"}, False),
                                           ({"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}, True),
                                           ({"completion_tokens": 1}, True)])
def test_a_cache_entry_with_odd_token_counts_is_read_or_asked_again_never_a_failure(tmp_path, usage, kept) -> None:
    """An entry whose usage was not exactly {prompt_tokens, completion_tokens} failed its request on every run."""
    with OpenAIServer(["first", "second"]) as server:
        _model(server, cache_dir=str(tmp_path)).complete(MESSAGES)
        (entry_file,) = tmp_path.rglob("*.json")
        entry = json.loads(entry_file.read_text())
        entry["usage"] = usage
        entry_file.write_text(json.dumps(entry))
        again = _model(server, cache_dir=str(tmp_path)).complete(MESSAGES)
    assert (again.cached, again.text) == ((True, "first") if kept else (False, "second"))
    if kept:
        assert again.usage.completion_tokens == 1 and again.usage.prompt_tokens == usage.get("prompt_tokens", 0)


def test_cache_can_be_switched_off_by_env(monkeypatch) -> None:
    monkeypatch.setenv("AGENTRACER_CACHE", "off")
    with OpenAIServer("x") as server:
        model = _model(server)
        model.complete(MESSAGES)
        model.complete(MESSAGES)
        assert model.cache is None and len(server.requests) == 2


def test_reasoning_content_is_folded_into_think() -> None:
    model = OpenAIChatModel("http://x/v1", "m", cache=False)
    completion = model._completion({"choices": [{"message": {"content": "<answer>A|1</answer>",
                                                             "reasoning_content": "because"}}]})
    assert completion.text == "<think>because</think><answer>A|1</answer>"
    with pytest.raises(ModelError, match="without choices"):
        model._completion(json.loads('{"choices": []}'))


def test_an_empty_answer_is_not_cached(tmp_path) -> None:
    with OpenAIServer(["", "<answer>A|1</answer>"]) as server:
        assert _model(server, cache_dir=str(tmp_path)).complete(MESSAGES).text == ""
        again = _model(server, cache_dir=str(tmp_path)).complete(MESSAGES)
        assert again.text == "<answer>A|1</answer>" and not again.cached and len(server.requests) == 2


def test_cache_read_off_asks_again_and_stores_the_new_answer(tmp_path) -> None:
    with OpenAIServer(["first", "second"]) as server:
        _model(server, cache_dir=str(tmp_path)).complete(MESSAGES)
        assert _model(server, cache_dir=str(tmp_path), cache_read=False).complete(MESSAGES).text == "second"
        assert _model(server, cache_dir=str(tmp_path)).complete(MESSAGES).text == "second"
        assert len(server.requests) == 2


def test_content_given_as_parts_is_joined() -> None:
    model = OpenAIChatModel("http://x/v1", "m", cache=False)
    parts = [{"type": "text", "text": "<answer>A|"}, {"type": "text", "text": "1</answer>"}]
    assert model._completion({"choices": [{"message": {"content": parts}}]}).text == "<answer>A|1</answer>"


class _Hanging(BaseHTTPRequestHandler):
    """Closes the first ``drops`` connections without an answer (a proxy's hiccup), then answers."""

    drops = 0
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if _Hanging.drops > 0:
            _Hanging.drops -= 1
            self.close_connection = True
            return
        body = json.dumps({"choices": [{"message": {"content": "fine"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_connections_dropped_mid_answer_are_retried_without_opening_the_breaker() -> None:
    _Hanging.drops = 3
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hanging)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = OpenAIChatModel(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", cache=False,
                                backoff_base=0.001, max_retries=3, breaker_threshold=2)
        results = [model.complete([{"role": "user", "content": f"q{i}"}]) for i in range(3)]
    finally:
        server.shutdown()
        server.server_close()
    assert [r.text for r in results] == ["fine"] * 3 and model.stats["failures"] == 0


def test_url_credentials_stay_out_of_names() -> None:
    model = OpenAIChatModel("http://bob:hunter2pw@127.0.0.1:9/v1", "m", cache=False)
    assert "hunter2pw" not in model.name + repr(model) and model.name == "openai:http://127.0.0.1:9/v1@m"


@pytest.mark.parametrize("spec", ["http://user:hunter2pw@127.0.0.1:9/v1", "http://tok3nsecret@127.0.0.1:9/v1",
                                  "http://user:hunter2pw@127.0.0.1:9"])
def test_url_credentials_without_a_model_are_refused_without_echoing_them(spec) -> None:
    """The @ of the credentials was taken for the model's: ('http://user:hunter2pw', '127.0.0.1:9/v1'), then a
    traceback or 'cannot reach http://tok3nsecret' that showed them."""
    for make in (lambda: parse_spec(spec), lambda: load_model(f"openai:{spec}", cache=False)):
        with pytest.raises(InputError, match="needs URL@MODEL") as caught:
            make()
        assert "hunter2pw" not in str(caught.value) and "tok3nsecret" not in str(caught.value)
    with pytest.raises(InputError) as caught:
        OpenAIChatModel(spec.replace("http", "ftp"), "m")
    assert "hunter2pw" not in str(caught.value) and "tok3nsecret" not in str(caught.value)


@pytest.mark.parametrize(("url", "problem"), [("http://127.0.0.1:99999/v1", "port 99999 is not in 1-65535"),
                                             ("http://bob:hunter2pw@127.0.0.1:0/v1", "port 0"),
                                             ("http://127.0.0.1:abc/v1", "Invalid port"),
                                             ("http://bob:hunter2pw@[::1/v1", "not a usable URL"),
                                             ("http:///v1", "names no host")])
def test_an_endpoint_no_request_can_reach_is_refused_when_the_model_is_made(url, problem) -> None:
    """A port out of range was a well-formed spec: locate crashed at the first request with an OverflowError in an
    ExceptionGroup (the model-list lookup caught neither)."""
    with pytest.raises(InputError, match=problem) as caught:
        load_model(f"openai:{url}@m", cache=False)
    assert "not a usable URL" in str(caught.value) and "hunter2pw" not in str(caught.value)


def test_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRACER_TIMEOUT", "2.5")
    assert OpenAIChatModel("http://x/v1", "m", cache=False).timeout == 2.5
    monkeypatch.setenv("AGENTRACER_TIMEOUT", "soon")
    with pytest.raises(Exception, match="AGENTRACER_TIMEOUT"):
        OpenAIChatModel("http://x/v1", "m", cache=False)


class _Streaming(BaseHTTPRequestHandler):
    """Answers every request with server-sent events, as a proxy forcing streaming would."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\ndata: [DONE]\n\n'
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_200_whose_body_is_not_a_json_object_fails_at_once_saying_what_it_was() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Streaming)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = OpenAIChatModel(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", cache=False,
                                backoff_base=0.001)
        with pytest.raises(ModelError, match="HTTP 200 with a stream"):
            model.complete(MESSAGES)
        assert model.stats["attempts"] == 1
    finally:
        server.shutdown()
        server.server_close()


class _EchoingRefusal(BaseHTTPRequestHandler):
    """Refuses every request with 401, echoing the request's Authorization header and path, as some proxies do."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": {"message": f"bad credentials {self.headers.get('Authorization')} for "
                                                f"{self.path}"}}).encode()
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_credentials_a_refusal_echoes_never_reach_the_error_in_any_form() -> None:
    """The Basic credentials made of a URL's user:password (base64) and a secret query parameter leaked in the error
    a server's 401 echoed."""
    import base64

    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingRefusal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        model = OpenAIChatModel(f"http://bob:hunter2pw@127.0.0.1:{port}/v1?api_key=q1w2e3r4t5", "m", cache=False,
                                max_retries=0, api_key="")
        with pytest.raises(Exception) as caught:
            model.complete([{"role": "user", "content": "hi"}])
    finally:
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert "401" in message or "credentials" in message, message
    for secret in ("hunter2pw", base64.b64encode(b"bob:hunter2pw").decode(), "q1w2e3r4t5"):
        assert secret not in message + model.name, secret


def test_a_token_given_as_the_urls_user_never_reaches_the_error_in_any_form() -> None:
    import base64

    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingRefusal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = OpenAIChatModel(f"http://tok3nsecret@127.0.0.1:{server.server_address[1]}/v1", "m", cache=False,
                                max_retries=0, api_key="")
        with pytest.raises(ModelError, match="HTTP 401") as caught:
            model.complete([{"role": "user", "content": "hi"}])
    finally:
        server.shutdown()
        server.server_close()
    for secret in ("tok3nsecret", base64.b64encode(b"tok3nsecret:").decode()):
        assert secret not in str(caught.value) + model.name, secret


def test_the_cache_redacts_by_value_and_keeps_what_the_api_names_like_a_secret(tmp_path) -> None:
    cache = ResponseCache(tmp_path)
    raw = {"choices": [{"logprobs": {"content": [{"token": "hello", "logprob": -0.1}]}}],
           "echo": {"headers": "Authorization: Bearer sk-abcdefghijklmnopqrstuvwx", "x-api-key": "q1w2e3r4t5y6u7",
                    "Authorization": "Basic Ym9iOnNlY3JldA=="}}
    cache.put("k" * 64, {"text": "hello", "raw": raw})
    entry = cache.get("k" * 64)
    assert entry is not None and entry["raw"]["choices"][0]["logprobs"]["content"][0]["token"] == "hello"
    assert "sk-abcdefghijklmnopqrstuvwx" not in json.dumps(entry) and entry["text"] == "hello"
    assert "q1w2e3r4t5y6u7" not in json.dumps(entry) and "Ym9iOnNlY3JldA" not in json.dumps(entry)


def test_an_answer_without_choices_counts_as_a_failed_request() -> None:
    from agentracer.testing.openai_server import OpenAIServer

    with OpenAIServer("ok") as server:
        server._completion = lambda number, request, message: {"id": "x", "object": "chat.completion"}  # no choices
        model = OpenAIChatModel(server.base_url, "m", cache=False)
        with pytest.raises(ModelError, match="answered without choices"):
            model.complete(MESSAGES)
    assert model.stats["failures"] == 1


def test_an_answer_quoting_the_urls_password_is_kept_without_it(tmp_path) -> None:
    """The endpoint's credentials are this model's secrets: an answer that repeats one (a proxy's echo, a model told
    it) reaches neither the caller nor the cache."""
    from agentracer.models.cache import ResponseCache
    from agentracer.testing.openai_server import OpenAIServer

    with OpenAIServer("the password is hunter2pass, as you said") as server:
        url = server.base_url.replace("http://", "http://bob:hunter2pass@")
        cache = ResponseCache(tmp_path / "cache")
        model = OpenAIChatModel(url, "m", cache=cache)
        answer = model.complete(MESSAGES).text
    assert "hunter2pass" not in answer and "[REDACTED]" in answer
    stored = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert stored and "hunter2pass" not in stored


def test_answers_read_the_same_live_and_cached_and_a_short_key_is_no_secret_of_them(tmp_path, monkeypatch) -> None:
    """A key like vLLM's EMPTY, or a one-letter password, is a word in answers: left there. A key-shaped string is
    redacted in the live answer as in the cached one (a resumed run's proposal must read as the first run's)."""
    from agentracer.models.cache import ResponseCache
    from agentracer.testing.openai_server import OpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    said = "EMPTY list: def f(x): return x + 1; token = 'sk-proj-abcdefghijklmnop1234'"
    with OpenAIServer(said) as server:
        url = server.base_url.replace("http://", "http://user:x@")
        live = OpenAIChatModel(url, "m", cache=ResponseCache(tmp_path)).complete(MESSAGES)
        cached = OpenAIChatModel(url, "m", cache=ResponseCache(tmp_path)).complete(MESSAGES)
    assert cached.cached and live.text == cached.text
    assert live.text.startswith("EMPTY list: def f(x): return x + 1; token = '") and "sk-proj" not in live.text


def test_the_models_window_is_read_from_the_servers_model_list_once_and_kept_for_when_it_is_down(tmp_path) -> None:
    """vLLM lists each model's ``max_model_len``: the backend reads it once (the tracer's prompt budget is fitted to
    it); with the server down later, the window it said before comes from the answer cache (prompts fitted alike hit
    the cache), and a window given in code wins."""
    with OpenAIServer("ok", model="tracer", context_window=8192) as server:
        model = _model(server, cache_dir=str(tmp_path))
        assert model.context_window == 8192 and model.context_window == 8192
        assert server.requests == []  # (a GET of the model list, no completion)
        other = _model(server, cache_dir=str(tmp_path), context_window=4096)
        assert other.context_window == 4096
        base_url = server.base_url
    down = load_model(f"openai:{base_url}@tracer", cache_dir=str(tmp_path))
    assert down.context_window == 8192
    assert load_model(f"openai:{base_url}@tracer", cache=False).context_window is None


def test_a_server_that_lists_no_window_or_another_model_gives_none() -> None:
    with OpenAIServer("ok", model="tracer", context_window=8192, lists_window=False) as server:
        assert _model(server, cache=False).context_window is None
    with OpenAIServer("ok", model="someone-else", context_window=8192) as server:
        assert _model(server, cache=False).context_window is None


def test_a_responder_that_raises_is_an_http_500_not_a_dropped_connection() -> None:
    with OpenAIServer(lambda request: 1 / 0) as server:
        with pytest.raises(ModelError, match=r"HTTP 500: the responder raised ZeroDivisionError"):
            _model(server, cache=False, max_retries=0).complete(MESSAGES)


def _serving(body: object) -> ThreadingHTTPServer:
    """A server answering every completion with HTTP 200 and ``body``."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("body", [{"choices": [{"message": "hello"}]}, {"choices": {"0": {}}},
                                  {"choices": "x"}])
def test_a_200_body_not_shaped_as_a_completion_is_the_servers_failure(body) -> None:
    """It raised AttributeError/KeyError: a traceback in locate, an 'other' error in eval, a task kept open in
    annotate, where a server failing for good stops the command."""
    server = _serving(body)
    try:
        model = OpenAIChatModel(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", cache=False)
        with pytest.raises(ModelError, match="malformed body|without choices"):
            model.complete(MESSAGES)
    finally:
        server.shutdown()


def test_token_counts_written_oddly_count_as_zero_and_the_answer_is_kept() -> None:
    server = _serving({"choices": [{"message": {"content": [{"type": "text", "text": 7}, "!"]}}],
                       "usage": {"prompt_tokens": "many", "completion_tokens": 3}})
    other = _serving({"choices": [{"message": {"content": "ok"}}], "usage": "lots"})
    try:
        answer = OpenAIChatModel(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", cache=False).complete(MESSAGES)
        assert answer.text == "7!" and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (0, 3)
        assert OpenAIChatModel(f"http://127.0.0.1:{other.server_address[1]}/v1", "m",
                               cache=False).complete(MESSAGES).text == "ok"
    finally:
        server.shutdown()
        other.shutdown()


def test_a_model_list_not_answered_gives_the_window_said_before_and_a_given_budget_asks_nothing(tmp_path) -> None:
    """A proxy's 503 (vLLM restarting behind it) gave no window, not the cached one: prompts fitted to the default
    missed the cache and went over the real window. With --max-prompt-tokens given, the list is not asked at all."""
    from agentracer.tracer import get_method

    gets = []

    class Handler(BaseHTTPRequestHandler):
        status = 200

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            gets.append(self.path)
            body = json.dumps({"data": [{"id": "m", "max_model_len": 4096}]} if Handler.status == 200 else
                              {"error": "upstream restarting"}).encode()
            self.send_response(Handler.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        assert OpenAIChatModel(url, "m", cache_dir=str(tmp_path)).context_window == 4096
        Handler.status = 503
        assert OpenAIChatModel(url, "m", cache_dir=str(tmp_path)).context_window == 4096
        asked = len(gets)
        method = get_method("agentracer", OpenAIChatModel(url, "m", cache_dir=str(tmp_path)), max_prompt_tokens=1000)
        assert method.max_prompt_tokens == 1000 and len(gets) == asked
    finally:
        server.shutdown()
