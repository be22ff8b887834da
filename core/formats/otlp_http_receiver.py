"""An OTLP/HTTP trace receiver that writes runs as trajectories: point an application's OpenTelemetry exporter at
it (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4318/v1/traces``), or a collector's ``otlphttp``
exporter, and every trace it receives becomes a trajectory in a store (see ``TraceAssembler`` for when).

Requests are OTLP ``ExportTraceServiceRequest`` bodies, protobuf (``application/x-protobuf``; decoding needs the
``otel`` extra) or JSON (``application/json``), gzip-compressed or not. A body that is not a valid request is
refused with 400 and nothing of it is kept. Spans with a status code OTLP does not define are kept with their
status unset; the response's ``partialSuccess`` says so (OTLP's way of warning a client), and so does the log.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import InputError
from .otlp_spans import Span, odd_status_note, spans_of_request
from .trace_assembly import TraceAssembler

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
MAX_BODY = 64 * 1024 * 1024


def _protobuf_document(body: bytes) -> dict[str, Any]:
    """A protobuf ``ExportTraceServiceRequest`` in the JSON mapping the span reader takes."""
    try:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    except ImportError:
        raise InputError("protobuf OTLP needs opentelemetry-proto: pip install 'agentracer[otel]' (or send JSON)",
                         where="Content-Type") from None
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise InputError(f"not an OTLP protobuf request ({exc})", where="body") from None
    return MessageToDict(request)


def _protobuf_response(warning: str | None = None) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    response = ExportTraceServiceResponse()
    if warning is not None:  # (OTLP: a warning goes in partial_success with no spans rejected)
        response.partial_success.error_message = warning
    return response.SerializeToString()


def _json_response(warning: str | None = None) -> bytes:
    return json.dumps({"partialSuccess": {"errorMessage": warning}} if warning is not None else {}).encode()


def decode_request(body: bytes, content_type: str, content_encoding: str = "") -> list[Span]:
    """The spans of one OTLP/HTTP request body; ``InputError`` when it is not one."""
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        body = _gunzipped(body)
    elif encoding not in ("", "identity"):
        raise InputError(f"unsupported content encoding {content_encoding!r}: gzip or none", where="Content-Encoding")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-protobuf":
        document: Any = _protobuf_document(body)
    elif kind == "application/json":
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"not valid JSON ({exc})", where="body") from None
    else:
        raise InputError(f"unsupported content type {content_type!r}: application/x-protobuf or application/json",
                         where="Content-Type")
    return list(spans_of_request(document, "request"))


MAX_GZIP_MEMBERS = 100  # each member is read from a copy of the rest of the body: many tiny ones cost its square


def _gunzipped(body: bytes) -> bytes:
    """A gzip body decompressed, to at most ``MAX_BODY`` bytes (a small body must not expand into gigabytes);
    ``InputError`` when it is not gzip, is cut short, expands further, or has bytes after its data that are not
    gzip. Several gzip members one after another are gzip too (as ``gzip -c a b`` writes): their data is joined."""
    parts: list[bytes] = []
    size, rest = 0, body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # (gzip's header and trailer)
        try:
            out = inflater.decompress(rest, MAX_BODY + 1 - size)  # (at least 1: 0 would mean no limit)
        except zlib.error as exc:
            if parts:
                raise InputError(f"not gzip: the {len(rest)} bytes after its compressed data are not another gzip "
                                 f"member ({exc})", where="body") from None
            raise InputError(f"not gzip ({exc})", where="body") from None
        size += len(out)
        if size > MAX_BODY or inflater.unconsumed_tail:
            raise InputError(f"the body expands to more than {MAX_BODY} bytes", where="body")
        if not inflater.eof:
            raise InputError("not gzip (the body ends before its compressed data does)", where="body")
        parts.append(out)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)
        if len(parts) == MAX_GZIP_MEMBERS:
            raise InputError(f"a gzip body of more than {MAX_GZIP_MEMBERS} members (as one file compressed in parts); "
                             "a client sends one", where="body")


def _content_length(header: str | None) -> int:
    """A request's body length: a count of bytes no larger than ``MAX_BODY`` (``InputError`` otherwise)."""
    text = (header or "0").strip()
    if not text.isdigit():
        raise InputError(f"{text[:40]!r} is not a byte count", where="Content-Length")
    if int(text) > MAX_BODY:
        raise InputError(f"a body of {text} bytes is over {MAX_BODY}", where="Content-Length")
    return int(text)


