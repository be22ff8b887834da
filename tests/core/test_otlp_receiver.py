"""`agentracer collect` / ``TraceReceiver``: an OTLP/HTTP endpoint the OpenTelemetry SDK's own exporter sends to
(protobuf), JSON posted by hand, bad bodies refused, idle and open traces written, the CLI as a real process."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from adding_team import traced_adding_team
from agentracer.formats.openinference import otlp_json_request, trajectory_spans
from agentracer.formats.otlp_http_receiver import TraceReceiver
from agentracer.schema import Trajectory
from agentracer.store import open_store
from google.protobuf.json_format import ParseDict
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


@pytest.fixture(scope="module")
def recorded() -> Trajectory:
    return traced_adding_team().run("add 2 and 3")


def _team_run_through_the_sdk(endpoint: str) -> None:
    """A two-agent run traced by hand with the SDK, sent by its OTLP/HTTP exporter in batches (protobuf, gzip)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "crew"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, compression=None),
                                                   max_export_batch_size=2))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("run", attributes={"openinference.span.kind": "CHAIN", "input.value": "Sum 1+1"}):
        for agent, text in (("solver", "1 + 1 = 3"), ("checker", "Correct.")):
            with tracer.start_as_current_span(agent, attributes={"openinference.span.kind": "AGENT",
                                                                 "agent.name": agent, "output.value": text}):
                pass
    provider.shutdown()  # flushes the batches


def test_the_sdks_otlp_exporter_sends_a_run_that_becomes_a_trajectory(tmp_path: Path) -> None:
    with TraceReceiver(tmp_path / "runs.jsonl", port=0) as receiver:
        _team_run_through_the_sdk(receiver.url)
        [run] = list(open_store(tmp_path / "runs.jsonl"))  # written when the root arrived, before stopping
    assert [(s.agent, s.content) for s in run.steps] == [("user", "Sum 1+1"), ("solver", "1 + 1 = 3"),
                                                        ("checker", "Correct.")]
    assert run.framework == "crew" and receiver.traces.collected == [run.id]


