"""Comparing two runs step by step: ``agentracer.compare`` and ``agentracer diff``."""

from __future__ import annotations

import json

import agentracer
from agentracer import JsonlStore
from agentracer.simple import SimpleAgent, SimpleTeam
from cli_invoke import run_cli


def make_team() -> SimpleTeam:
    def model(name: str):
        return lambda messages: f"{name} saw {len(messages)}: {messages[-1]['content']}"

    return SimpleTeam([SimpleAgent("planner", model("planner")), SimpleAgent("coder", model("coder"))], max_turns=4)


def answered_fixed(trajectory: agentracer.Trajectory) -> bool:
    return "FIXED" in (trajectory.outcome.answer or "")


def recorded_and_replayed() -> tuple[agentracer.Trajectory, agentracer.Trajectory]:
    traced = agentracer.trace(make_team, evaluator=answered_fixed)
    original = traced.run("sum 2 3")
    return original, traced.replay(original, step=2, action="FIXED")


def test_a_replay_against_its_run_same_prefix_replaced_step_changed_rest_and_outcomes() -> None:
    original, replayed = recorded_and_replayed()
    comparison = agentracer.compare(original, replayed)
    assert [row.status for row in comparison.rows] == ["same", "same", "replaced", "changed", "changed"]
    assert comparison.first_difference == 2
    assert comparison.rows[2].before.content != "FIXED" and comparison.rows[2].after.content == "FIXED"
    assert comparison.outcome_changed and original.outcome.success is False and replayed.outcome.success is True
    assert comparison.summary() == "steps 0-1 same, 2 replaced, 3-4 changed; outcome failure -> success"
    assert agentracer.compare(original, original).first_difference is None


def test_runs_of_different_lengths_show_the_steps_only_one_of_them_has() -> None:
    original, _ = recorded_and_replayed()
    shorter = original.model_copy(update={"steps": original.steps[:3]})
    rows = agentracer.compare(original, shorter).rows
    assert [row.status for row in rows] == ["same"] * 3 + ["only before"] * 2 and rows[4].after is None
    assert [row.status for row in agentracer.compare(shorter, original).rows][3:] == ["only after"] * 2


def test_tool_steps_that_differ_only_in_their_call_ids_are_the_same() -> None:
    """Models (and replacements) make up a tool call's id anew on every run; what was called, with what, and what
    came back decide."""
    from agentracer import Step, ToolCall, ToolResult

    def run(call_id: str, result: str) -> agentracer.Trajectory:
        return agentracer.Trajectory(task="t", steps=[
            Step(index=0, agent="a", kind="tool_call", content="add",
                 tool_calls=[ToolCall(id=call_id, name="add", arguments={"x": 1})]),
            Step(index=1, agent="a", kind="tool_result", role="tool", content=result,
                 tool_results=[ToolResult(call_id=call_id, name="add", content=result)]),
        ])

    assert [r.status for r in agentracer.compare(run("call_1", "2"), run("replaced-0", "2")).rows] == ["same", "same"]
    assert [r.status for r in agentracer.compare(run("call_1", "2"), run("call_1", "3")).rows] == ["same", "changed"]


def test_diff_on_the_command_line_finds_the_parent_in_the_same_store(tmp_path) -> None:
    original, replayed = recorded_and_replayed()
    store = JsonlStore(tmp_path / "runs.jsonl")
    store.append(original)
    store.append(replayed)
    code, out, err = run_cli("diff", str(tmp_path / "runs.jsonl"), "--id", replayed.id, "--width", "160")
    assert code == 0, err
    assert "2 replaced" in out and "FIXED" in out and "outcome failure -> success" in out
    code, out, err = run_cli("diff", str(tmp_path / "runs.jsonl"), "--id", replayed.id, "--json")
    data = json.loads(out)
    assert data["first_difference"] == 2 and data["before"] == original.id and data["after"] == replayed.id
    assert [s["status"] for s in data["steps"]][:3] == ["same", "same", "replaced"]


def test_diff_against_another_file_and_its_errors(tmp_path) -> None:
    original, replayed = recorded_and_replayed()
    (tmp_path / "run.json").write_text(original.to_json())
    (tmp_path / "replay.json").write_text(replayed.to_json())
    code, out, err = run_cli("diff", str(tmp_path / "replay.json"), str(tmp_path / "run.json"), "--json")
    assert code == 0 and json.loads(out)["summary"].startswith("steps 0-1 same, 2 replaced"), err
    code, out, err = run_cli("diff", str(tmp_path / "replay.json"))  # the parent is not in that file
    assert code == 2 and "give the file that holds it as AGAINST" in err and "Traceback" not in err
    code, out, err = run_cli("diff", str(tmp_path / "run.json"))  # not a replay, nothing to compare with
    assert code == 2 and "is not a replay" in err
    code, out, err = run_cli("diff", str(tmp_path / "replay.json"), str(tmp_path / "run.json"), "--against-id", "nope")
    assert code == 2 and "no trajectory with id 'nope'" in err


