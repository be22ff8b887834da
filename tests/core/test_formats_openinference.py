"""OpenInference/OTel GenAI spans: structure, deterministic ids, the OTLP/JSON file, and OTLP/HTTP accepted by a
loopback receiver that parses the posted protobuf with opentelemetry-proto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from adding_team import traced_adding_team
from agentracer.cli import main
from agentracer.errors import InputError
from agentracer.formats.openinference import (
    OtlpExportError,
    export_otlp_http,
    span_id_for,
    trace_id_for,
    trajectory_spans,
    write_otlp_json,
)
from agentracer.formats.whowhen import load_whowhen
from agentracer.schema import Trajectory, Verdict
from agentracer.store import JsonlStore
from click.testing import CliRunner
from otlp_receiver import OtlpReceiver

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def recorded() -> Trajectory:
    trajectory = traced_adding_team().run("add 2 and 3")
    trajectory.labels.append(Verdict(agent="coder", step=2, reason="used the wrong numbers", source="counterfactual"))
    return trajectory


def _attrs(span) -> dict:  # noqa: ANN001 - a SpanRecord or a protobuf span
    if isinstance(span.attributes, dict):
        return span.attributes
    out = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        value = getattr(kv.value, which)
        out[kv.key] = [getattr(v, v.WhichOneof("value")) for v in value.values] if which == "array_value" else value
    return out


def test_span_tree_of_a_recorded_run(recorded: Trajectory) -> None:
    spans = trajectory_spans(recorded)
    root, rest = spans[0], spans[1:]
    assert root.parent_span_id is None and _attrs(root)["openinference.span.kind"] == "CHAIN"
    assert {s.trace_id for s in spans} == {trace_id_for(recorded.id)}
    step_spans = [s for s in rest if _attrs(s)["openinference.span.kind"] == "AGENT"]
    assert [_attrs(s)["agentracer.step.index"] for s in step_spans] == list(range(len(recorded.steps)))
    assert all(s.parent_span_id == root.span_id for s in step_spans)
    by_id = {s.span_id: s for s in spans}
    llm = [s for s in rest if _attrs(s)["openinference.span.kind"] == "LLM"]
    assert len(llm) == len(recorded.model_calls())
    for span in llm:
        parent = by_id[span.parent_span_id]
        attrs = _attrs(span)
        assert attrs["agentracer.step.index"] == _attrs(parent)["agentracer.step.index"]
        assert attrs["llm.input_messages.0.message.role"] == "system"
        assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.agent.name"] == attrs["agent.name"]
        assert "llm.output_messages.0.message.content" in attrs
    tools = [s for s in rest if _attrs(s)["openinference.span.kind"] == "TOOL"]
    assert tools and _attrs(tools[0])["tool.name"] == "add"
    assert json.loads(_attrs(tools[0])["input.value"]) == {"a": 2, "b": 3}
    # a call and its result sit in two steps: each one's span shows both (arguments in, result out)
    assert {s.kind for s in recorded.steps if s.tool_calls or s.tool_results} == {"tool_call", "tool_result"}
    assert all("input.value" in _attrs(t) and "output.value" in _attrs(t) for t in tools), [_attrs(t) for t in tools]
    assert all(root.start_ns <= s.start_ns <= s.end_ns <= root.end_ns for s in rest)
    marked = [s for s in step_spans if _attrs(s).get("agentracer.mistake")]
    assert [_attrs(s)["agentracer.step.index"] for s in marked] == [2]
    assert _attrs(marked[0])["agentracer.label.source"] == "counterfactual"
    assert _attrs(root)["agentracer.labels.0.reason"] == "used the wrong numbers"


def test_ids_are_deterministic_and_distinct(recorded: Trajectory) -> None:
    again = Trajectory.from_json(recorded.to_json())
    first, second = trajectory_spans(recorded), trajectory_spans(again)
    assert [(s.trace_id, s.span_id, s.parent_span_id) for s in first] == [
        (s.trace_id, s.span_id, s.parent_span_id) for s in second]
    assert len({s.span_id for s in first}) == len(first)
    assert trace_id_for("a") != trace_id_for("b") and len(trace_id_for("a")) == 32
    assert span_id_for("a", "run") != span_id_for("a", "step/0") and len(span_id_for("a", "run")) == 16


def test_verdict_is_added_as_attributes(recorded: Trajectory) -> None:
    spans = trajectory_spans(recorded, verdict=Verdict(agent="planner", step=1, reason="bad plan", source="tracer"))
    assert _attrs(spans[0])["agentracer.verdict.agent"] == "planner"
    step1 = next(s for s in spans if _attrs(s).get("agentracer.step.index") == 1
                 and _attrs(s)["openinference.span.kind"] == "AGENT")
    assert _attrs(step1)["agentracer.label.sources"] == ["tracer"]


def test_otlp_http_export_is_accepted_and_matches_the_json_file(recorded: Trajectory, receiver: OtlpReceiver,
                                                               tmp_path: Path) -> None:
    who = load_whowhen(DATA / "Hand-Crafted" / "13.json", root=DATA)
    sent = export_otlp_http([recorded, who], receiver.url, headers={"x-team": "blue"}, batch_spans=5)
    wire = receiver.spans()
    assert sent == len(wire) == len(trajectory_spans(recorded)) + len(trajectory_spans(who))
    assert len(receiver.requests) > 1 and receiver.headers[0]["x-team"] == "blue"
    assert {s.trace_id.hex() for s in wire} == {trace_id_for(recorded.id), trace_id_for(who.id)}
    resource = receiver.requests[0].resource_spans[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "agentracer"

    write_otlp_json([recorded, who], tmp_path / "spans.json")
    document = json.loads((tmp_path / "spans.json").read_text())
    filed = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len(filed) == len(wire)
    for span_json, span_pb in zip(filed, wire, strict=True):
        assert span_json["traceId"] == span_pb.trace_id.hex() and span_json["spanId"] == span_pb.span_id.hex()
        assert span_json.get("parentSpanId", "") == span_pb.parent_span_id.hex()
        assert span_json["name"] == span_pb.name and span_json["kind"] == span_pb.kind
        assert int(span_json["startTimeUnixNano"]) == span_pb.start_time_unix_nano
        assert int(span_json["endTimeUnixNano"]) == span_pb.end_time_unix_nano
        assert span_json["status"]["code"] == span_pb.status.code
        assert [a["key"] for a in span_json["attributes"]] == [kv.key for kv in span_pb.attributes]
    labelled = [s for s in wire if _attrs(s).get("agentracer.mistake")]
    assert [_attrs(s)["agentracer.step.index"] for s in labelled] == [2, who.human_label.step]


def test_jsonl_output_is_one_request_per_trajectory(recorded: Trajectory, tmp_path: Path) -> None:
    other = recorded.model_copy(update={"id": "other"})
    write_otlp_json([recorded, other], tmp_path / "spans.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    assert {s["traceId"] for s in lines[1]["resourceSpans"][0]["scopeSpans"][0]["spans"]} == {trace_id_for("other")}


def test_an_endpoint_that_refuses_is_an_error(recorded: Trajectory) -> None:
    with OtlpReceiver(status=400) as refusing, pytest.raises(OtlpExportError, match="did not accept"):
        export_otlp_http([recorded], refusing.url, timeout=5)


def test_cli_export_openinference_to_file_and_endpoint(recorded: Trajectory, receiver: OtlpReceiver,
                                                       tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "runs.jsonl")
    store.append(recorded)
    out = tmp_path / "o.json"
    runner = CliRunner()
    with runner.isolation() as (_stdout, stderr, _):
        try:
            main(["export", "openinference", str(store.path), "-o", str(out), "--endpoint", receiver.url + "/"])
            code = 0
        except SystemExit as exc:
            code = exc.code
    assert code == 0, stderr.getvalue()
    assert len(receiver.spans()) == len(trajectory_spans(recorded))
    assert len(json.loads(out.read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"]) == len(receiver.spans())


def test_cli_export_to_an_endpoint_that_refuses_exits_1_not_2(recorded: Trajectory, tmp_path: Path) -> None:
    """A collector that refuses (or cannot be reached) is a server failing, not bad input."""
    store = JsonlStore(tmp_path / "runs.jsonl")
    store.append(recorded)
    with OtlpReceiver(status=400) as refusing, CliRunner().isolation() as (_stdout, stderr, _):
        try:
            main(["export", "openinference", str(store.path), "--endpoint", refusing.url, "--timeout", "5"])
            code = 0
        except SystemExit as exc:
            code = exc.code
    assert code == 1 and "did not accept" in stderr.getvalue().decode()


@pytest.mark.parametrize("suffix", ["json", "jsonl"])
def test_a_span_file_write_that_fails_leaves_the_file_as_it_was(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"spans.{suffix}"
    good = Trajectory(id="g", task="t", steps=[])
    write_otlp_json([good, Trajectory(id="h", task="t", steps=[])], path)
    before = path.read_bytes()

    def runs() -> Iterator[Trajectory]:
        yield good
        raise InputError("the source broke", where="runs.jsonl:2")

    with pytest.raises(InputError, match="the source broke"):
        write_otlp_json(runs(), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_span_file_is_streamed_and_the_same_as_the_whole_request(tmp_path: Path) -> None:
    """The .json export held every span of every run in memory (6 GB for 20k runs): it is written as runs are
    converted, byte for byte what dumping the whole request gives."""
    from agentracer.formats.openinference import otlp_json_request

    runs = [load_whowhen(path) for path in sorted(DATA.glob("Hand-Crafted/*.json"))[:3]]
    path = tmp_path / "spans.json"
    count = write_otlp_json(iter(runs), path)
    every = [span for run in runs for span in trajectory_spans(run)]
    assert count == len(every) > 0
    assert path.read_text(encoding="utf-8") == json.dumps(otlp_json_request(every), ensure_ascii=False)
    write_otlp_json([], path)
    assert json.loads(path.read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"] == []


def test_messages_a_framework_names_by_type_get_their_chat_role() -> None:
    """AutoGen's requests name each message by its type (SystemMessage, UserMessage...): OpenInference wants a role."""
    from agentracer.schema import ModelCall, Step

    messages = [{"type": "SystemMessage", "content": "be brief"}, {"type": "UserMessage", "content": "hi",
                                                                   "source": "user"},
                {"type": "AssistantMessage", "content": "hello", "source": "coder"},
                {"type": "FunctionExecutionResultMessage", "content": [{"content": "3", "call_id": "c"}]},
                {"role": "user", "type": "SystemMessage", "content": "a role given wins"}]
    call = ModelCall(agent="coder", call_index=0, step=0, request={"messages": messages}, response={"content": "ok"})
    run = Trajectory(task="t", steps=[Step(index=0, agent="coder", content="ok", model_calls=[call])])
    [llm] = [s for s in trajectory_spans(run) if _attrs(s)["openinference.span.kind"] == "LLM"]
    roles = [_attrs(llm).get(f"llm.input_messages.{i}.message.role") for i in range(len(messages))]
    assert roles == ["system", "user", "assistant", "tool", "user"]