def test_json_bodies_gzip_and_our_own_spans_come_back_equal(recorded: Trajectory, tmp_path: Path) -> None:
    body = json.dumps(otlp_json_request(trajectory_spans(recorded))).encode()
    with TraceReceiver(tmp_path / "runs.db", port=0) as receiver:
        plain = httpx.post(receiver.url, content=body, headers={"Content-Type": "application/json"})
        again = recorded.model_copy(update={"id": "again"})
        zipped = httpx.post(receiver.url, content=gzip.compress(json.dumps(
            otlp_json_request(trajectory_spans(again))).encode()),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert plain.status_code == zipped.status_code == 200 and plain.json() == {}
    stored = open_store(tmp_path / "runs.db")
    assert stored.get(recorded.id) == recorded and stored.get("again") == again


def test_bad_bodies_are_refused_and_nothing_of_them_is_kept(tmp_path: Path) -> None:
    with TraceReceiver(tmp_path / "runs.jsonl", port=0) as receiver:
        cases = [
            (b"{not json", "application/json", 400, "not valid JSON"),
            (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json", 400,
             "spans[0].traceId"),
            (b"\x0a\xff\xff", "application/x-protobuf", 400, "protobuf"),
            (b"{}", "text/plain", 400, "unsupported content type"),
        ]
        for body, kind, status, message in cases:
            reply = httpx.post(receiver.url, content=body, headers={"Content-Type": kind})
            assert reply.status_code == status and message in reply.json()["error"], (body, reply.text)
        assert httpx.post(receiver.url.replace("/v1/traces", "/v1/logs"), content=b"{}").status_code == 404
        assert receiver.refused == 4
    assert len(open_store(tmp_path / "runs.jsonl")) == 0


def test_a_trace_whose_root_never_comes_is_written_when_idle_or_at_stop(tmp_path: Path) -> None:
    def orphan(trace: str, text: str) -> bytes:  # an agent span whose parent lives in another process
        return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": trace * 32, "spanId": "1" * 16, "parentSpanId": "2" * 16, "name": "worker",
            "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "AGENT"}},
                           {"key": "agent.name", "value": {"stringValue": "worker"}},
                           {"key": "output.value", "value": {"stringValue": text}}]}]}]}]}).encode()

    headers = {"Content-Type": "application/json"}
    with TraceReceiver(tmp_path / "runs.jsonl", port=0, idle_s=0.2) as receiver:
        httpx.post(receiver.url, content=orphan("a", "first"), headers=headers)
        assert receiver.traces.open_traces == 1
        time.sleep(0.3)
        httpx.post(receiver.url, content=orphan("b", "second"), headers=headers)  # "a" has been idle long enough
        assert [t.steps[0].content for t in open_store(tmp_path / "runs.jsonl")] == ["first"]
    assert [t.steps[0].content for t in open_store(tmp_path / "runs.jsonl")] == ["first", "second"]  # at stop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_collects_until_interrupted(tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "runs.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "agentracer.cli", "collect", "-o", str(out), "--port",
                                str(port)], stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stderr.readline()
        assert f"http://127.0.0.1:{port}/v1/traces" in banner
        _team_run_through_the_sdk(f"http://127.0.0.1:{port}/v1/traces")
        process.send_signal(signal.SIGTERM if os.name == "posix" else signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "collected 1 run(s)" in err
    assert [s.agent for s in next(iter(open_store(out))).steps] == ["user", "solver", "checker"]


def test_cli_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "agentracer.cli", "collect", "-o", str(tmp_path / "r.jsonl"),
                                 "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_content_length_is_refused(tmp_path: Path) -> None:
    with TraceReceiver(tmp_path / "runs.jsonl", port=0) as receiver:
        host, port = receiver.url.split("//")[1].split("/")[0].split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.putrequest("POST", "/v1/traces")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", "lots")
        connection.endheaders(b"{}")
        reply = connection.getresponse()
        assert reply.status == 400 and "Content-Length" in json.loads(reply.read())["error"]
        assert receiver.refused == 1


def _span(trace: str, span: str, parent: str | None, text: str, kind: str = "AGENT") -> dict:
    item = {"traceId": trace * 32, "spanId": span * 16, "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": kind}},
                           {"key": "agent.name", "value": {"stringValue": "worker"}},
                           {"key": "output.value", "value": {"stringValue": text}}]}
    if parent:
        item["parentSpanId"] = parent * 16
    return item


def _body(*spans: dict) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}).encode()


def test_bodies_that_expand_break_or_use_another_encoding_are_refused(tmp_path: Path) -> None:
    """A corrupt gzip body dropped the connection with a traceback; a 200 KB one expanded to 200 MB in memory; deflate
    was called 'not valid JSON'."""
    from agentracer.formats import otlp_http_receiver

    json_headers = {"Content-Type": "application/json"}
    with TraceReceiver(tmp_path / "runs.jsonl", port=0) as receiver:
        good = gzip.compress(_body(_span("a", "1", None, "x")))
        corrupt = good[:10] + b"\x00" * 8 + good[18:]
        reply = httpx.post(receiver.url, content=corrupt, headers={**json_headers, "Content-Encoding": "gzip"})
        assert reply.status_code == 400 and "not gzip" in reply.json()["error"]
        reply = httpx.post(receiver.url, content=b"x", headers={**json_headers, "Content-Encoding": "deflate"})
        assert reply.status_code == 400 and "unsupported content encoding" in reply.json()["error"]
        original = otlp_http_receiver.MAX_BODY
        otlp_http_receiver.MAX_BODY = 1000
        try:
            bomb = gzip.compress(b" " * 100_000)
            reply = httpx.post(receiver.url, content=bomb, headers={**json_headers, "Content-Encoding": "gzip"})
            assert reply.status_code == 400 and "expands to more than" in reply.json()["error"]
            reply = httpx.post(receiver.url, content=b"{" + b" " * 2000 + b"}", headers=json_headers)
            assert reply.status_code == 413
        finally:
            otlp_http_receiver.MAX_BODY = original
        reply = httpx.post(receiver.url, content=good, headers={**json_headers, "Content-Encoding": "gzip"})
        assert reply.status_code == 200  # the receiver goes on