def test_a_replay_compared_with_itself_or_an_equal_replay_is_the_same() -> None:
    traced = agentracer.trace(make_team)
    original = traced.run("sum 2 3")
    first, second = (traced.replay(original, step=2, action="FIXED") for _ in range(2))
    for a, b in ((first, first), (first, second)):
        comparison = agentracer.compare(a, b)
        assert comparison.first_difference is None and comparison.summary().startswith("steps 0-4 same;")


def test_diff_against_a_file_without_the_replays_parent_compares_with_the_run_it_holds(tmp_path) -> None:
    _, replayed = recorded_and_replayed()
    other = agentracer.trace(make_team).run("sum 4 5")  # (another run, not the replay's parent)
    (tmp_path / "replay.json").write_text(replayed.to_json())
    (tmp_path / "other.json").write_text(other.to_json())
    code, out, err = run_cli("diff", str(tmp_path / "replay.json"), str(tmp_path / "other.json"), "--json")
    assert code == 0 and json.loads(out)["before"] == other.id, err
    store = JsonlStore(tmp_path / "others.jsonl")  # (several runs, none the parent: which one is meant is unsaid)
    store.extend([other, agentracer.trace(make_team).run("sum 6 7")])
    code, out, err = run_cli("diff", str(tmp_path / "replay.json"), str(tmp_path / "others.jsonl"), "--json")
    assert code == 2 and replayed.replay.parent_id in err


def test_steps_that_differ_in_their_tool_calls_alone_show_the_difference(tmp_path) -> None:
    from agentracer import Step, ToolCall, Trajectory

    def run(run_id: str, query: str) -> Trajectory:
        return Trajectory(id=run_id, steps=[Step(index=0, agent="a", kind="tool_call", content="calling search",
                                                 tool_calls=[ToolCall(id="1", name="search", arguments={"q": query})])])

    (tmp_path / "a.json").write_text(run("A", "cats").to_json())
    (tmp_path / "b.json").write_text(run("B", "dogs").to_json())
    code, out, err = run_cli("diff", str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--width", "200")
    assert code == 0 and "changed" in out and "cats" in out and "dogs" in out, err
    code, out, err = run_cli("diff", str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--json")
    row = json.loads(out)["steps"][0]
    assert row["status"] == "changed" and row["before"]["tool_calls"] == [{"name": "search", "arguments": {"q": "cats"}}]


def test_diff_as_an_html_page_escapes_what_the_runs_said(tmp_path) -> None:
    original, _ = recorded_and_replayed()
    replayed = agentracer.trace(make_team, evaluator=answered_fixed).replay(
        original, step=2, action="<script>alert(1)</script> FIXED")
    (tmp_path / "run.json").write_text(original.to_json())
    (tmp_path / "replay.json").write_text(replayed.to_json())
    code, _, err = run_cli("diff", str(tmp_path / "replay.json"), str(tmp_path / "run.json"), "--html",
                           str(tmp_path / "out" / "diff.html"))
    page = (tmp_path / "out" / "diff.html").read_text()
    assert code == 0 and "wrote" in err
    assert '<tr class="replaced first" id="first"><td class="idx">2</td>' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; FIXED" in page and "<script>alert(1)" not in page
    assert "steps 0-1 same, 2 replaced, 3-4 changed; outcome failure -&gt; success" in page


def test_diff_shows_two_long_steps_from_a_little_before_where_they_differ() -> None:
    from agentracer import Step
    from agentracer.cli.diff import _texts

    opening = "Here is the plan we agreed on, step by step, with every detail spelled out. " * 3
    before = Step(index=0, agent="a", content=opening + "Use port 8080.")
    after = Step(index=0, agent="a", content=opening + "Use port 9090.")
    old, new = _texts(before, after, 80)
    assert len(old) <= 80 and old.startswith("…") and "8080" in old and "9090" in new
    assert _texts(before, before, 80)[0] == _texts(before, before, 80)[1] and not _texts(before, before, 80)[0].startswith("…")
    early = Step(index=0, agent="a", content="Start here. " + opening)
    assert not _texts(early, after, 80)[0].startswith("…")  # a difference within the cut is shown as it is


def test_diff_text_is_never_read_as_markup_and_json_with_html_gives_both(tmp_path) -> None:
    original, replayed = recorded_and_replayed()
    original = original.model_copy(update={"id": "run[/bad]"})
    replayed.replay.parent_id = original.id
    (tmp_path / "run.json").write_text(original.to_json())
    (tmp_path / "replay.json").write_text(replayed.to_json())
    code, out, err = run_cli("diff", str(tmp_path / "replay.json"), str(tmp_path / "run.json"), "--width", "160")
    assert code == 0 and "Traceback" not in err and "run[/bad] ->" in out, err
    code, out, err = run_cli("diff", str(tmp_path / "replay.json"), str(tmp_path / "run.json"), "--json", "--html",
                             str(tmp_path / "diff.html"))
    assert code == 0 and json.loads(out)["before"] == "run[/bad]" and (tmp_path / "diff.html").exists()