def test_a_failed_model_call_has_no_output_message() -> None:
    """The step of a call that raised says so in our words; the model said nothing, so its LLM span has no answer."""
    from agentracer.schema import ModelCall, Step

    call = ModelCall(agent="coder", call_index=0, step=0, request={"messages": [{"role": "user", "content": "hi"}]},
                     error="RuntimeError: server down")
    run = Trajectory(task="t", steps=[Step(index=0, agent="coder", kind="event", content="(its model call failed: "
                                           "RuntimeError: server down)", model_calls=[call])])
    [llm] = [s for s in trajectory_spans(run) if _attrs(s)["openinference.span.kind"] == "LLM"]
    assert llm.status_code == 2 and "server down" in llm.status_message
    assert not any(key.startswith("llm.output_messages") for key in _attrs(llm))


def test_tool_calls_and_results_are_written_the_openinference_way() -> None:
    """Phoenix shows a call's tool calls from ``message.tool_calls`` and pairs a tool message by its
    ``tool_call_id``: AutoGen's calls (the content of an AssistantMessage, or of a response) and results
    (a FunctionExecutionResultMessage), and OpenAI's (CAMEL's) are written so; the offered tools as ``llm.tools``."""
    from agentracer.schema import ModelCall, Step

    asked = [{"id": "c1", "name": "convert", "arguments": '{"amount": 100}'}]
    autogen = ModelCall(agent="banker", call_index=1, step=0, request={"messages": [
        {"type": "UserMessage", "content": "convert 100", "source": "user"},
        {"type": "AssistantMessage", "content": asked, "source": "banker"},
        {"type": "FunctionExecutionResultMessage", "content": [{"content": "85 GBP", "call_id": "c1", "is_error": False}]},
    ], "tools": ["convert"]}, response={"finish_reason": "function_calls", "content": asked})
    openai = ModelCall(agent="banker", call_index=2, step=0, request={"messages": [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c2", "type": "function",
                                                                "function": {"name": "convert", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "85 GBP"}],
        "tools": [{"type": "function", "function": {"name": "convert", "parameters": {"type": "object"}}}]},
        response={"choices": [{"message": {"role": "assistant", "content": "It is 85 GBP."}}]})
    run = Trajectory(task="t", steps=[Step(index=0, agent="banker", kind="tool_call", content="convert",
                                           model_calls=[autogen, openai])])
    first, second = (_attrs(s) for s in trajectory_spans(run) if _attrs(s)["openinference.span.kind"] == "LLM")
    sent = "llm.input_messages.1.message"
    assert first[f"{sent}.tool_calls.0.tool_call.function.name"] == "convert"
    assert first[f"{sent}.tool_calls.0.tool_call.id"] == "c1" and f"{sent}.content" not in first
    assert first["llm.input_messages.2.message.tool_call_id"] == "c1"
    assert first["llm.input_messages.2.message.content"] == "85 GBP"
    assert first["llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments"] == '{"amount": 100}'
    assert "llm.output_messages.0.message.content" not in first  # (not the calls' JSON as its text)
    assert json.loads(first["llm.tools.0.tool.json_schema"])["function"]["name"] == "convert"
    assert second["llm.input_messages.0.message.tool_calls.0.tool_call.id"] == "c2"
    assert second["llm.input_messages.1.message.tool_call_id"] == "c2"
    assert second["llm.output_messages.0.message.content"] == "It is 85 GBP."
    assert json.loads(second["llm.tools.0.tool.json_schema"])["function"]["parameters"] == {"type": "object"}


