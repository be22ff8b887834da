"""`agentracer locate`: the tracer's verdict on recorded runs, printed and kept as labels, in-process."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from agentracer.cli.locate import with_verdict
from agentracer.formats.whowhen import load_whowhen
from agentracer.schema import Outcome, Step, Trajectory, Verdict
from agentracer.store import open_store, whole_records
from agentracer.testing.openai_server import OpenAIServer
from agentracer.tracer import locate
from cli_invoke import run_cli

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"
HAND = DATA / "Hand-Crafted" / "13.json"


def run_of(trajectory_id: str, success: bool | None, n_steps: int = 3) -> Trajectory:
    agents = ["planner", "coder", "checker"]
    return Trajectory(
        id=trajectory_id, task=f"Sum the list [1, 2, 3] (run {trajectory_id})", framework="python", outcome=Outcome(success=success),
        steps=[Step(index=i, agent=agents[i % 3], content=f"step {i}: " + ("the sum is 7" if i == 1 else "ok"))
               for i in range(n_steps)],
    )


def test_a_whowhen_file_gets_the_verdict_the_api_gives() -> None:
    code, out, err = run_cli("locate", str(HAND))
    assert code == 0, err
    verdict = locate(load_whowhen(HAND, root=HAND.parent))
    assert out.startswith(f"Hand-Crafted/13: {verdict.agent} at step {verdict.step} — lite tracer")
    assert f"step {verdict.step} [message]" in out  # the step it points at, quoted
    assert "1 located" in err


def test_successful_runs_are_skipped_unless_all(tmp_path: Path) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("failed", False), run_of("passed", True), run_of("unknown", None)])
    code, out, err = run_cli("locate", str(store.path), "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["failed", "unknown"]
    assert set(rows[0]) == {"id", "agent", "step", "reason", "confidence", "method", "flags"}
    assert rows[0]["method"] == "lite" and rows[0]["agent"] in {"planner", "coder", "checker"}
    assert "2 located, 1 successful" in err and "--all" in err
    code, out, _ = run_cli("locate", str(store.path), "--json", "--all")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == ["failed", "passed", "unknown"]


@pytest.mark.parametrize("suffix", ["jsonl", "db"])
def test_output_keeps_verdicts_as_labels_and_a_rerun_resumes(tmp_path: Path, suffix: str) -> None:
    source = open_store(tmp_path / "runs.jsonl")
    source.extend([run_of("a", False), run_of("b", False)])
    output = tmp_path / f"located.{suffix}"
    code, _, err = run_cli("locate", str(source.path), "--id", "a", "-o", str(output))
    assert code == 0, err
    kept = open_store(output).get("a")
    assert kept.labels[0].source == "tracer" and kept.labels[0].metadata["method"] == "lite"
    assert kept.steps == source.get("a").steps
    code, out, err = run_cli("locate", str(source.path), "-o", str(output))
    assert code == 0, err
    assert out.startswith("b: ") and "1 located, 1 done before" in err
    assert sorted(t.id for t in open_store(output)) == ["a", "b"]
    code, out, err = run_cli("show", str(output), "--id", "b", "--width", "120")
    assert code == 0 and "(tracer)" in out
    before = output.read_bytes() if suffix == "jsonl" else None
    code, _, err = run_cli("locate", str(source.path), "-o", str(output), "--method", "random")
    assert code == 2 and "holds verdicts of method lite" in err  # not "2 done before", the old method's verdicts kept
    assert before is None or output.read_bytes() == before


def test_a_new_verdict_replaces_the_same_methods_old_one_and_keeps_the_rest() -> None:
    human = Verdict(agent="coder", step=1, source="human")
    old_lite = Verdict(agent="planner", step=0, source="tracer", metadata={"method": "lite"})
    other = Verdict(agent="checker", step=2, source="tracer", metadata={"method": "agentracer"})
    trajectory = run_of("x", False).model_copy(update={"labels": [old_lite, human, other]})
    new = Verdict(agent="coder", step=1, source="tracer", metadata={"method": "lite"})
    updated = with_verdict(trajectory, new)
    assert updated.labels == [new, human, other]
    assert trajectory.labels == [old_lite, human, other]  # the original is left as it was


def test_bad_runs_are_reported_and_the_rest_still_located(tmp_path: Path) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("empty", False, n_steps=0), run_of("fine", False)])
    code, out, err = run_cli("locate", str(store.path))
    assert code == 2
    assert "empty" in err and "no steps" in err and "Traceback" not in err
    assert out.startswith("fine: ") and "1 located, 1 no verdict" in err


def test_model_answers_unreadable_then_model_failing(tmp_path: Path) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of(name, False) for name in ("one", "two", "three", "four")])
    answers = "<think>the sum is wrong</think><answer>coder|1</answer>||I cannot tell"
    code, out, err = run_cli("locate", str(store.path), "--model", f"scripted:{answers}", "-o",
                             str(tmp_path / "out.jsonl"))
    assert code == 1  # a model that failed for good, as in `eval`: not bad input (2)
    assert out.startswith("one: coder at step 1 — the sum is wrong")
    assert "two" in err and "no verdict" in err  # an unreadable answer: that run only
    assert "three: the model failed, stopping" in err and "four" not in out
    assert [t.id for t in open_store(tmp_path / "out.jsonl")] == ["one"]  # what was located is kept


def test_the_text_output_shows_what_the_tracer_flagged_about_its_answer(tmp_path: Path) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.append(run_of("one", False))
    answer = "<think>someone else</think><answer>ghost|1</answer>"
    code, out, _ = run_cli("locate", str(store.path), "--model", f"scripted:{answer}")
    assert code == 0 and out.startswith("one: ghost at step 1 [unknown_agent] — someone else")
    _, as_json, _ = run_cli("locate", str(store.path), "--model", f"scripted:{answer}", "--json")
    assert json.loads(as_json)["flags"] == ["unknown_agent"]


def test_a_model_free_method_given_a_model_and_a_model_method_without_one_are_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.append(run_of("a", False))
    for command in ("locate", "eval"):
        data = [str(store.path)] if command == "locate" else ["whowhen", "--data", str(DATA), "-o",
                                                              str(tmp_path / "r.jsonl")]
        code, _, err = run_cli(command, *data, "--method", "lite", "--model", "scripted:x")
        assert code == 2 and "method 'lite' uses no model" in err, err
        code, _, err = run_cli(command, *data, "--method", "all-at-once")
        assert code == 2 and "method 'all-at-once' needs --model" in err, err
    assert not (tmp_path / "r.jsonl").exists()


def test_refusals_are_clear(tmp_path: Path) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.append(run_of("a", False))
    code, _, err = run_cli("locate", str(store.path), "-o", str(store.path))
    assert code == 2 and "another store than SOURCE" in err
    code, _, err = run_cli("locate", str(store.path), "-o", str(tmp_path / "out.txt"))
    assert code == 2 and ".jsonl or .db" in err
    code, _, err = run_cli("locate", str(store.path), "--id", "zzz")
    assert code == 2 and "zzz" in err and "Traceback" not in err
    code, _, err = run_cli("locate", str(store.path), "--method", "psychic")
    assert code == 2 and "unknown attribution method" in err


@pytest.fixture()
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No answer cached by an earlier test: every verdict asks the server."""
    monkeypatch.setenv("AGENTRACER_CACHE_DIR", str(tmp_path / "cache"))


