"""Steps and model calls the recorder builds without pydantic validation are the objects validation would give."""

from __future__ import annotations

import json

import agentracer
import pytest
from agentracer import Run, ToolCall, Trajectory
from agentracer.schema import ModelCall, Step, Usage, built
from agentracer.simple import TEXT_CODEC, SimpleAgent, SimpleTeam


def _step_fields(**overrides) -> dict:
    usage = Usage(prompt_tokens=3, completion_tokens=4)
    call = ModelCall(agent="a", call_index=0, step=1, request={"messages": [{"role": "user", "content": "hi"}]},
                     response={"content": "yo"}, request_hash="h", usage=usage)
    fields = {"index": 1, "agent": "a", "role": "assistant", "kind": "tool_call", "content": [{"x": 1}],
              "tool_calls": [ToolCall(id="1", name="add", arguments={"x": 1})], "tool_results": [],
              "model_calls": [call], "started_at": 1.0, "ended_at": 2.0, "usage": usage, "replaced": False,
              "metadata": {"type": "ToolCallRequestEvent"}}
    fields.update(overrides)
    return fields


def test_a_built_step_equals_the_validated_one_and_round_trips():
    fields = _step_fields()
    fast, checked = built(Step, dict(fields)), Step(**fields)
    assert fast == checked and fast.model_dump() == checked.model_dump()
    assert Step.model_validate_json(fast.model_dump_json()) == checked
    assert repr(fast) == repr(checked) and fast.text == checked.text


def test_built_objects_share_no_state_a_change_could_leak_through():
    one, two = built(ToolCall, {"id": "1", "name": "add", "arguments": {"a": 1}}), built(
        ToolCall, {"id": "2", "name": "sub", "arguments": None})
    one.name = "mul"
    assert two.name == "sub" and one.model_dump() == {"id": "1", "name": "mul", "arguments": {"a": 1}}
    assert one.model_fields_set == set(ToolCall.model_fields)
    copy = one.model_copy(update={"id": "7"})
    assert copy.id == "7" and one.id == "1"


def test_usage_is_immutable_so_a_step_and_its_model_call_can_share_it():
    from pydantic import ValidationError

    usage = built(Usage, {"prompt_tokens": 1, "completion_tokens": 2})
    with pytest.raises(ValidationError):
        usage.prompt_tokens = 10
    traj = agentracer.trace(lambda: SimpleTeam([SimpleAgent("a", lambda m: "one")], max_turns=1)).run("task")
    step = traj.steps[-1]
    assert step.usage is step.model_calls[0].usage and step.usage == Usage(**step.usage.model_dump())


def test_a_recorded_trajectory_validates_as_loaded_from_json():
    def factory():
        return SimpleTeam([SimpleAgent("a", lambda m: "one"), SimpleAgent("b", lambda m: "two")], max_turns=4)

    traj = agentracer.trace(factory).run("task")
    again = Trajectory.model_validate(json.loads(traj.to_json()))
    assert again == traj and len(again.steps) == 5
    assert all(c.request_hash for s in again.steps for c in s.model_calls)


@pytest.mark.parametrize("bad, error", [
    ({"kind": "speech"}, "unknown step kind 'speech'"),
    ({"agent": None}, "agent and role must be strings"),
    ({"role": 3}, "agent and role must be strings"),
    ({"tool_calls": [{"name": "add"}]}, "ToolCall and ToolResult objects"),
    ({"metadata": ["x"]}, "metadata must be a dict"),
])
def test_a_plugin_describing_a_bad_step_gets_a_clear_error(bad, error):
    run = Run(Trajectory(task="t"))
    args = {"agent": "a", "content": "hello", **bad}
    with pytest.raises((TypeError, ValueError), match=error):
        run.add_step(args.pop("agent"), args.pop("content"), **args)
    assert run.trajectory.steps == []


def test_a_model_call_needs_a_request_dict():
    run = Run(Trajectory(task="t"))
    with pytest.raises(TypeError, match="request dict"):
        run.call_model("a", [{"role": "user"}], lambda: "x", codec=None)  # type: ignore[arg-type]


def test_fill_missing_makes_only_the_missing_entries_in_place():
    from agentracer.redact import fill_missing

    made: list[str] = []

    def make(item: str) -> str:
        made.append(item)
        return item.upper()

    found = ["A", None, "C", None]
    fill_missing(found, ["a", "b", "c", "d"], make)
    assert found == ["A", "B", "C", "D"] and made == ["b", "d"]
    untouched = ["x", "y"]
    fill_missing(untouched, ["p", "q"], make)
    assert untouched == ["x", "y"] and made == ["b", "d"]


def test_a_finished_recording_holds_redacted_hashed_requests(monkeypatch):
    from agentracer.redact import request_hash

    monkeypatch.setenv("SERVICE_API_KEY", "zz-top-secret-value-42")

    def factory():
        return SimpleTeam([SimpleAgent("a", lambda m: "uses zz-top-secret-value-42")], max_turns=2)

    traj = agentracer.trace(factory).run("task")
    calls = [c for s in traj.steps for c in s.model_calls]
    assert calls and all(c.request_hash == request_hash(c.request) for c in calls)
    assert "zz-top-secret-value-42" not in traj.to_json()


def test_a_released_run_holds_nothing_of_its_recording_and_says_so_when_asked():
    from agentracer.redact import FrozenJSON

    run = Run(Trajectory(task="t"))
    message = FrozenJSON(role="user", content="hello")
    run.call_model("a", {"messages": [message]}, lambda: "hi", codec=TEXT_CODEC)
    run.add_step("a", "hi")
    traj = run.finish()
    assert len(traj.steps) == 1 and traj.steps[0].model_calls[0].request_hash
    run.release()
    with pytest.raises(RuntimeError, match="released"):
        run.trajectory  # noqa: B018 - the access is what is tested
    assert run.cassette is None and run.plugin_state == {} and run.next_index == 0
    assert run._redact._held == [] and not run._redact._frozen and not run._redact._known
    assert len(traj.steps) == 1  # the trajectory it returned is untouched

