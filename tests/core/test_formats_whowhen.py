"""Who&When import/export through the API: the 136 shipped files round-trip to equal JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agentracer.errors import InputError
from agentracer.formats.whowhen import (
    agent_from_role,
    export_path,
    from_whowhen,
    iter_whowhen_dir,
    load_whowhen,
    to_whowhen,
)
from agentracer.schema import Trajectory

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"
FILES = sorted(DATA.rglob("*.json"))


def test_the_shipped_split_is_all_there() -> None:
    assert len(FILES) == 136
    assert {f.parent.name for f in FILES} == {"Algorithm-Generated", "Hand-Crafted"}


def test_every_file_round_trips_to_equal_json_through_the_schema() -> None:
    seen = 0
    for relative, item in iter_whowhen_dir(DATA):
        assert not isinstance(item, InputError), item
        stored = Trajectory.from_json(item.to_json())  # as a store would keep it
        assert to_whowhen(stored) == json.loads((DATA / relative).read_text()), relative
        assert export_path(stored) == relative
        assert stored.metadata["subset"] == Path(relative).parts[0]
        seen += 1
    assert seen == 136


def test_subset_folder_as_root_keeps_the_subset_in_the_path() -> None:
    relative, trajectory = next(iter(iter_whowhen_dir(DATA / "Hand-Crafted")))
    assert isinstance(trajectory, Trajectory)
    assert trajectory.metadata["source_path"].startswith("Hand-Crafted/")
    assert trajectory.framework == "magentic-one"


@pytest.mark.parametrize(("role", "agent", "detail"), [
    ("Orchestrator (-> WebSurfer)", "Orchestrator", "-> WebSurfer"),
    ("Orchestrator (thought)", "Orchestrator", "thought"),
    ("WebSurfer", "WebSurfer", None),
    ("human", "human", None),
])
def test_agent_parsed_from_magentic_one_roles(role: str, agent: str, detail: str | None) -> None:
    assert agent_from_role(role) == (agent, detail)


def test_hand_crafted_label_and_agents() -> None:
    trajectory = load_whowhen(DATA / "Hand-Crafted" / "13.json", root=DATA)
    data = json.loads((DATA / "Hand-Crafted" / "13.json").read_text())
    label = trajectory.human_label
    assert label is not None and label.source == "human"
    assert label.step == int(data["mistake_step"]) and label.agent == data["mistake_agent"]
    assert {"Orchestrator", "WebSurfer"} <= set(trajectory.agent_names)
    assert all("(" not in step.agent for step in trajectory.steps)
    assert [s.index for s in trajectory.steps] == list(range(len(data["history"])))


def test_algorithm_generated_names_and_system_prompts() -> None:
    path = DATA / "Algorithm-Generated" / "1.json"
    data = json.loads(path.read_text())
    trajectory = load_whowhen(path, root=DATA)
    assert [s.agent for s in trajectory.steps] == [h["name"] for h in data["history"]]
    assert {a.name for a in trajectory.agents} == set(data["system_prompt"])
    assert trajectory.metadata["question_id"] == data["question_ID"]


@pytest.mark.parametrize(("record", "field"), [
    ({"question": "q"}, "history"),
    ({"history": 5}, "history"),
    ({"history": [{"role": "a"}]}, "history[0]"),
    ({"history": [{"content": "x", "name": "a"}], "mistake_agent": "a", "mistake_step": "x"}, "mistake_step"),
    ({"history": [{"content": "x", "name": "a"}], "mistake_agent": "a", "mistake_step": "3"}, "mistake_step"),
    ({"history": [{"content": "x", "name": "a"}], "mistake_step": "0"}, "mistake_agent"),
])
def test_bad_records_name_the_file_and_field(record: dict, field: str) -> None:
    with pytest.raises(InputError) as info:
        from_whowhen(record, where="bad.json")
    assert str(info.value).startswith("bad.json")
    assert field in str(info.value)


def test_a_recorded_run_keeps_its_label_source_outcome_and_prompts_through_whowhen() -> None:
    from agentracer.schema import AgentInfo, Outcome, Step, Trajectory, Verdict

    run = Trajectory(
        id="run-1", task="sum", framework="autogen", outcome=Outcome(success=False, feedback="expected 9, got 7"),
        agents=[AgentInfo(name="planner", system_prompt="You plan."), AgentInfo(name="coder")],
        steps=[Step(index=0, agent="user", role="user", content="sum"),
               Step(index=1, agent="planner", content="plan"), Step(index=2, agent="coder", content="7")],
        labels=[Verdict(agent="coder", step=1, source="tracer"),
                Verdict(agent="coder", step=2, source="counterfactual", reason="7 is wrong")])
    record = to_whowhen(run)
    assert (record["mistake_agent"], record["mistake_step"]) == ("coder", "2")  # the truth, not the tracer's guess
    assert record["label_source"] == "counterfactual" and record["is_correct"] is False
    assert record["system_prompt"] == {"planner": "You plan."}
    back = from_whowhen(json.loads(json.dumps(record)), where="run-1.json")
    assert back.labels[0].source == "counterfactual" and back.labels[0].step == 2
    assert back.outcome.success is False and back.agents[0].system_prompt == "You plan."
    assert back.outcome == run.outcome  # the feedback a tracer's prompt shows comes back too
    assert to_whowhen(back) == record


def test_a_run_with_only_a_tracers_verdict_is_written_with_no_mistake_fields() -> None:
    """Who&When's scripts score against mistake_agent/mistake_step: a tracer's guess written there was taken for
    the truth (TracerTraj rows refuse such a run)."""
    from agentracer.schema import Step, Trajectory, Verdict

    run = Trajectory(id="guessed", task="sum", steps=[Step(index=0, agent="user", role="user", content="sum"),
                                                      Step(index=1, agent="coder", content="7")],
                     labels=[Verdict(agent="coder", step=1, source="tracer", reason="looks wrong")])
    record = to_whowhen(run)
    assert not {"mistake_agent", "mistake_step", "mistake_reason", "label_source"} & record.keys()
    # a Who&When file whose label a tracer made goes back as it was (the export of an imported file is equal)
    written = {"history": [{"content": "sum", "role": "user", "name": "user"}], "question": "sum",
               "mistake_agent": "user", "mistake_step": "0", "mistake_reason": "guess", "label_source": "tracer"}
    assert to_whowhen(from_whowhen(json.loads(json.dumps(written)), where="guess.json")) == written


def _tool_run() -> Trajectory:
    from agentracer.schema import Step, ToolCall, ToolResult

    return Trajectory(
        id="tools-1", task="add", framework="autogen", ground_truth={"answer": 7, "unit": None},
        steps=[Step(index=0, agent="user", role="user", content="add 3 and 4"),
               Step(index=1, agent="coder", kind="tool_call", content=[{"name": "add"}],
                    tool_calls=[ToolCall(id="c1", name="add", arguments={"a": 3, "b": 4})]),
               Step(index=2, agent="coder", role="tool", kind="tool_result", content="7",
                    tool_results=[ToolResult(call_id="c1", name="add", content="7")]),
               Step(index=3, agent="coder", role="tool", kind="tool_result", content="boom",
                    tool_results=[ToolResult(call_id="c2", name="div", content="boom", is_error=True)])])


def test_tool_steps_and_a_dict_ground_truth_round_trip() -> None:
    run = _tool_run()
    record = json.loads(json.dumps(to_whowhen(run)))
    assert isinstance(record["ground_truth"], str)
    assert json.loads(record["ground_truth"]) == run.ground_truth
    assert "kind" not in record["history"][0] and "tool_calls" not in record["history"][0]
    back = from_whowhen(record, where="tools-1.json")
    assert back.ground_truth == run.ground_truth
    for old, new in zip(run.steps, back.steps, strict=True):
        assert (new.kind, new.agent, new.content) == (old.kind, old.agent, old.content)
        assert (new.tool_calls, new.tool_results) == (old.tool_calls, old.tool_results)
    assert to_whowhen(back) == record


def test_a_string_ground_truth_and_plain_steps_export_as_before() -> None:
    from agentracer.schema import Step

    run = Trajectory(id="r", task="q", framework="autogen", ground_truth="42",
                     steps=[Step(index=0, agent="a", content="hi")])
    record = to_whowhen(run)
    assert record["history"] == [{"content": "hi", "role": "assistant", "name": "a"}]
    assert record["ground_truth"] == "42" and "ground_truth_json" not in record


def test_a_whowhen_file_without_the_extra_keys_loads_as_before() -> None:
    path = DATA / "Algorithm-Generated" / "1.json"
    data = json.loads(path.read_text())
    trajectory = load_whowhen(path, root=DATA)
    assert all(s.kind == "message" and not s.tool_calls and not s.tool_results for s in trajectory.steps)
    assert trajectory.ground_truth == data["ground_truth"]
    assert to_whowhen(trajectory) == data


@pytest.mark.parametrize(("item", "field"), [
    ({"content": "x", "name": "a", "tool_calls": "add"}, "tool_calls"),
    ({"content": "x", "name": "a", "tool_calls": [5]}, "tool_calls"),
    ({"content": "x", "name": "a", "tool_results": [{"is_error": "maybe"}]}, "tool_results"),
    ({"content": "x", "name": "a", "kind": "shout"}, "kind"),
])
def test_malformed_extra_keys_name_the_file_and_entry(item: dict, field: str) -> None:
    with pytest.raises(InputError) as info:
        from_whowhen({"history": [item]}, where="bad.json")
    assert str(info.value).startswith("bad.json: history[0]")
    assert field in str(info.value)


def test_agents_descriptions_models_and_tools_round_trip_beside_whowhens_own_keys(tmp_path: Path) -> None:
    from agentracer.schema import AgentInfo, Step

    agents = [AgentInfo(name="planner", system_prompt="You plan.", description="plans", model="gpt-4o", tools=["search"]),
              AgentInfo(name="coder", model="claude", tools=["python", "shell"]),
              AgentInfo(name="quiet", system_prompt=""),
              AgentInfo(name="twin", system_prompt="first"), AgentInfo(name="twin", system_prompt="second")]
    run = Trajectory(id="team/run-1", framework="autogen", agents=agents,
                     steps=[Step(index=0, agent="planner", content="plan")])
    record = json.loads(json.dumps(to_whowhen(run)))
    assert record["system_prompt"] == {"planner": "You plan.", "twin": "second"}  # Who&When's key, as the dataset has it
    assert record["agents"][0] == {"name": "planner", "description": "plans", "model": "gpt-4o", "tools": ["search"]}
    path = tmp_path / export_path(run)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    back = load_whowhen(path, root=tmp_path)
    assert back.id == run.id and back.agents == agents
    assert to_whowhen(back) == record  # (and an exported import is the equal JSON)


def test_agents_that_only_have_prompts_export_as_before() -> None:
    from agentracer.schema import AgentInfo, Step

    run = Trajectory(id="r", framework="autogen", agents=[AgentInfo(name="a", system_prompt="You are a.")],
                     steps=[Step(index=0, agent="a", content="hi")])
    record = to_whowhen(run)
    assert record["system_prompt"] == {"a": "You are a."} and "agents" not in record
    assert from_whowhen(record, where="r.json").agents == run.agents


@pytest.mark.parametrize("agents", [[{"name": "a", "tools": "python"}], [{"name": "a", "model": 5}]])
def test_a_malformed_agents_key_names_the_file_and_field(agents: object) -> None:
    with pytest.raises(InputError, match=r"^bad.json: field 'agents'"):
        from_whowhen({"history": [{"name": "a", "content": "x"}], "agents": agents}, where="bad.json")


@pytest.mark.parametrize("agents", ["planner", ["planner", "coder"], [5], [{"model": "gpt"}], [], {"a": 1}])
def test_another_tools_agents_key_is_the_files_own_and_goes_back_as_it_was(agents: object) -> None:
    data = {"question": "q", "history": [{"name": "a", "role": "a", "content": "x"}], "agents": agents}
    run = from_whowhen(data, where="other.json")
    assert run.agents == [] and to_whowhen(run)["agents"] == agents


@pytest.mark.parametrize("agent", [None, ["A"], True])
def test_a_mistake_agent_that_is_not_a_name_is_refused(agent: object) -> None:
    data = {"history": [{"name": "A", "content": "hi"}], "question": "q", "mistake_agent": agent, "mistake_step": "0"}
    with pytest.raises(InputError, match="'mistake_agent' must be an agent's name"):
        from_whowhen(data, where="x.json")


def test_a_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "7.json"
    path.write_bytes(b"\xef\xbb\xbf" + FILES[0].read_bytes())
    assert load_whowhen(path).steps == load_whowhen(FILES[0]).steps


def test_secrets_a_whowhen_file_holds_are_redacted_on_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever reads a Who&When file (import, eval, train prepare) gets it without this environment's keys or
    key-shaped values, as every run agentracer records or imports from spans."""
    from agentracer.formats.whowhen import load_whowhen

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-1234567890abcdef")
    data = json.loads((DATA / "Algorithm-Generated" / "1.json").read_text(encoding="utf-8"))
    data["question"] += " (key sk-test-secret-1234567890abcdef)"
    data["history"][0]["content"] += " sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    (tmp_path / "1.json").write_text(json.dumps(data), encoding="utf-8")
    run = load_whowhen(tmp_path / "1.json")
    text = run.to_json()
    assert "sk-test-secret" not in text and "sk-proj-ABCDEFGH" not in text
    assert run.task is not None and run.task.endswith("(key [REDACTED])") and "[REDACTED]" in run.steps[0].text