def test_a_model_behind_an_openai_compatible_server(tmp_path: Path, fresh_cache: None) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("one", False), run_of("two", False)])
    with OpenAIServer("<think>coder added wrong</think><answer>coder|1</answer>", fail_every=2) as server:
        code, out, err = run_cli("locate", str(store.path), "--with-gt", "--json",
                                 "--model", f"openai:{server.base_url}@tracer-8b")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]  # in the order they were answered
    assert sorted((r["id"], r["agent"], r["step"], r["method"]) for r in rows) == [("one", "coder", 1, "agentracer"),
                                                                                   ("two", "coder", 1, "agentracer")]
    assert len(server.requests) == 3  # the failed call was retried
    sent = [json.dumps(request) for request in server.requests]
    assert any("(run one)" in r for r in sent) and any("(run two)" in r for r in sent)


def test_a_server_that_keeps_refusing_stops_the_run_and_keeps_what_was_done(tmp_path: Path, fresh_cache: None) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("one", False), run_of("two", False)])
    with OpenAIServer("<answer>coder|1</answer>", fail_every=1, fail_status=401) as server:
        code, out, err = run_cli("locate", str(store.path), "--model", f"openai:{server.base_url}@m",
                                 "-o", str(tmp_path / "out.jsonl"), "--concurrency", "1")
    assert code == 1 and out == ""
    assert "one: the model failed, stopping" in err and "HTTP 401" in err and "two" not in err
    assert len(open_store(tmp_path / "out.jsonl")) == 0


