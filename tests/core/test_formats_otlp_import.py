"""OTLP/JSON traces back into trajectories: our own exports come back equal (hex ids from the file, base64 ids from
protobuf's JSON mapping of what the SDK's OTLP exporter sends), and spans another instrumentation wrote with the
real OpenTelemetry SDK become a trajectory the tracer reads."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from adding_team import traced_adding_team
from agentracer.errors import InputError
from agentracer.formats.openinference import export_otlp_http, write_otlp_json
from agentracer.formats.otel_collect import TrajectoryExporter
from agentracer.formats.otlp_import import iter_otlp
from agentracer.formats.whowhen import iter_whowhen_dir
from agentracer.schema import Step, Trajectory, Verdict
from agentracer.store import open_store
from agentracer.tracer import locate
from cli_invoke import run_cli
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from otlp_receiver import OtlpReceiver

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"


def imported(path: Path) -> list[Trajectory]:
    out = []
    for where, item in iter_otlp(path):
        assert isinstance(item, Trajectory), (where, item)
        out.append(item)
    return out


@pytest.fixture(scope="module")
def runs() -> list[Trajectory]:
    """A recorded run with a tool call and its result, model calls, a label, and a replay of it."""
    team = traced_adding_team()
    original = team.run("add 2 and 3", ground_truth={"sum": 5})
    original.labels.append(Verdict(agent="coder", step=2, reason="used the wrong numbers", source="counterfactual",
                                   metadata={"attempts": 2}))
    replayed = team.replay(original, step=1, action="thinking differently")
    return [original, replayed]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("binary.json", b"PAR1\x15\x04\xff\xfe\x00", "not UTF-8 text"),
    ("traces.jsonl", b'{"resourceSpans": []}\n\xff\xfe\n', "not UTF-8 text"),
    ("empty.json", b"[]", "holds no OTLP request"),
])
def test_a_file_without_spans_is_one_line_naming_it(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    code, _, err = run_cli("import", "openinference", str(tmp_path / name), "-o", str(tmp_path / "out.jsonl"))
    assert code == 2 and "Traceback" not in err
    assert f"{tmp_path / name}: {message}" in err


@pytest.mark.parametrize("suffix", ["json", "jsonl"])
def test_every_whowhen_run_comes_back_equal(tmp_path: Path, suffix: str) -> None:
    runs = [t for _, t in iter_whowhen_dir(DATA)]
    assert len(runs) > 100
    write_otlp_json(runs, tmp_path / f"spans.{suffix}")
    assert imported(tmp_path / f"spans.{suffix}") == runs


def test_a_recorded_run_and_its_replay_come_back_equal(runs: list[Trajectory], tmp_path: Path) -> None:
    original, replayed = runs
    assert any(s.tool_calls and s.tool_results for s in original.steps) or any(
        s.tool_results for s in original.steps)
    assert replayed.replay is not None and any(s.replaced for s in replayed.steps)
    write_otlp_json(runs, tmp_path / "spans.json")
    assert imported(tmp_path / "spans.json") == runs


def test_model_calls_come_back_in_their_steps_order_not_their_start_order(runs: list[Trajectory],
                                                                           tmp_path: Path) -> None:
    """A step lists its agent's own calls before calls no step followed (a selector's, which started first)."""
    run = runs[0].model_copy(deep=True)
    step = next(s for s in run.steps if s.model_calls)
    first = step.model_calls[0]
    earlier = first.model_copy(update={"id": "selector-call", "agent": "manager", "produces_step": False,
                                       "started_at": (first.started_at or 0) - 1.0})
    step.model_calls.append(earlier)
    run.unattached_calls = [earlier.model_copy(update={"id": "late"}), earlier.model_copy(update={"id": "early"})]
    run.unattached_calls[1].started_at = (earlier.started_at or 0) - 5.0
    step.model_calls.append(first.model_copy(update={"id": "of-no-step", "step": None}))  # listed, yet of no step
    write_otlp_json([run], tmp_path / "spans.json")
    (back,) = imported(tmp_path / "spans.json")
    assert back == run


def test_what_the_sdks_otlp_exporter_sends_comes_back_equal(runs: list[Trajectory], tmp_path: Path) -> None:
    """The protobuf the OTLP/HTTP exporter posts, in protobuf's JSON mapping (base64 ids, camelCase, 64-bit
    integers as strings), as a collector that re-encodes it would write it; one request per line."""
    with OtlpReceiver() as receiver:
        export_otlp_http(runs, receiver.url)
    documents = [MessageToDict(request) for request in receiver.requests]
    first = documents[0]["resourceSpans"][0]["scopeSpans"][0]["spans"]
    halves = [json.loads(json.dumps(documents[0])) for _ in range(2)]  # a collector's batches cut traces apart
    halves[0]["resourceSpans"][0]["scopeSpans"][0]["spans"] = first[:3]
    halves[1]["resourceSpans"][0]["scopeSpans"][0]["spans"] = first[3:]
    assert first[0]["traceId"] in {span["traceId"] for span in first[3:]}  # the first trace is on both lines
    lines = [json.dumps(document) for document in [*halves, *documents[1:]]]
    assert '"traceId"' in lines[0] and "==" in lines[0]  # base64 ids
    (tmp_path / "collector.jsonl").write_text("\n".join(lines) + "\n")
    assert sorted(imported(tmp_path / "collector.jsonl"), key=lambda t: t.id) == sorted(runs, key=lambda t: t.id)


def _foreign_trace(tmp_path: Path, collector: TrajectoryExporter | None = None) -> Path:
    """A team traced by hand with the OpenTelemetry SDK and OpenInference's attribute names (no agentracer),
    written to an OTLP/JSON file (and handed to ``collector`` as it goes)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "my-crew"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if collector is not None:
        provider.add_span_processor(SimpleSpanProcessor(collector))
    tracer = provider.get_tracer("my-instrumentation")
    with tracer.start_as_current_span("crew.kickoff", attributes={
            "openinference.span.kind": "CHAIN", "input.value": "What is 17 * 23?"}) as root:
        with tracer.start_as_current_span("planner", attributes={
                "openinference.span.kind": "AGENT", "agent.name": "planner",
                "output.value": "Ask the calculator for 17 * 23."}):
            with tracer.start_as_current_span("ChatCompletion", attributes={
                    "openinference.span.kind": "LLM", "llm.model_name": "gpt-x",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": "What is 17 * 23?",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": "Ask the calculator for 17 * 23.",
                    "llm.token_count.prompt": 12, "llm.token_count.completion": 8}):
                pass
        with tracer.start_as_current_span("calculator", attributes={
                "openinference.span.kind": "AGENT", "agent.name": "calculator", "output.value": "17 * 23 = 381"}):
            with tracer.start_as_current_span("ChatCompletion", attributes={
                    "openinference.span.kind": "LLM",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
                    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "multiply",
                    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"a": 17, "b": 23}'}):
                pass
            with tracer.start_as_current_span("multiply", attributes={
                    "openinference.span.kind": "TOOL", "tool.name": "multiply", "output.value": "391"}):
                pass
        with tracer.start_as_current_span("review", attributes={"openinference.span.kind": "CHAIN"}):
            with tracer.start_as_current_span("reviewer", attributes={
                    "openinference.span.kind": "AGENT", "agent.name": "reviewer",
                    "output.value": "Final answer: 381"}):
                pass
        root.set_attribute("output.value", "381")
        root.set_status(Status(StatusCode.ERROR, "wrong answer: expected 391"))
    with tracer.start_as_current_span("single call", attributes={
            "openinference.span.kind": "LLM", "input.value": "hello",
            "llm.output_messages.0.message.content": "hi there"}):
        pass
    request = encode_spans(exporter.get_finished_spans())
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(MessageToDict(request, preserving_proto_field_name=True)))  # snake_case names
    return path


