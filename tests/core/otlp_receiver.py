"""A loopback OTLP/HTTP traces receiver for the tests of tests/core: it parses each POST as OTLP protobuf."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class OtlpReceiver:
    """A loopback OTLP/HTTP traces receiver: parses each POST as ExportTraceServiceRequest protobuf."""

    def __init__(self, status: int = 200, *, accept: int | None = None) -> None:
        """``status`` answers each request; after ``accept`` requests (if given) every later one is refused (400)."""
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                path = self.path.split("?", 1)[0]
                if path != "/v1/traces" or self.headers["Content-Type"] != "application/x-protobuf":
                    self.send_error(415 if path == "/v1/traces" else 404)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)  # raises on anything that is not OTLP protobuf
                if accept is not None and len(receiver.requests) >= accept:
                    self.send_error(400, "quota used up")
                    return
                receiver.requests.append(request)
                receiver.headers.append(dict(self.headers))
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list:
        return [span for request in self.requests for rs in request.resource_spans
                for ss in rs.scope_spans for span in ss.spans]

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