def test_resent_spans_count_once_and_late_ones_are_said_once(tmp_path: Path, caplog) -> None:
    """An exporter resends a batch after a timeout: each agent turn became several steps. A span arriving after its
    trace's root was written failed with DuplicateIdError and a traceback per span."""
    headers = {"Content-Type": "application/json"}
    child = _span("c", "2", "1", "turn")
    with TraceReceiver(tmp_path / "runs.jsonl", port=0) as receiver:
        for _ in range(3):
            httpx.post(receiver.url, content=_body(child), headers=headers)
        httpx.post(receiver.url, content=_body(_span("c", "1", None, "done", kind="CHAIN")), headers=headers)
        for late in ("3", "4"):
            httpx.post(receiver.url, content=_body(_span("c", late, "1", "late")), headers=headers)
        assert receiver.traces.late_spans == 2
    [run] = list(open_store(tmp_path / "runs.jsonl"))
    assert [s.content for s in run.steps if s.agent == "worker"] == ["turn"]
    warned = [r for r in caplog.records if "after its run was written" in r.getMessage()]
    assert len(warned) == 1 and not any(r.exc_info for r in caplog.records)


def test_a_quiet_trace_is_written_after_idle_with_no_more_requests(tmp_path: Path) -> None:
    with TraceReceiver(tmp_path / "runs.jsonl", port=0, idle_s=0.2) as receiver:
        httpx.post(receiver.url, content=_body(_span("d", "1", "9", "orphan")), headers={"Content-Type":
                                                                                           "application/json"})
        deadline = time.monotonic() + 5
        while receiver.traces.open_traces and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [t.steps[0].content for t in open_store(tmp_path / "runs.jsonl")] == ["orphan"]


def test_stop_ends_a_serve_running_in_another_thread_and_writes_its_open_traces(tmp_path: Path) -> None:
    """``stop()`` returned at once when ``serve()`` (not ``start()``) was serving: serving went on, nothing was
    flushed. A receiver never started left an idle ticker thread running."""
    import threading

    before = {t.name for t in threading.enumerate()}
    idle_only = TraceReceiver(tmp_path / "unused.jsonl", port=0, idle_s=0.2)
    assert "otlp-idle" not in {t.name for t in threading.enumerate()} - before
    idle_only.stop()

    receiver = TraceReceiver(tmp_path / "runs.jsonl", port=0, idle_s=None)
    serving = threading.Thread(target=receiver.serve, daemon=True)
    serving.start()
    reply = httpx.post(receiver.url, content=_body(_span("e", "1", "9", "open")), headers={"Content-Type":
                                                                                             "application/json"})
    assert reply.status_code == 200
    receiver.stop()
    serving.join(5)
    assert not serving.is_alive()
    assert [t.steps[0].content for t in open_store(tmp_path / "runs.jsonl")] == ["open"]


def _send_partly(receiver: TraceReceiver, body: bytes, sent: int) -> socket.socket:
    """A connection that has sent the headers of a POST of ``body`` and its first ``sent`` bytes."""
    client = socket.create_connection(("127.0.0.1", int(receiver.url.split(":")[2].split("/")[0])), timeout=5)
    client.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                   % len(body) + body[:sent])
    return client