def test_another_instrumentations_spans_become_agent_steps(tmp_path: Path) -> None:
    team_run, single = sorted(imported(_foreign_trace(tmp_path)), key=lambda t: len(t.steps), reverse=True)
    assert [(s.agent, s.role, s.kind, s.content) for s in team_run.steps] == [
        ("user", "user", "message", "What is 17 * 23?"),
        ("planner", "assistant", "message", "Ask the calculator for 17 * 23."),  # its model call said it
        ("calculator", "assistant", "tool_call", [{"name": "multiply", "arguments": {"a": 17, "b": 23}}]),
        ("calculator", "tool", "tool_result", "391"),
        ("calculator", "assistant", "message", "17 * 23 = 381"),  # the turn's output, which no model call said
        ("reviewer", "assistant", "message", "Final answer: 381"),  # a turn with no model call in it
    ]
    assert [(c.id, c.name, c.arguments) for c in team_run.steps[2].tool_calls] == [
        ("call_1", "multiply", {"a": 17, "b": 23})]
    assert [(r.name, r.content) for r in team_run.steps[3].tool_results] == [("multiply", "391")]
    assert [len(s.model_calls) for s in team_run.steps] == [0, 1, 1, 0, 0, 0]
    planner_call = team_run.steps[1].model_calls[0]
    assert planner_call.model == "gpt-x" and planner_call.step == 1 and planner_call.usage.total_tokens == 20
    assert planner_call.request == {"messages": [{"role": "user", "content": "What is 17 * 23?"}]}
    assert team_run.task == "What is 17 * 23?" and team_run.framework == "my-crew"
    assert team_run.outcome.success is False and team_run.outcome.error == "wrong answer: expected 391"
    assert team_run.outcome.answer == "381"
    assert [a.name for a in team_run.agents] == ["planner", "calculator", "reviewer"]
    assert locate(team_run).agent in {"planner", "calculator", "reviewer"}  # the tracer reads it
    # a trace without agent spans: its model call is the step
    assert [(s.agent, s.content) for s in single.steps] == [("user", "hello"), ("assistant", "hi there")]
    assert single.outcome.success is None