def test_an_imported_ground_truth_is_kept_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentracer.formats.whowhen import load_whowhen

    monkeypatch.setenv("SERVICE_TOKEN", "Mixed-Case-Secret-0123")
    data = json.loads((DATA / "Algorithm-Generated" / "1.json").read_text(encoding="utf-8"))
    data["ground_truth"] = "sk-abcdefghijklmnopqrstuvwxyz"  # (a key-shaped answer: Ω needs it whole)
    data["history"][0]["content"] += " Mixed-Case-Secret-0123"
    (tmp_path / "1.json").write_text(json.dumps(data), encoding="utf-8")
    run = load_whowhen(tmp_path / "1.json")
    assert run.ground_truth == "sk-abcdefghijklmnopqrstuvwxyz" and "Mixed-Case-Secret" not in run.to_json().replace(
        "sk-abcdefghijklmnopqrstuvwxyz", "")


def test_hidden_files_in_a_whowhen_folder_are_not_runs(tmp_path: Path) -> None:
    """A writer's leftover temporary file (``.13.4242.1.tmp.json``), ``.git``: not read; a file whose name starts
    with a dot (``.._up.json``, ``.run.json`` for an id ``.run``) is."""
    from agentracer.formats.whowhen import iter_whowhen_dir

    (tmp_path / "Hand-Crafted").mkdir()
    (tmp_path / "Hand-Crafted" / "13.json").write_text((DATA / "Hand-Crafted" / "13.json").read_text())
    (tmp_path / "Hand-Crafted" / ".13.4242.1.tmp.json").write_text('{"history": [')
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.json").write_text("{}")
    (tmp_path / ".._up.json").write_text((DATA / "Hand-Crafted" / "13.json").read_text())
    assert [where for where, _ in iter_whowhen_dir(tmp_path)] == [".._up.json", "Hand-Crafted/13.json"]