def _until(condition, seconds: float = 20.0) -> None:  # noqa: ANN001
    """Wait (polling) until ``condition()`` holds; fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the receiver never got there"
        time.sleep(0.01)


def test_a_request_being_read_at_stop_is_in_the_final_flush_or_refused(tmp_path: Path) -> None:
    """A request still arriving when ``stop()`` wrote the open traces was answered 200 and its spans were lost."""
    import threading

    body = _body(_span("f", "1", "9", "in flight"))
    receiver = TraceReceiver(tmp_path / "runs.jsonl", port=0, idle_s=None).start()
    client = _send_partly(receiver, body, 10)
    _until(lambda: receiver._in_flight == 1)  # (its handler reads it: a loaded machine may take a while)
    stopping = threading.Thread(target=receiver.stop)
    stopping.start()
    _until(lambda: receiver._closed)  # (stop() is waiting for it)
    client.sendall(body[10:])
    assert client.recv(100).startswith(b"HTTP/1.0 200")
    stopping.join(5)
    assert [t.steps[0].content for t in open_store(tmp_path / "runs.jsonl")] == ["in flight"]

    # one still dripping in after stop() stopped waiting (timeout_s) is refused, not answered 200
    receiver = TraceReceiver(tmp_path / "late.jsonl", port=0, idle_s=None, timeout_s=0.5).start()
    client = _send_partly(receiver, body, 10)
    _until(lambda: receiver._in_flight == 1)
    stopping = threading.Thread(target=receiver.stop)
    stopping.start()
    for i in range(10, 20):  # a byte at a time, each within the socket's timeout
        client.sendall(body[i:i + 1])
        time.sleep(0.1)
    stopping.join(5)
    assert not stopping.is_alive()
    client.sendall(body[20:])
    assert client.recv(100).startswith(b"HTTP/1.0 503")
    assert len(open_store(tmp_path / "late.jsonl")) == 0 and receiver.refused == 1


def test_a_client_that_stops_sending_its_body_is_answered_and_holds_no_thread(tmp_path: Path) -> None:
    body = _body(_span("f", "1", "9", "never all sent"))
    with TraceReceiver(tmp_path / "runs.jsonl", port=0, timeout_s=0.3) as receiver:
        client = _send_partly(receiver, body, 10)
        assert client.recv(100).startswith(b"HTTP/1.0 408")
        client = _send_partly(receiver, body, 10)
        client.shutdown(socket.SHUT_WR)  # a body shorter than its Content-Length
        assert client.recv(100).startswith(b"HTTP/1.0 400")
        assert receiver.refused == 2


def test_our_own_run_split_over_requests_root_first_is_stored_whole(recorded: Trajectory, tmp_path: Path) -> None:
    """A batch processor splitting an export (root first, as agentracer sends it) made the receiver write the run
    when its root came: refused as incomplete, and the rest dropped as late."""
    spans = trajectory_spans(recorded)
    older = recorded.model_copy(update={"id": "older"})  # exported before spans were counted: its steps are
    older_spans = trajectory_spans(older)
    older_spans[0].attributes.pop("agentracer.span.count", None)
    headers = {"Content-Type": "application/json"}
    with TraceReceiver(tmp_path / "runs.jsonl", port=0, idle_s=None) as receiver:
        for part in (spans[:2], spans[2:4], spans[4:]):
            assert httpx.post(receiver.url, content=json.dumps(otlp_json_request(part)), headers=headers).is_success
        for part in (older_spans[:2], older_spans[2:]):
            assert httpx.post(receiver.url, content=json.dumps(otlp_json_request(part)), headers=headers).is_success
        assert receiver.traces.collected == [recorded.id, "older"]  # written once whole, before stopping
        assert receiver.traces.late_spans == 0
    stored = open_store(tmp_path / "runs.jsonl")
    assert stored.get(recorded.id) == recorded and stored.get("older") == older


def test_a_trace_that_could_not_be_written_does_not_make_later_spans_late(tmp_path: Path) -> None:
    from agentracer.formats.otlp_spans import spans_of_request
    from agentracer.formats.trace_assembly import TraceAssembler

    def spans(*items: dict) -> list:
        return [(s, s.parent_id is None) for s in spans_of_request(json.loads(_body(*items)), "test")]

    root = _span("a", "1", None, "done", kind="CHAIN")
    root["attributes"].append({"key": "agentracer.trajectory.id", "value": {"stringValue": "r"}})
    assembler = TraceAssembler(tmp_path / "runs.jsonl")
    bad = _span("a", "2", "1", "turn")
    bad["attributes"] += [{"key": "agentracer.step.index", "value": {"intValue": "0"}},
                          {"key": "agentracer.step.kind", "value": {"stringValue": "not-a-kind"}}]
    assert assembler.add(spans(root, bad)) is False
    assembler.add(spans(_span("a", "3", "1", "later")))
    assert assembler.late_spans == 0 and assembler.open_traces == 1


def test_a_span_with_a_status_code_otlp_does_not_define_is_kept_and_the_reply_warns(tmp_path: Path, caplog) -> None:
    """One span with an unknown status code made the receiver refuse the whole request (400): its run was lost."""
    odd = {**_span("d", "1", None, "done"), "status": {"code": "STATUS_CODE_WEIRD"}}
    with TraceReceiver(tmp_path / "runs.jsonl", port=0) as receiver:
        reply = httpx.post(receiver.url, content=_body(odd), headers={"Content-Type": "application/json"})
        assert reply.status_code == 200, reply.text
        assert "does not define" in reply.json()["partialSuccess"]["errorMessage"]
        proto = ParseDict(json.loads(_body({**_span("e", "1", None, "also done"), "status": {"code": 7}})),
                          ExportTraceServiceRequest())
        reply = httpx.post(receiver.url, content=proto.SerializeToString(),
                           headers={"Content-Type": "application/x-protobuf"})
        assert reply.status_code == 200
        response = ExportTraceServiceResponse.FromString(reply.content)
        assert "(7)" in response.partial_success.error_message and response.partial_success.rejected_spans == 0
        plain = httpx.post(receiver.url, content=_body(_span("f", "1", None, "fine")),
                           headers={"Content-Type": "application/json"})
        assert plain.json() == {}
    assert sorted(t.steps[0].content for t in open_store(tmp_path / "runs.jsonl")) == ["also done", "done", "fine"]
    assert sum("does not define" in r.getMessage() for r in caplog.records) == 2 and receiver.refused == 0


def test_a_gzip_body_with_junk_after_it_is_refused_and_one_of_several_members_is_read_whole(tmp_path: Path) -> None:
    """Bytes after a gzip body's compressed data were ignored: junk was accepted, and a body of two gzip members (as
    ``gzip -c a b`` writes) was cut to its first."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    body = _body(_span("a", "1", None, "whole"))
    with TraceReceiver(tmp_path / "runs.jsonl", port=0) as receiver:
        for junk in (b"junk", b"\x00" * 8, gzip.compress(b"{}")[:12]):
            reply = httpx.post(receiver.url, content=gzip.compress(body) + junk, headers=headers)
            assert reply.status_code == 400 and "not gzip" in reply.json()["error"], (junk, reply.text)
        members = gzip.compress(body[:20]) + gzip.compress(body[20:])
        reply = httpx.post(receiver.url, content=members, headers=headers)
        assert reply.status_code == 200, reply.text
        assert receiver.refused == 3
    assert [t.steps[0].content for t in open_store(tmp_path / "runs.jsonl")] == ["whole"]



def test_a_gzip_body_of_countless_members_is_refused_not_unpacked_one_copy_at_a_time() -> None:
    from agentracer.errors import InputError
    from agentracer.formats.otlp_http_receiver import MAX_GZIP_MEMBERS, decode_request

    body = _body(_span("a", "1", None, "whole"))
    cut = [len(body) * k // MAX_GZIP_MEMBERS for k in range(MAX_GZIP_MEMBERS + 1)]
    members = b"".join(gzip.compress(body[a:b]) for a, b in zip(cut, cut[1:], strict=False))
    assert [span.name for span in decode_request(members, "application/json", "gzip")] == \
        [span.name for span in decode_request(body, "application/json")]
    with pytest.raises(InputError, match=f"more than {MAX_GZIP_MEMBERS} members"):
        decode_request(gzip.compress(b"") * 200_000, "application/json", "gzip")  # (was minutes of one thread)
