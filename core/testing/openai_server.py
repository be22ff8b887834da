"""A real OpenAI-compatible chat server on loopback, for offline tests, demos and benchmarks.

It speaks HTTP on 127.0.0.1 (``/v1/chat/completions`` with and without ``stream``, tool calls, and
``/v1/models``), answers from a *responder* — a fixed text, a list served in order, or a function of the
request — and can add latency and inject failures (HTTP 500 or 429 every k-th request). It is scripted: it
never runs a language model.

    with OpenAIServer(["first answer", "second answer"], latency=0.05) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")

Also a process: ``python -m agentracer.testing.openai_server --answer TEXT --port-file FILE``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | dict[str, Any]
Responder = Reply | Sequence[Reply] | Callable[[dict[str, Any]], Reply]


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog (5) drops connections when 32+ clients connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a cancelled request) is normal here; report anything else as usual."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Exhausted(Exception):
    pass


def _normalise(reply: Reply) -> dict[str, Any]:
    """A responder's reply as an assistant message dict (content and optional tool_calls)."""
    if isinstance(reply, str):
        return {"role": "assistant", "content": reply}
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
    calls = reply.get("tool_calls") or []
    if calls:
        message["tool_calls"] = [
            {
                "id": call.get("id") or f"call_{i}_{zlib.crc32(call['name'].encode()):08x}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call["arguments"] if isinstance(call.get("arguments"), str)
                    else json.dumps(call.get("arguments") or {}),
                },
            }
            for i, call in enumerate(calls)
        ]
    return message


class OpenAIServer:
    """A loopback OpenAI-compatible server running in a background thread (start/stop or ``with``)."""

    def __init__(
        self,
        responder: Responder = "ok",
        *,
        latency: float = 0.0,
        fail_every: int = 0,
        fail_status: int = 500,
        model: str = "scripted",
        host: str = "127.0.0.1",
        port: int = 0,
        context_window: int | None = None,
        lists_window: bool = True,
    ) -> None:
        """``context_window``: refuse a request whose prompt (counted as 4 characters a token) and ``max_tokens``
        exceed it with HTTP 400, in vLLM's words, and list it as the model's ``max_model_len`` (as vLLM does) unless
        ``lists_window`` is False (a server, or a proxy, that does not say)."""
        self.context_window = context_window
        self.lists_window = lists_window
        self.latency = latency
        self.fail_every = fail_every
        self.fail_status = fail_status
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._count = itertools.count(1)
        self._answer = self._make_answer(responder)
        self._server = _Server((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @staticmethod
    def _make_answer(responder: Responder) -> Callable[[dict[str, Any]], Reply]:
        if callable(responder):
            return responder
        if isinstance(responder, str | dict):
            return lambda _request: responder  # type: ignore[return-value]
        queue = iter(list(responder))
        lock = threading.Lock()

        def next_reply(_request: dict[str, Any]) -> Reply:
            with lock:
                try:
                    return next(queue)
                except StopIteration:
                    raise _Exhausted("the scripted server has no answers left") from None

        return next_reply

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.rstrip("/").endswith("/models"):
                    card: dict[str, Any] = {"id": server.model, "object": "model", "owned_by": "agentracer"}
                    if server.context_window is not None and server.lists_window:
                        card["max_model_len"] = server.context_window
                    self._json(200, {"object": "list", "data": [card]})
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the client hung up before sending its body (a cancelled request)
                    self.close_connection = True
                    return None
                try:
                    request = json.loads(body or b"{}")
                except json.JSONDecodeError:
                    return self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                with server._lock:
                    number = next(server._count)
                    server.requests.append(request)
                    server.headers.append(dict(self.headers))
                if server.latency:
                    time.sleep(server.latency)
                over = server._over_window(request)
                if over:
                    return self._json(400, {"object": "error", "message": over, "type": "BadRequestError",
                                            "code": 400})
                if server.fail_every and number % server.fail_every == 0:
                    extra = {"Retry-After": "0"} if server.fail_status == 429 else None
                    return self._json(server.fail_status, {"error": {
                        "message": "injected failure", "type": "server_error"}}, extra)
                try:
                    message = _normalise(server._answer(request))
                except _Exhausted as exc:
                    return self._json(500, {"error": {"message": str(exc), "type": "server_error"}})
                except Exception as exc:  # a responder's bug is the server's error, as a real server reports it
                    return self._json(500, {"error": {"message": f"the responder raised {type(exc).__name__}: {exc}",
                                                      "type": "server_error"}})
                if request.get("stream"):
                    return self._stream(number, request, message)
                self._json(200, server._completion(number, request, message))

            def _stream(self, number: int, request: dict[str, Any], message: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in server._chunks(number, request, message):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler

    def _over_window(self, request: dict[str, Any]) -> str:
        """vLLM's refusal of a request over the context window, or ''."""
        if self.context_window is None:
            return ""
        prompt = self._usage(request, {})["prompt_tokens"]
        asked = int(request.get("max_tokens") or request.get("max_completion_tokens") or 0)
        if prompt + asked <= self.context_window:
            return ""
        return (f"This model's maximum context length is {self.context_window} tokens. However, you requested "
                f"{prompt + asked} tokens ({prompt} in the messages, {asked} in the completion). Please reduce the "
                f"length of the messages or completion.")

    def _base(self, number: int, request: dict[str, Any], kind: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{number}", "object": kind, "created": int(time.time()),
                "model": request.get("model") or self.model}

    @staticmethod
    def _usage(request: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
        prompt = sum(len(str(m.get("content") or "")) for m in request.get("messages", [])) // 4 + 1
        completion = len(str(message.get("content") or "")) // 4 + 1
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion(self, number: int, request: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return {**self._base(number, request, "chat.completion"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": self._usage(request, message)}

    def _chunks(self, number: int, request: dict[str, Any], message: dict[str, Any]) -> list[dict[str, Any]]:
        base = self._base(number, request, "chat.completion.chunk")
        chunks = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                       "finish_reason": None}])]
        text = message.get("content") or ""
        for start in range(0, len(text), 16):
            chunks.append(dict(base, choices=[{"index": 0, "delta": {"content": text[start:start + 16]},
                                               "finish_reason": None}]))
        for i, call in enumerate(message.get("tool_calls") or []):
            chunks.append(dict(base, choices=[{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
                {"index": i, "id": call["id"], "type": "function", "function": call["function"]}]}}]))
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        chunks.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": finish}]))
        if (request.get("stream_options") or {}).get("include_usage"):
            chunks.append(dict(base, choices=[], usage=self._usage(request, message)))
        return chunks


def main(argv: list[str] | None = None) -> None:
    """Run the scripted server as a process until interrupted or ``--lifetime`` seconds pass."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answer", default="ok", help="the text every request gets")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before answering")
    parser.add_argument("--fail-every", type=int, default=0, help="every k-th request fails (0: never)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here")
    parser.add_argument("--lifetime", type=float, default=600.0, help="stop after this many seconds")
    args = parser.parse_args(argv)
    server = OpenAIServer(args.answer, latency=args.latency, fail_every=args.fail_every, port=args.port)
    server.start()
    if args.port_file:
        with open(args.port_file, "w") as fh:
            fh.write(str(server.port))
    print(f"serving {server.base_url}", flush=True)
    try:
        time.sleep(args.lifetime)
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()