class TraceReceiver:
    """An OTLP/HTTP receiver on ``host``:``port`` (0: any free port) writing runs to ``store``; ``start()`` serves in
    a thread, ``serve()`` in the caller's; ``stop()`` stops serving and writes the traces still open.

    ``timeout_s`` bounds how long a client may leave its request unsent, and how long ``stop()`` waits for requests
    still being read; one that comes in after the open traces were written is refused (503), never answered 200 and
    lost."""

    def __init__(self, store: Any, *, host: str = "127.0.0.1", port: int = 4318, idle_s: float | None = 30.0,
                 timeout_s: float = 10.0) -> None:
        self.traces = TraceAssembler(store, idle_s=idle_s)
        self.refused = 0
        self.timeout_s = timeout_s
        self._requests = threading.Condition()  # guards the three below
        self._in_flight = 0  # requests being handled
        self._adding = 0  # requests handing their spans to the assembler
        self._accepting = True  # false once the final flush is due: later requests are refused
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._idle_s = idle_s
        self._thread: threading.Thread | None = None
        self._serving = False  # serve_forever has been (or is about to be) entered: shutdown() may wait for it
        self._closed = False
        self._state = threading.Lock()  # guards _serving and _closed; held while closing (stop() waits for it)
        self._quiet = threading.Event()  # set when serving ends: stops the idle ticker

    @property
    def url(self) -> str:
        """Where to send traces (the full OTLP/HTTP traces URL)."""
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}{TRACES_PATH}"

    def start(self) -> TraceReceiver:
        self._begin()
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def serve(self) -> None:
        """Serve until ``stop()`` (from another thread) or an interrupt; then write the traces still open."""
        self._begin()
        try:
            self._server.serve_forever()
        finally:
            self._close()

    def stop(self) -> None:
        """Stop serving (``start()``'s thread or a ``serve()`` elsewhere) and write the traces still open."""
        with self._state:
            serving = self._serving and not self._closed
        if serving:
            self._server.shutdown()  # returns once serve_forever has
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close()

    def _begin(self) -> None:
        with self._state:
            if self._closed:
                raise RuntimeError("this receiver has been stopped")
            if self._serving:
                raise RuntimeError("this receiver is serving already")
            self._serving = True
        if self._idle_s is not None:  # a trace that goes quiet is written after idle_s, whether or not more requests come
            threading.Thread(target=self._tick, args=(max(0.05, min(1.0, self._idle_s / 2)),), name="otlp-idle",
                             daemon=True).start()

    def _tick(self, every: float) -> None:
        while not self._quiet.wait(every):
            self.traces.add(())

    def _close(self) -> None:
        """Once (``serve()``'s end and ``stop()`` may both come here): the socket closed, open traces written."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            self._quiet.set()
            with self._requests:  # requests being read finish first (their spans are in the flush), within timeout_s
                self._requests.wait_for(lambda: self._in_flight == 0, timeout=self.timeout_s)
                self._accepting = False
                self._requests.wait_for(lambda: self._adding == 0)
            self._server.server_close()
            self.traces.flush()

    def _take(self, spans: list[Span]) -> bool:
        """Hand a request's spans to the assembler; False (and nothing kept) once the receiver has closed."""
        with self._requests:
            if not self._accepting:
                return False
            self._adding += 1
        try:
            self.traces.add((span, span.parent_id is None) for span in spans)
        finally:
            with self._requests:
                self._adding -= 1
                self._requests.notify_all()
        return True

    def __enter__(self) -> TraceReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = receiver.timeout_s  # (on the socket: a client that stops sending does not hold a thread)

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                with receiver._requests:
                    receiver._in_flight += 1
                try:
                    self._post()
                finally:
                    with receiver._requests:
                        receiver._in_flight -= 1
                        receiver._requests.notify_all()

            def _refuse(self, status: int, message: str) -> None:
                receiver.refused += 1
                self.close_connection = True
                try:
                    self._reply(status, json.dumps({"error": message}).encode(), "application/json")
                except OSError:  # the client has gone
                    pass

            def _post(self) -> None:
                if self.path.split("?")[0] != TRACES_PATH:
                    self._reply(404, b'{"error": "traces go to /v1/traces"}', "application/json")
                    return
                content_type = self.headers.get("Content-Type", "")
                try:
                    length = _content_length(self.headers.get("Content-Length"))
                except InputError as exc:  # too large to read: refused (413) and the connection closed after
                    receiver.refused += 1
                    self.close_connection = True
                    self._reply(413 if "over" in str(exc) else 400, json.dumps({"error": str(exc)}).encode(),
                                "application/json")
                    return
                try:
                    body = self.rfile.read(length)
                except OSError:  # (a timeout: the client sent less than it said, and waited)
                    self._refuse(408, f"the body did not arrive within {receiver.timeout_s} s")
                    return
                if len(body) < length:
                    self._refuse(400, f"the body ended after {len(body)} of its {length} bytes")
                    return
                try:
                    spans = decode_request(body, content_type, self.headers.get("Content-Encoding", ""))
                except InputError as exc:
                    receiver.refused += 1
                    self._reply(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                    return
                if not receiver._take(spans):
                    self._refuse(503, "the receiver is shutting down; send again to another one")
                    return
                warning = odd_status_note(spans)
                if warning is not None:
                    log.warning("agentracer: a request from %s: %s", self.client_address[0], warning)
                if content_type.split(";")[0].strip().lower() == "application/x-protobuf":
                    self._reply(200, _protobuf_response(warning), "application/x-protobuf")
                else:
                    self._reply(200, _json_response(warning), "application/json")

        return Handler