def test_an_sdk_span_exporter_collects_the_same_runs_as_the_file(tmp_path: Path) -> None:
    collector = TrajectoryExporter(tmp_path / "collected.jsonl")
    from_file = sorted(imported(_foreign_trace(tmp_path, collector)), key=lambda t: t.id)
    collector.shutdown()  # (each run is written once its grace is over; shutdown cuts that short)
    collected = sorted(open_store(tmp_path / "collected.jsonl"), key=lambda t: t.id)
    assert len(collected) == 2 and sorted(collector.collected) == [t.id for t in collected]
    assert collected == from_file


def test_a_trace_still_open_at_shutdown_is_written_as_it_is(tmp_path: Path) -> None:
    collector = TrajectoryExporter(tmp_path / "collected.db")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collector))
    tracer = provider.get_tracer("t")
    root = tracer.start_span("run", attributes={"openinference.span.kind": "CHAIN", "input.value": "task"})
    with trace.use_span(root), tracer.start_as_current_span("worker", attributes={
            "openinference.span.kind": "AGENT", "agent.name": "worker", "output.value": "half done"}):
        pass
    assert len(open_store(tmp_path / "collected.db")) == 0  # the run has not ended
    provider.shutdown()  # ... and never will: what there is gets written
    [run] = list(open_store(tmp_path / "collected.db"))
    assert [(s.agent, s.content) for s in run.steps] == [("worker", "half done")]