def test_an_export_the_endpoint_stopped_says_what_it_took_and_skip_sends_the_rest(tmp_path: Path,
                                                                                   caplog: pytest.LogCaptureFixture
                                                                                   ) -> None:
    """A collector whose quota ran out after the first batch: the error says why, how many whole trajectories it
    took and how to go on; ``--skip`` then sends exactly the others (each once). The endpoint's key, a query
    parameter, is in none of the exporter's log lines."""
    runs = [traced_adding_team().run(f"add {i} and 1") for i in range(3)]
    per_run = len(trajectory_spans(runs[0]))
    secret = "sk-live-0123456789abcdefghijklmn"
    with OtlpReceiver(accept=1) as quota, pytest.raises(OtlpExportError) as info:
        export_otlp_http(runs, f"{quota.url}/v1/traces?api_key={secret}", timeout=5, batch_spans=per_run)
    said = str(info.value)
    assert "the first 1 trajectories were accepted" in said and "--skip 1" in said and "400" in said, said
    assert secret not in said and secret not in caplog.text
    assert len(quota.spans()) == per_run
    store = JsonlStore(tmp_path / "runs.jsonl")
    for run in runs:
        store.append(run)
    with OtlpReceiver() as receiver, CliRunner().isolation() as (_stdout, stderr, _):
        try:
            main(["export", "openinference", str(store.path), "--endpoint", receiver.url, "--skip", "1"])
            code = 0
        except SystemExit as exc:
            code = exc.code
    assert code == 0, stderr.getvalue()
    sent = {span.trace_id.hex() for span in receiver.spans()}
    assert sent == {trace_id_for(run.id) for run in runs[1:]} and len(receiver.spans()) == 2 * per_run