def test_model_calls_overlap_up_to_the_concurrency(tmp_path: Path, fresh_cache: None) -> None:
    """The server answers only when two requests wait together: one at a time, every call would time out."""
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of(f"run{i}", False) for i in range(4)])
    together = threading.Barrier(2, timeout=20)

    def answer(_request: dict) -> str:
        together.wait()
        return "<answer>coder|1</answer>"

    with OpenAIServer(answer) as server:
        code, out, err = run_cli("locate", str(store.path), "--json", "--concurrency", "2",
                                 "--model", f"openai:{server.base_url}@m")
    assert code == 0, err
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == [f"run{i}" for i in range(4)]
    assert len(server.requests) == 4


def test_a_verdict_outside_the_run_is_no_verdict_and_is_not_kept(tmp_path: Path, fresh_cache: None) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("one", False)])
    output = tmp_path / "out.jsonl"
    with OpenAIServer("<answer>coder|99</answer>") as server:
        code, out, err = run_cli("locate", str(store.path), "--model", f"openai:{server.base_url}@m",
                                 "-o", str(output))
    assert code == 2 and out == ""
    assert "the tracer named step 99 of 'coder', but the run has steps 0..2" in err
    assert len(open_store(output)) == 0  # nothing unreadable kept; a rerun asks again


def test_locate_prints_a_steps_terminal_codes_escaped(tmp_path: Path) -> None:
    run = Trajectory(id="r", task="t", outcome=Outcome(success=False),
                     steps=[Step(index=i, agent=f"a{i}", content="\x1b]0;pwned\x07\x1b[2J wrong") for i in range(3)])
    store = tmp_path / "s.jsonl"
    open_store(store).append(run)
    code, out, err = run_cli("locate", str(store), "--method", "random")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;pwned\\x07" in out


def test_locate_on_a_file_with_no_run_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = run_cli("locate", str(empty))
    assert code == 2 and "no trajectory in it" in err


def test_a_key_the_tracer_quotes_is_never_printed_or_kept(tmp_path: Path) -> None:
    key = "ghp_" + "Z9y8X7w6" * 5
    store = open_store(tmp_path / "runs.jsonl")
    store.append(run_of("one", False))
    answers = f"<think>the coder leaked {key} and summed wrong</think><answer>coder|1</answer>"
    code, out, err = run_cli("locate", str(store.path), "--model", f"scripted:{answers}", "-o",
                             str(tmp_path / "out.jsonl"), "--json")
    assert code == 0, err
    assert key not in out + err and "[REDACTED]" in out
    assert key not in (tmp_path / "out.jsonl").read_text()
    code, out, err = run_cli("eval", "whowhen", "--data", str(_rows_of(tmp_path)), "--model", f"scripted:{answers}",
                             "-o", str(tmp_path / "results.jsonl"))
    assert code == 0, err
    assert key not in (tmp_path / "results.jsonl").read_text() + out + err


def _rows_of(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"question_ID": "q", "question": "?", "mistake_agent": "coder", "mistake_step": 1,
                                "history": [{"content": "plan", "name": "planner", "step": 0},
                                            {"content": "7", "name": "coder", "step": 1}]}) + "\n")
    return path


def test_an_output_holding_another_models_verdicts_is_refused(tmp_path: Path) -> None:
    source = open_store(tmp_path / "runs.jsonl")
    source.extend([run_of("a", False), run_of("b", False)])
    for name in ("first", "second"):
        answer = json.dumps({"text": "<think>x</think><answer>coder|1</answer>"})
        (tmp_path / f"{name}.jsonl").write_text(f"{answer}\n{answer}\n")
    output = tmp_path / "located.jsonl"
    code, _, err = run_cli("locate", str(source.path), "--id", "a", "--model", f"scripted:{tmp_path / 'first.jsonl'}",
                           "-o", str(output))
    assert code == 0, err
    assert open_store(output).get("a").labels[0].metadata["model"] == "scripted:first.jsonl"
    before = output.read_bytes()
    code, _, err = run_cli("locate", str(source.path), "--model", f"scripted:{tmp_path / 'second.jsonl'}",
                           "-o", str(output))
    assert code == 2 and "holds verdicts of model scripted:first.jsonl" in err and output.read_bytes() == before
    code, _, err = run_cli("locate", str(source.path), "--model", f"scripted:{tmp_path / 'first.jsonl'}",
                           "-o", str(output))
    assert code == 0 and "1 located, 1 done before" in err, err