def _collecting(collector: TrajectoryExporter, service: str = "svc") -> trace.Tracer:
    provider = TracerProvider(resource=Resource.create({"service.name": service}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(collector))
    return provider.get_tracer("t")


def _streamed_turn(tracer: trace.Tracer) -> tuple[trace.Span, trace.Span]:
    """An agent's turn and the streamed model call in it, both started (the caller ends them)."""
    turn = tracer.start_span("writer", attributes={
        "openinference.span.kind": "AGENT", "agent.name": "writer", "input.value": "write a haiku"})
    call = tracer.start_span("ChatCompletion", context=trace.set_span_in_context(turn), attributes={
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-x",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "an old silent pond"})
    return turn, call


def test_a_span_that_ends_after_its_root_is_still_in_its_run(tmp_path: Path) -> None:
    collector = TrajectoryExporter(tmp_path / "collected.jsonl", grace_s=5)
    turn, call = _streamed_turn(_collecting(collector))
    turn.end()
    call.end()  # async code read the stream to its end after the agent's turn was over
    collector.shutdown()
    [run] = list(open_store(tmp_path / "collected.jsonl"))
    assert [(s.agent, s.content) for s in run.steps] == [("user", "write a haiku"), ("writer", "an old silent pond")]
    assert [c.model for s in run.steps for c in s.model_calls] == ["gpt-x"]


def test_a_trace_is_written_when_its_grace_is_over_with_no_further_span(tmp_path: Path) -> None:
    collector = TrajectoryExporter(tmp_path / "collected.jsonl", grace_s=0.05)
    turn, call = _streamed_turn(_collecting(collector))
    call.end()
    turn.end()
    deadline = time.monotonic() + 10
    while not collector.collected and time.monotonic() < deadline:
        time.sleep(0.02)
    [run] = list(open_store(tmp_path / "collected.jsonl"))
    assert collector.collected == [run.id] and run.steps[-1].content == "an old silent pond"
    while collector._ticker is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert collector._ticker is None  # (its thread ends with nothing held: an exporter never shut down is not kept)
    collector.shutdown()


def test_by_default_a_trace_is_stored_as_its_root_ends(tmp_path: Path) -> None:
    collector = TrajectoryExporter(tmp_path / "collected.jsonl")
    turn, call = _streamed_turn(_collecting(collector))
    call.end()
    turn.end()  # (the SDK's processors never call the exporter's force_flush: nothing may wait for it)
    [run] = list(open_store(tmp_path / "collected.jsonl"))
    assert run.steps[-1].content == "an old silent pond" and collector._ticker is None


def test_force_flush_writes_a_trace_waiting_out_its_grace_and_a_later_span_is_left_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    collector = TrajectoryExporter(tmp_path / "collected.jsonl", grace_s=600)
    turn, call = _streamed_turn(_collecting(collector))
    turn.end()
    assert len(open_store(tmp_path / "collected.jsonl")) == 0  # waiting for spans that end after their root
    assert collector.force_flush()
    [run] = list(open_store(tmp_path / "collected.jsonl"))
    assert [(s.agent, s.content) for s in run.steps] == [("user", "write a haiku"), ("writer", "")]
    call.end()  # after its run was written: left out, with a warning
    collector.shutdown()
    assert "not in the stored run" in caplog.text
    assert [t.id for t in open_store(tmp_path / "collected.jsonl")] == [run.id]


def test_two_services_parts_of_one_trace_are_one_run_in_time_order(tmp_path: Path) -> None:
    """Two local roots under remote parents (each service was called by another process): the receiver makes one
    trajectory of a trace's parts, and so does the exporter, rather than keeping the first part only."""
    collector = TrajectoryExporter(tmp_path / "collected.jsonl", grace_s=5)
    trace_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736

    def called_from(span_id: int) -> Context:
        remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        return trace.set_span_in_context(NonRecordingSpan(remote))

    for service, parent, output in [("planner", 0xA1, "Plan: add 2 and 2."), ("coder", 0xB2, "2 + 2 = 4")]:
        with _collecting(collector, service).start_as_current_span(service, context=called_from(parent), attributes={
                "openinference.span.kind": "AGENT", "agent.name": service, "output.value": output}):
            pass
    collector.shutdown()
    [run] = list(open_store(tmp_path / "collected.jsonl"))
    assert run.id == format(trace_id, "032x")
    assert [(s.agent, s.content) for s in run.steps] == [("planner", "Plan: add 2 and 2."), ("coder", "2 + 2 = 4")]


@pytest.mark.parametrize("grace_s", [-1, float("nan"), float("inf"), "5"])
def test_a_grace_that_is_not_seconds_is_refused(tmp_path: Path, grace_s: object) -> None:
    with pytest.raises(InputError, match="grace_s"):
        TrajectoryExporter(tmp_path / "collected.jsonl", grace_s=grace_s)  # type: ignore[arg-type]


def test_cli_imports_good_traces_and_names_bad_lines(runs: list[Trajectory], tmp_path: Path) -> None:
    write_otlp_json(runs, tmp_path / "spans.jsonl")
    lines = (tmp_path / "spans.jsonl").read_text().splitlines()
    bad_span = json.loads(lines[1])
    bad_span["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "not-an-id"
    (tmp_path / "mixed.jsonl").write_text("\n".join([lines[0], "{not json", json.dumps(bad_span),
                                                     json.dumps({"foo": 1})]) + "\n")
    out = tmp_path / "store.db"
    code, _, err = run_cli("import", "openinference", str(tmp_path / "mixed.jsonl"), "-o", str(out))
    assert code == 2 and "Traceback" not in err
    assert "mixed.jsonl:2" in err and "not valid JSON" in err
    assert "mixed.jsonl:3" in err and "spans[0].spanId" in err and "not-an-id" in err
    assert "mixed.jsonl:4" in err and "resourceSpans" in err
    assert [t.id for t in open_store(out)] == [runs[0].id] and open_store(out).get(runs[0].id) == runs[0]
    assert "imported 1 trace(s)" in err
    code, _, err = run_cli("import", "openinference", str(tmp_path / "spans.jsonl"), "-o", str(out), "--replace")
    assert code == 0, err
    assert sorted(t.id for t in open_store(out)) == sorted(t.id for t in runs)


@pytest.mark.parametrize("suffix", ["json", "jsonl"])
def test_show_and_locate_read_otlp_files_directly(runs: list[Trajectory], tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"spans.{suffix}"
    write_otlp_json(runs, path)
    code, out, err = run_cli("show", str(path), "--id", runs[1].id, "--width", "120")
    assert code == 0, err
    assert runs[1].id in out and "thinking differently" in out
    code, out, err = run_cli("locate", str(path), "--json")
    assert code == 0, err
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == sorted(t.id for t in runs)


def test_secrets_another_tracer_kept_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", "live-key-0123456789")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("run", attributes={
            "openinference.span.kind": "CHAIN",
            "input.value": json.dumps({"task": "call the service", "api_key": "plain-secret-value"})}):
        with tracer.start_as_current_span("caller", attributes={
                "openinference.span.kind": "AGENT", "agent.name": "caller",
                "output.value": "used live-key-0123456789 and sk-abcdefghijklmnopqrstuv"}):
            pass
    collector_path = tmp_path / "spans.json"
    collector_path.write_text(json.dumps(MessageToDict(encode_spans(exporter.get_finished_spans()))))
    [run] = imported(collector_path)
    text = run.to_json()
    assert "live-key-0123456789" not in text and "sk-abcdefghijklmnopqrstuv" not in text
    assert run.steps[1].content.count("[REDACTED]") == 2 and run.task == "call the service"


def test_a_step_without_content_comes_back_without_content(tmp_path: Path) -> None:
    run = Trajectory(id="r", steps=[Step(index=0, agent="a", content=None), Step(index=1, agent="b", content="")])
    write_otlp_json([run], tmp_path / "spans.json")
    (back,) = imported(tmp_path / "spans.json")
    assert [s.content for s in back.steps] == [None, ""]


def test_a_run_whose_last_step_was_lost_is_reported_incomplete_not_imported_short(runs: list[Trajectory],
                                                                                  tmp_path: Path) -> None:
    """A gap in the middle of the steps was caught; losing the last step's spans (a file cut short) was not."""
    write_otlp_json(runs[:1], tmp_path / "spans.json")
    data = json.loads((tmp_path / "spans.json").read_text())
    last = len(runs[0].steps) - 1

    def of_last_step(span: dict) -> bool:
        return any(a["key"] == "agentracer.step.index" and int(a["value"].get("intValue", -1)) == last
                   for a in span["attributes"])

    dropped = {s["spanId"] for sc in data["resourceSpans"][0]["scopeSpans"] for s in sc["spans"] if of_last_step(s)}
    assert dropped
    for scope in data["resourceSpans"][0]["scopeSpans"]:
        scope["spans"] = [s for s in scope["spans"] if s["spanId"] not in dropped and s.get("parentSpanId") not in dropped]
    (tmp_path / "cut.json").write_text(json.dumps(data))
    (item,) = [item for _, item in iter_otlp(tmp_path / "cut.json")]
    assert isinstance(item, InputError) and f"the run had {last + 1} steps and {last} of them arrived" in str(item)


def _damaged(runs: list[Trajectory], tmp_path: Path, key: str, value: object) -> str:
    """The one error importing ``runs`` gives once every ``key`` attribute holds ``value``."""
    write_otlp_json(runs[:1], tmp_path / "spans.json")
    data = json.loads((tmp_path / "spans.json").read_text())
    for scope in data["resourceSpans"][0]["scopeSpans"]:
        for span in scope["spans"]:
            for attribute in span["attributes"]:
                if attribute["key"] == key:
                    attribute["value"] = value
    (tmp_path / "spans.json").write_text(json.dumps(data))
    (item,) = [item for _, item in iter_otlp(tmp_path / "spans.json")]
    assert isinstance(item, InputError), f"{key} = {value} was read without a word"
    assert "\n" not in str(item) and "errors.pydantic.dev" not in str(item)
    return str(item)


@pytest.mark.parametrize(("key", "value", "named"), [
    ("agentracer.step.kind", {"stringValue": "not-a-kind"}, "kind"),
    ("agentracer.step.index", {"stringValue": "x"}, "agentracer.step.index"),
    ("agentracer.metadata", {"stringValue": "{broken"}, "agentracer.metadata"),
    ("agentracer.tool.is_error", {"stringValue": "nah"}, "agentracer.tool.is_error"),
])
def test_a_damaged_attribute_is_one_line_naming_it(runs: list[Trajectory], tmp_path: Path, key: str, value: object,
                                                   named: str) -> None:
    assert named in _damaged(runs, tmp_path, key, value)


def test_spans_whose_parents_form_a_cycle_are_one_bad_trace_not_a_traceback(tmp_path: Path) -> None:
    from cli_invoke import run_cli

    def span(span_id: str, parent: str) -> dict:
        return {"traceId": "e" * 32, "spanId": span_id * 16, "parentSpanId": parent * 16, "name": "s",
                "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": []}

    good = {"traceId": "f" * 32, "spanId": "3" * 16, "name": "run", "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "attributes": [{"key": "input.value", "value": {"stringValue": "the task"}}]}
    path = tmp_path / "cycle.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span("1", "2"), span("2", "1"), good]}]}]}))
    code, _, err = run_cli("import", "openinference", str(path), "-o", str(tmp_path / "runs.jsonl"))
    assert code == 2 and "cycle" in err and "Traceback" not in err
    assert [t.task for t in open_store(tmp_path / "runs.jsonl")] == ["the task"]  # the other trace still comes in


def test_a_cycle_beside_a_real_root_is_an_error_not_spans_dropped(tmp_path: Path) -> None:
    """Two spans naming each other as parent, in a trace with a root: the trace imported without them, silently."""
    path = _spans_file(tmp_path, [
        (None, {"openinference.span.kind": "CHAIN", "input.value": "task"}),
        (1, {"openinference.span.kind": "AGENT", "agent.name": "a", "output.value": "kept"}),
        (4, {"openinference.span.kind": "AGENT", "agent.name": "b", "output.value": "lost"}),
        (3, {"openinference.span.kind": "AGENT", "agent.name": "c", "output.value": "lost too"}),
    ])
    [(_, item)] = list(iter_otlp(path))
    assert isinstance(item, InputError) and "2 of its spans' parent links form a cycle" in str(item)


def test_a_span_whose_parent_was_lost_goes_under_the_root_which_keeps_the_task_and_outcome(tmp_path: Path) -> None:
    """A second top-level span (its parent sampled out) put everything under a stand-in root without attributes:
    the task, the answer and the root's ERROR status were lost."""
    def span(span_id: str, parent: str | None, attributes: dict, start: int, status: dict | None = None) -> dict:
        item = {"traceId": "e" * 32, "spanId": span_id * 16, "name": "s", "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + 5 if parent else 100),
                "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]}
        if parent:
            item["parentSpanId"] = parent * 16
        if status:
            item["status"] = status
        return item

    spans = [span("1", None, {"openinference.span.kind": "CHAIN", "input.value": "Plan a trip",
                              "output.value": "failed plan"}, 0, {"code": 2, "message": "boom"}),
             span("2", "1", {"openinference.span.kind": "AGENT", "agent.name": "Researcher", "output.value": "found"}, 1),
             span("3", "9", {"openinference.span.kind": "AGENT", "agent.name": "Writer", "output.value": "draft"}, 20)]
    path = tmp_path / "spans.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    [(_, run)] = list(iter_otlp(path))
    assert run.task == "Plan a trip" and run.outcome.answer == "failed plan"
    assert run.outcome.success is False and "boom" in (run.outcome.error or "")
    assert [(s.agent, s.content) for s in run.steps] == [("user", "Plan a trip"), ("Researcher", "found"),
                                                         ("Writer", "draft")]


def _spans_file(tmp_path: Path, spans: list[dict]) -> Path:
    def attribute(key: str, value: object) -> dict:
        return {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}

    items = []
    for number, (parent, attributes) in enumerate(spans, start=1):
        item = {"traceId": "a" * 32, "spanId": f"{number:016x}", "name": f"span{number}",
                "startTimeUnixNano": str(number), "endTimeUnixNano": str(100 - number),
                "attributes": [attribute(k, v) for k, v in attributes.items()]}
        if parent:
            item["parentSpanId"] = f"{parent:016x}"
        items.append(item)
    path = tmp_path / "spans.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": items}]}]}))
    return path