def test_an_unreachable_endpoint_keeps_its_key_out_of_the_exporters_log(recorded: Trajectory,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    secret = "sk-live-0123456789abcdefghijklmn"
    with pytest.raises(OtlpExportError) as info:
        export_otlp_http([recorded], f"http://127.0.0.1:{port}/v1/traces?api_key={secret}", timeout=3)  # (a retry)
    assert "refused" in str(info.value) or "timeout" in str(info.value), str(info.value)  # (why, as the SDK said)
    assert caplog.records and secret not in caplog.text and secret not in str(info.value)


def test_a_replays_trace_links_to_the_run_it_replayed(recorded: Trajectory, receiver: OtlpReceiver,
                                                      tmp_path: Path) -> None:
    """Phoenix and Jaeger jump along span links: a replay's root span links to its parent run's root span."""
    replay = traced_adding_team().replay(recorded, step=1, action="5")
    root = trajectory_spans(replay)[0]
    assert root.links == [(trace_id_for(recorded.id), span_id_for(recorded.id, "run"),
                           {"agentracer.link": "replay_of", "agentracer.replay.step": 1})]
    assert trajectory_spans(recorded)[0].span_id == span_id_for(recorded.id, "run")  # (the span it points at)
    write_otlp_json([replay], tmp_path / "r.json")
    [link] = json.loads((tmp_path / "r.json").read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["links"]
    assert (link["traceId"], link["spanId"]) == root.links[0][:2]
    export_otlp_http([replay], receiver.url, timeout=5)
    [sent] = [s for s in receiver.spans() if not s.parent_span_id]
    assert [(link.trace_id.hex(), link.span_id.hex()) for link in sent.links] == [root.links[0][:2]]


def test_two_exports_at_once_keep_each_others_lines_and_keys_out_of_their_errors(recorded: Trajectory) -> None:
    """Both screens sit on the OTel exporter's one logger: each keeps only its own thread's lines as its reason."""
    import socket
    import threading

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    errors: dict[str, str] = {}

    def export(name: str, url: str) -> None:
        try:
            export_otlp_http([recorded, recorded.model_copy(update={"id": "again"})], url, timeout=3, batch_spans=1)
        except OtlpExportError as exc:
            errors[name] = str(exc)

    with OtlpReceiver(accept=1) as quota:
        threads = [threading.Thread(target=export, args=("refused", f"{quota.url}/v1/traces?api_key=sk-AAAAAAAAAAAAAAAA1")),
                   threading.Thread(target=export, args=("down", f"http://127.0.0.1:{port}/v1/traces?api_key=BBBB1234"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert set(errors) == {"refused", "down"}
    assert f"port={port}" not in errors["refused"] and "BBBB1234" not in errors["refused"], errors["refused"]
    assert "sk-AAAAAAAAAAAAAAAA1" not in errors["down"] and "BBBB1234" not in errors["down"]


def test_the_count_to_skip_includes_the_runs_skipped_before(tmp_path: Path) -> None:
    runs = [traced_adding_team().run(f"add {i} and 1") for i in range(4)]
    per_run = len(trajectory_spans(runs[0]))
    with OtlpReceiver(accept=1) as quota, pytest.raises(OtlpExportError, match="--skip 2 to send the rest"):
        export_otlp_http(runs[1:], quota.url, timeout=5, batch_spans=per_run, skipped=1)
    store = JsonlStore(tmp_path / "runs.jsonl")
    store.append(runs[0])
    code, err = 0, ""
    with CliRunner().isolation() as (_stdout, stderr, _):
        try:
            main(["export", "openinference", str(store.path), "-o", str(tmp_path / "o.json"), "--skip", "1"])
        except SystemExit as exc:
            code = exc.code
        err = stderr.getvalue().decode()
    assert code == 2 and "--skip is for --endpoint" in err and not (tmp_path / "o.json").exists()