def test_a_model_whose_name_looks_like_a_key_resumes_its_own_output(tmp_path: Path) -> None:
    source = open_store(tmp_path / "runs.jsonl")
    source.extend([run_of("a", False), run_of("b", False)])
    answers = tmp_path / "tracer_hf_Qwen3Instruct8Bv2025.jsonl"  # ("hf_..." is a Hugging Face token's shape)
    answer = json.dumps({"text": "<think>x</think><answer>coder|1</answer>"})
    answers.write_text(f"{answer}\n{answer}\n")
    output = tmp_path / "located.jsonl"
    code, _, err = run_cli("locate", str(source.path), "--id", "a", "--model", f"scripted:{answers}", "-o", str(output))
    assert code == 0, err
    code, _, err = run_cli("locate", str(source.path), "--model", f"scripted:{answers}", "-o", str(output))
    assert code == 0 and "1 located, 1 done before" in err, err


def test_a_run_too_long_for_the_models_window_costs_that_run_only(tmp_path: Path, fresh_cache: None) -> None:
    """vLLM refuses a prompt over its window with HTTP 400: the other runs are located, the long one is named with
    the way out, and --max-prompt-tokens makes it fit."""
    store = open_store(tmp_path / "runs.jsonl")
    long_run = run_of("long", False, n_steps=3)
    long_run.steps[2].content = "step 2: " + "a very long observation " * 2000  # ~12k tokens at 4 characters each
    store.extend([run_of("short", False), long_run, run_of("other", False)])
    with OpenAIServer("<answer>coder|1</answer>", context_window=8192) as server:
        model = f"openai:{server.base_url}@m"
        code, out, err = run_cli("locate", str(store.path), "--model", model, "--concurrency", "1",
                                 "-o", str(tmp_path / "out.jsonl"))
        assert code == 2, err
        assert "long: no verdict: the model refused it (a prompt over the model's window? --max-prompt-tokens)" in err
        assert "maximum context length is 8192 tokens" in err
        assert sorted(t.id for t in open_store(tmp_path / "out.jsonl")) == ["other", "short"]
        code, out, err = run_cli("locate", str(store.path), "--model", model, "--max-prompt-tokens", "4000",
                                 "-o", str(tmp_path / "out.jsonl"))
    assert code == 0, err
    assert sorted(t.id for t in open_store(tmp_path / "out.jsonl")) == ["long", "other", "short"]


def test_a_verdict_naming_no_agent_of_the_run_is_shown_but_not_kept(tmp_path: Path, fresh_cache: None) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("one", False)])
    with OpenAIServer("<answer>Zorglub_Agent|1</answer>") as server:
        code, out, err = run_cli("locate", str(store.path), "--model", f"openai:{server.base_url}@m",
                                 "-o", str(tmp_path / "out.jsonl"))
    assert code == 2 and out.startswith("one: Zorglub_Agent at step 1 [missing_think, unknown_agent]")
    assert "not kept: the tracer named agent 'Zorglub_Agent', which the run does not have" in err
    assert "0 located, 1 not kept" in err and "verdicts kept" not in err
    assert len(open_store(tmp_path / "out.jsonl")) == 0  # (a rerun asks again)


def test_lite_verdicts_name_their_weights_and_a_store_of_unnamed_ones_is_not_resumed(tmp_path: Path) -> None:
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("one", False), run_of("two", False)])
    code, _, err = run_cli("locate", str(store.path), "--id", "one", "-o", str(tmp_path / "out.jsonl"))
    assert code == 0, err
    [kept] = list(open_store(tmp_path / "out.jsonl"))
    assert kept.labels[0].metadata["model"].startswith("lite weights of ")
    older = kept.model_copy(deep=True)
    del older.labels[0].metadata["model"]  # (as the release before kept them)
    (tmp_path / "older.jsonl").write_text(older.model_dump_json() + "\n")
    code, _, err = run_cli("locate", str(store.path), "-o", str(tmp_path / "older.jsonl"))
    assert code == 2 and "lite weights of an earlier release" in err