def test_genai_semantic_convention_spans_carry_their_text(tmp_path: Path) -> None:
    """Spans written with the OpenTelemetry GenAI conventions imported with every step's content empty."""
    user = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "weather in Paris?"}]}])
    call = json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "get_weather",
                                                        "arguments": {"city": "Paris"}}]}])
    final = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "It is sunny in Paris."}]}])
    path = _spans_file(tmp_path, [
        (None, {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather_bot",
                "gen_ai.input.messages": user, "gen_ai.output.messages": final}),
        (1, {"gen_ai.operation.name": "chat", "gen_ai.input.messages": user, "gen_ai.output.messages": call}),
        (1, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.call.id": "c1",
             "gen_ai.tool.call.arguments": '{"city": "Paris"}', "gen_ai.tool.call.result": "sunny"}),
        (1, {"gen_ai.operation.name": "chat", "gen_ai.output.messages": final}),
    ])
    [(_, run)] = list(iter_otlp(path))
    assert run.task == "weather in Paris?" and run.outcome.answer == "It is sunny in Paris."
    assert [(s.kind, s.text) for s in run.steps] == [
        ("message", "weather in Paris?"), ("tool_call", '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'),
        ("tool_result", "sunny"), ("message", "It is sunny in Paris.")]
    assert run.steps[1].model_calls[0].request == {"messages": [{"role": "user", "content": "weather in Paris?"}]}


def test_openinference_input_tool_calls_results_and_parameters_come_into_the_request(tmp_path: Path) -> None:
    """Phoenix-style spans: an assistant message of tool calls, a tool message naming its call, temperature."""
    msg = "llm.input_messages"
    path = _spans_file(tmp_path, [
        (None, {"openinference.span.kind": "AGENT", "agent.name": "banker", "input.value": "convert 100 EUR"}),
        (1, {"openinference.span.kind": "LLM", "llm.invocation_parameters": '{"temperature": 0.2}',
             f"{msg}.0.message.role": "user", f"{msg}.0.message.content": "convert 100 EUR",
             f"{msg}.1.message.role": "assistant",
             f"{msg}.1.message.tool_calls.0.tool_call.id": "c1",
             f"{msg}.1.message.tool_calls.0.tool_call.function.name": "convert",
             f"{msg}.1.message.tool_calls.0.tool_call.function.arguments": '{"amount": 100}',
             f"{msg}.2.message.role": "tool", f"{msg}.2.message.tool_call_id": "c1",
             f"{msg}.2.message.content": "85.00 GBP",
             "llm.output_messages.0.message.role": "assistant",
             "llm.output_messages.0.message.content": "It is 85.00 GBP."}),
    ])
    [(_, run)] = list(iter_otlp(path))
    [call] = run.model_calls()
    assert call.request == {"temperature": 0.2, "messages": [
        {"role": "user", "content": "convert 100 EUR"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "name": "convert", "arguments": {"amount": 100}}]},
        {"role": "tool", "content": "85.00 GBP", "tool_call_id": "c1"}]}