def test_a_vllm_server_that_lists_its_window_gets_prompts_fitted_to_it(tmp_path: Path, fresh_cache: None) -> None:
    """The run too long for an 8192-token window is located when the server lists the window (vLLM's
    ``max_model_len``): no --max-prompt-tokens needed."""
    store = open_store(tmp_path / "runs.jsonl")
    long_run = run_of("long", False, n_steps=3)
    long_run.steps[2].content = "step 2: " + "a very long observation " * 2000
    store.extend([long_run])
    with OpenAIServer("<answer>coder|1</answer>", model="m", context_window=8192) as server:
        code, out, err = run_cli("locate", str(store.path), "--model", f"openai:{server.base_url}@m",
                                 "-o", str(tmp_path / "out.jsonl"))
        asked = server.requests
    assert code == 0, err
    assert [t.id for t in open_store(tmp_path / "out.jsonl")] == ["long"]
    assert sum(len(m["content"]) for m in asked[0]["messages"]) < 8192 * 3
    assert "1 located (prompts up to 4096 tokens)" in err, err  # (said, as eval says it)
    with OpenAIServer("<answer>coder|1</answer>", model="m", context_window=8192) as server:
        code, _, err = run_cli("eval", "whowhen", "--data", str(_rows_of(tmp_path)), "--model",
                               f"openai:{server.base_url}@m", "-o", str(tmp_path / "results.jsonl"))
    assert "(prompts up to 4096 tokens)" in err, err  # (8192 less the 4096 an answer may take)


def test_a_store_located_through_a_server_that_moved_resumes_as_eval_does(tmp_path: Path, fresh_cache: None) -> None:
    """`eval` took openai:URL@MODEL results as MODEL's whichever server answered; `locate -o` refused them as another
    model's. Both compare alike now; another model is still refused."""
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("one", False), run_of("two", False)])
    out = str(tmp_path / "out.jsonl")
    with OpenAIServer("<answer>coder|1</answer>") as server:
        code, _, err = run_cli("locate", str(store.path), "--id", "one", "--model", f"openai:{server.base_url}@m",
                               "-o", out)
        assert code == 0, err
    with OpenAIServer("<answer>coder|1</answer>") as moved:
        code, _, err = run_cli("locate", str(store.path), "--model", f"openai:{moved.base_url}@m", "-o", out)
        assert code == 0 and "1 located, 1 done before" in err, err
        code, _, err = run_cli("locate", str(store.path), "--model", f"openai:{moved.base_url}@other", "-o", out)
    assert code == 2 and "holds verdicts of model openai:" in err


def test_a_store_a_kill_left_a_torn_record_in_is_resumed(tmp_path: Path) -> None:
    """The README's promise (a torn record never counts as stored, its run is appended again) held for eval, refine
    and annotate; locate -o refused the store for good, also once a writer had ended the torn line."""
    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("one", False), run_of("two", False)])
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli("locate", str(store.path), "--id", "one", "-o", str(out))
    assert code == 0, err
    whole = out.read_text()
    out.write_text(whole + whole[: len(whole) // 2].replace('"one"', '"two"'))  # killed mid-append of "two"
    for _ in range(2):  # (the second time, the torn line ended by the writer that resumed)
        code, _, err = run_cli("locate", str(store.path), "-o", str(out))
        assert code == 0 and "Traceback" not in err, err
    assert sorted(t.id for t in whole_records(open_store(out))) == ["one", "two"]


def test_a_second_locate_into_the_same_store_is_refused_at_once(tmp_path: Path) -> None:
    from agentracer.exclusive import sole_writer

    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of("one", False)])
    out = tmp_path / "out.jsonl"
    with sole_writer(out, "a first locate"):
        code, _, err = run_cli("locate", str(store.path), "-o", str(out))
    assert code == 2 and "another process" in err and "a first locate" in err and "Traceback" not in err
    assert not out.exists() or out.read_text() == ""


def test_an_unexpected_error_of_one_run_ends_locate_with_it_not_lost(tmp_path: Path, monkeypatch) -> None:
    """A run's task that raised something unexpected and finished before the last ones was dropped unseen (only
    'Task exception was never retrieved' at exit) and the batch went on."""
    from agentracer.tracer import lite

    store = open_store(tmp_path / "runs.jsonl")
    store.extend([run_of(f"r{i}", False) for i in range(6)])

    asked = []

    async def broken(self, trajectory, *, with_ground_truth=False):
        asked.append(trajectory.id)
        raise RuntimeError(f"tracer bug on {trajectory.id}")

    monkeypatch.setattr(lite.LiteTracer, "alocate", broken)
    with pytest.raises(RuntimeError, match="tracer bug on r0"):
        run_cli("locate", str(store.path), "--concurrency", "2")
    assert len(asked) < 6  # (no run started after it)