def test_older_genai_attributes_langgraph_state_and_text_parts_give_the_task_and_answer(tmp_path: Path) -> None:
    legacy = _spans_file(tmp_path, [(None, {"gen_ai.operation.name": "chat", "gen_ai.prompt.0.role": "user",
                                            "gen_ai.prompt.0.content": "hello?", "gen_ai.completion.0.role": "assistant",
                                            "gen_ai.completion.0.content": "hi there"})])
    [(_, run)] = list(iter_otlp(legacy))
    assert (run.task, run.outcome.answer, run.steps[-1].text) == ("hello?", "hi there", "hi there")
    graph = _spans_file(tmp_path, [(None, {"openinference.span.kind": "CHAIN", "input.value": json.dumps(
        {"messages": [["system", "be brief"], ["user", "What is 2+2?"]]}), "output.value": "4"})])
    [(_, run)] = list(iter_otlp(graph))
    assert run.task == "What is 2+2?"
    parts = _spans_file(tmp_path, [(None, {
        "openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.contents.0.message_content.type": "text",
        "llm.input_messages.0.message.contents.0.message_content.text": "Capital of France?",
        "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "Paris"})])
    [(_, run)] = list(iter_otlp(parts))
    assert (run.task, run.outcome.answer) == ("Capital of France?", "Paris")
    assert run.steps[-1].model_calls[0].request["messages"] == [{"role": "user", "content": "Capital of France?"}]


def test_a_json_file_holding_one_request_per_line_is_read_as_lines(tmp_path: Path) -> None:
    """A collector's file exporter writes JSON Lines, often as traces.json: it failed with 'Extra data'."""
    one = _spans_file(tmp_path, [(None, {"openinference.span.kind": "CHAIN", "input.value": "first task"})])
    line = json.dumps(json.loads(one.read_text()))
    second = line.replace("a" * 32, "b" * 32).replace("first task", "second task")
    path = tmp_path / "traces.json"
    path.write_text(line + "\n" + second + "\n")
    assert sorted(run.task for _, run in iter_otlp(path)) == ["first task", "second task"]


def test_spans_of_a_later_minor_release_import_with_a_warning(runs: list[Trajectory], tmp_path: Path) -> None:
    """As a store reads a later 1.x record (it named the error of Trajectory.from_json instead)."""
    write_otlp_json(runs[:1], tmp_path / "spans.json")
    text = (tmp_path / "spans.json").read_text()
    assert '"agentracer.schema_version"' in text
    request = json.loads(text)
    for span in request["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for attribute in span["attributes"]:
            if attribute["key"] == "agentracer.schema_version":
                attribute["value"] = {"stringValue": "2.9"}
    (tmp_path / "later.json").write_text(json.dumps(request))
    with pytest.warns(UserWarning, match=r"later agentracer \(schema 2.9\): read as schema"):
        [(_, back)] = list(iter_otlp(tmp_path / "later.json"))
    assert back == runs[0]


def test_spans_written_twice_count_once(runs: list[Trajectory], tmp_path: Path) -> None:
    """An exporter's retry (or a collector writing a batch twice) made two roots and repeated steps."""
    write_otlp_json(runs[:1], tmp_path / "once.jsonl")
    line = (tmp_path / "once.jsonl").read_text()
    (tmp_path / "twice.jsonl").write_text(line + line)
    assert imported(tmp_path / "twice.jsonl") == runs[:1]
    foreign = _spans_file(tmp_path, [(None, {"openinference.span.kind": "CHAIN", "input.value": "task"}),
                                     (1, {"openinference.span.kind": "AGENT", "agent.name": "a", "output.value": "x"})])
    data = json.loads(foreign.read_text())
    data["resourceSpans"] *= 2
    foreign.write_text(json.dumps(data))
    [run] = imported(foreign)
    assert [(s.agent, s.content) for s in run.steps] == [("user", "task"), ("a", "x")]


def test_model_calls_and_tools_outside_every_agent_turn_are_steps_not_dropped(tmp_path: Path) -> None:
    """With AGENT spans in a trace, an LLM span beside them (a group chat choosing who speaks next) or a TOOL span
    whose parent was lost (moved under the root) disappeared without a word."""
    llm = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-x",
           "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "coder next"}
    path = _spans_file(tmp_path, [
        (None, {"openinference.span.kind": "CHAIN", "agent.name": "manager", "input.value": "Fix the bug"}),
        (1, llm),
        (1, {"openinference.span.kind": "AGENT", "agent.name": "coder", "output.value": "patched"}),
        (99, {"openinference.span.kind": "TOOL", "tool.name": "run_tests", "output.value": "3 passed"}),
    ])
    [run] = imported(path)
    assert [(s.agent, s.kind, s.content) for s in run.steps] == [
        ("user", "message", "Fix the bug"), ("manager", "message", "coder next"), ("coder", "message", "patched"),
        ("manager", "tool_result", "3 passed")]
    assert run.steps[1].model_calls[0].model == "gpt-x"


def test_a_steps_tool_calls_come_back_in_their_order_whatever_order_their_spans_arrive(runs: list[Trajectory],
                                                                                       tmp_path: Path) -> None:
    """Tool call spans carried no position: calls came back in the order their spans arrived (all start with the
    step, so a batch processor's order was theirs)."""
    from agentracer.formats.openinference import otlp_json_request, trajectory_spans
    from agentracer.schema import ToolCall

    run = runs[0].model_copy(deep=True)
    step = next(s for s in run.steps if s.tool_calls)
    step.tool_calls = [ToolCall(id=f"call_{n}", name="add", arguments={"a": n, "b": 1}) for n in range(3)]
    step.tool_results = []
    spans = trajectory_spans(run)
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(otlp_json_request(spans[::-1])))
    (back,) = imported(path)
    assert [c.id for c in next(s for s in back.steps if s.index == step.index).tool_calls] == [
        "call_0", "call_1", "call_2"]
    assert back == run
    for span in spans:  # a file written before calls had a position: their spans' order, as before
        span.attributes.pop("agentracer.tool.call.position", None)
    path.write_text(json.dumps(otlp_json_request(spans)))
    (back,) = imported(path)
    assert back == run


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_a_file_starting_with_a_byte_order_mark_is_read(runs: list[Trajectory], tmp_path: Path, suffix: str) -> None:
    write_otlp_json(runs[:1], tmp_path / f"plain{suffix}")
    (tmp_path / f"bom{suffix}").write_bytes(b"\xef\xbb\xbf" + (tmp_path / f"plain{suffix}").read_bytes())
    assert imported(tmp_path / f"bom{suffix}") == runs[:1]


def test_a_model_name_written_as_a_number_is_read_as_text(tmp_path: Path) -> None:
    """``llm.model_name`` given as an int failed the whole trace."""
    [run] = imported(_spans_file(tmp_path, [(None, {"openinference.span.kind": "LLM", "llm.model_name": 4,
                                                     "output.value": "hi"})]))
    assert run.steps[-1].model_calls[0].model == "4"


def test_a_json_list_of_requests_or_one_with_a_bom_is_known_as_otlp_by_every_command(runs: list[Trajectory],
                                                                                    tmp_path: Path) -> None:
    write_otlp_json(runs[:1], tmp_path / "plain.json")
    request = (tmp_path / "plain.json").read_bytes()
    (tmp_path / "list.json").write_bytes(b"[" + request + b"]")
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + request)
    for name in ("list.json", "bom.json"):
        code, out, err = run_cli("validate", str(tmp_path / name))
        assert code == 0, err
        code, out, err = run_cli("show", str(tmp_path / name))
        assert code == 0 and runs[0].id in out, err


def test_a_span_with_a_status_code_otlp_does_not_define_is_read_as_unset_with_a_warning(tmp_path: Path) -> None:
    """One span with status {"code": "STATUS_CODE_WEIRD"} made the whole file be refused: every trace in it lost."""
    path = _spans_file(tmp_path, [(None, {"openinference.span.kind": "CHAIN", "input.value": "Sum 2+2"}),
                                  (1, {"openinference.span.kind": "AGENT", "agent.name": "solver", "output.value": "4"}),
                                  (1, {"openinference.span.kind": "AGENT", "agent.name": "checker",
                                       "output.value": "ok"})])
    request = json.loads(path.read_text())
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1]["status"] = {"code": "STATUS_CODE_WEIRD", "message": "odd"}
    spans[2]["status"] = {"code": 7}
    path.write_text(json.dumps(request))
    with pytest.warns(UserWarning, match=r'2 span\(s\) had a status code OTLP does not define \("STATUS_CODE_WEIRD", '
                                         r"7\): read as unset"):
        [(_, run)] = list(iter_otlp(path))
    assert [(s.agent, s.content) for s in run.steps] == [("user", "Sum 2+2"), ("solver", "4"), ("checker", "ok")]
    assert run.outcome.success is None and run.outcome.error is None
    out = tmp_path / "store.jsonl"
    with pytest.warns(UserWarning, match="does not define"):
        code, _, err = run_cli("import", "openinference", str(path), "-o", str(out))
    assert code == 0 and "imported 1 trace(s)" in err, err
    assert [t.id for t in open_store(out)] == [run.id]
