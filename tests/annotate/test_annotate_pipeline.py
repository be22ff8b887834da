"""The annotation pipeline and ``agentracer annotate``: labels, exports, and resuming after a kill."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import agentracer
import pytest
from agentracer.annotate.budget import Budget
from agentracer.annotate.ledger import Ledger, read_trajectories
from agentracer.annotate.pipeline import AnnotationPipeline
from agentracer.annotate.tasks import TaskRow, read_tasks
from agentracer.errors import InputError
from agentracer.formats.tracertraj import read_tracertraj
from agentracer.models import ModelError, ScriptedModel
from agentracer.testing.openai_server import OpenAIServer
from annotate_teams import (
    chain_analyzer,
    chain_evaluator,
    chain_perturber,
    last_value,
    make_chain,
    make_task_chain,
)

HERE = Path(__file__).parent
TEAM_FILE = HERE / "annotate_teams.py"


def write_tasks(path: Path, n: int, steps: int = 6) -> Path:
    rows = []
    for i in range(n):
        slip = 2 + i % 3 if i % 2 == 0 else None  # even tasks fail at step 2..4, odd ones succeed
        text = f"Count from 0, one step per message. Task {i}." + (f" slip={slip}" if slip else "")
        rows.append({"id": f"t{i}", "task": text, "ground_truth": str(steps - 1)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pipeline_labels_failures_and_successes(tmp_path):
    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", 4))
    team = agentracer.trace(make_task_chain)
    pipeline = AnnotationPipeline(team, chain_evaluator, tmp_path / "ds", analyzer=ScriptedModel(chain_analyzer),
                                  perturber=ScriptedModel(chain_perturber), k=2, concurrency=2)
    summary = pipeline.run(tasks, progress=False)
    assert summary.errors == [] and summary.done == 4
    assert (summary.failed_runs, summary.successful_runs) == (2, 2)
    assert summary.counterfactual_labels == 2 and summary.injection_labels == 2
    everything = read_trajectories(tmp_path / "ds" / "trajectories.jsonl")
    failed = [t for t in everything if t.replay is None and t.outcome.success is False]
    assert sorted((t.metadata["task_id"], t.label("counterfactual").step) for t in failed) == [("t0", 2), ("t2", 4)]
    injected = [t for t in everything if t.label("injection")]
    assert len(injected) == 2 and all(t.outcome.success is False for t in injected)
    labelled = read_trajectories(tmp_path / "ds" / "labelled.jsonl")
    assert len(labelled) == 4
    rows = read_tracertraj(tmp_path / "ds" / "tracertraj.parquet")
    assert sorted(r.labels[0].source for r in rows) == ["counterfactual", "counterfactual", "injection", "injection"]
    assert len(read_tracertraj(tmp_path / "ds" / "tracertraj.jsonl")) == 4
    # a second run finds everything done and adds nothing
    again = AnnotationPipeline(team, chain_evaluator, tmp_path / "ds", analyzer=ScriptedModel([]),
                               perturber=ScriptedModel([])).run(tasks, progress=False)
    assert again.skipped == 4 and again.done == 0
    assert len(read_trajectories(tmp_path / "ds" / "trajectories.jsonl")) == len(everything)


def test_task_files_and_mbpp_rows(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"task_id": 2, "text": "Add.", "code": "def add(a,b): return a+b", '
                    '"test_list": ["assert add(1,2)==3"], "test_setup_code": ""}\n')
    [row] = read_tasks(path)
    assert row.id == "2" and "assert add(1,2)==3" in row.task and row.ground_truth["tests"] == ["assert add(1,2)==3"]
    path.write_text('{"id": 1, "task": "a"}\n{"id": 1, "task": "b"}\n')
    with pytest.raises(InputError, match="appears twice"):
        read_tasks(path)
    path.write_text('{"id": 1}\n')
    with pytest.raises(InputError, match=r"tasks.jsonl:1.*no 'task'"):
        read_tasks(path)
    for bad in ('{"a": 1}', '""', '" "', "true", "1.5", "null"):
        path.write_text(f'{{"id": 1, "task": "a"}}\n{{"id": {bad}, "task": "b"}}\n')
        with pytest.raises(InputError, match=r"tasks.jsonl:2: (the task id must be|no 'id')"):
            read_tasks(path)
    path.write_text('{"id": 1, "task": "a"}\n{nope\n{"id": 2}\n{"id": 1, "task": "c"}\n')  # every bad line, at once
    with pytest.raises(InputError, match=r"tasks.jsonl: 3 bad task lines, none run: line 2: not valid JSON .*; "
                                         r"3: .*no 'task'.*; 4: task id '1' appears twice"):
        read_tasks(path)


def test_ledger_survives_a_torn_line(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.record({"task_id": "a", "status": "done"})
    with open(ledger.path, "a") as fh:
        fh.write('{"task_id": "b", "sta')  # a kill in the middle of a write
    ledger.record({"task_id": "c", "status": "done"})
    assert sorted(ledger.entries()) == ["a", "c"]


def _cli(args, env=None, **kw):
    env = {**os.environ, "AGENTRACER_CACHE": "off", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "agentracer.cli", "annotate", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """The process's output once it exits; past ``timeout`` it is killed and the test fails with what it wrote."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"no exit within {timeout:g} s; stdout: {stdout[-2000:]!r}; stderr: {stderr[-4000:]!r}")


def test_cli_resumes_after_kill_without_loss_or_duplicates(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", 6)
    out = tmp_path / "ds"

    def analyzer(request):
        return chain_analyzer(request["messages"])

    def perturber(request):
        return chain_perturber(request["messages"])

    with OpenAIServer(analyzer) as a_srv, OpenAIServer(perturber) as p_srv:
        args = ["--team", f"{TEAM_FILE}:make_slow_chain", "--tasks", str(tasks), "--evaluator",
                "annotate_teams.py:chain_evaluator", "--analyzer", f"openai:{a_srv.base_url}@scripted",
                "--perturber", f"openai:{p_srv.base_url}@scripted", "-o", str(out), "--k", "2",
                "--concurrency", "1", "--no-progress"]
        # the team holds every model call once two tasks are done, so the kill lands mid-run on any machine
        proc = _cli(args, cwd=HERE, env={"CHAIN_HOLD_DIR": str(out), "CHAIN_HOLD_AFTER": "2"})
        deadline = time.time() + 180  # the whole test takes ~10 s; a hang fails in minutes, not CI's hour
        while time.time() < deadline and len(Ledger(out).entries()) < 2:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = Ledger(out).entries()
        assert len(before) == 2, "the kill should land mid-run, after the second task"
        finished = _cli(args, cwd=HERE)
        stdout, stderr = _finish(finished, timeout=180)
        assert finished.returncode == 0, stderr
    assert f"{len(before)} already done" in stdout
    assert sorted(Ledger(out).entries()) == [f"t{i}" for i in range(6)]
    lines = (out / "ledger.jsonl").read_text().splitlines()
    done = Counter(json.loads(line)["task_id"] for line in lines if line.strip().endswith("}"))
    assert all(v == 1 for v in done.values())
    everything = read_trajectories(out / "trajectories.jsonl")
    assert len({t.id for t in everything}) == len(everything)
    originals = Counter(t.metadata["task_id"] for t in everything if t.replay is None)
    assert originals == Counter({f"t{i}": 1 for i in range(6)})
    labels = Counter(v.source for t in everything for v in t.labels)
    assert labels == Counter({"counterfactual": 3, "injection": 3})


def test_cli_bad_input(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", 1)
    proc = _cli(["--team", f"{TEAM_FILE}:make_task_chain", "--tasks", str(tasks), "--evaluator", "nope",
                 "--analyzer", "scripted:x", "-o", str(tmp_path / "o")], cwd=HERE)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "unknown evaluator" in err
    proc = _cli(["--team", f"{TEAM_FILE}:make_task_chain", "--tasks", str(tmp_path / "missing.jsonl"),
                 "--evaluator", "exact", "--analyzer", "scripted:x", "-o", str(tmp_path / "o")], cwd=HERE)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "no such tasks file" in err


@contextlib.contextmanager
def _refused_port() -> Iterator[int]:
    """A loopback port held bound but not listening: every connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _serve_analyzer(request):
    return chain_analyzer(request["messages"])


def test_cli_dead_analyzer_stops_and_a_rerun_labels_the_tasks(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", 4)
    out = tmp_path / "ds"
    args = ["--team", f"{TEAM_FILE}:make_task_chain", "--tasks", str(tasks), "--evaluator",
            "annotate_teams.py:chain_evaluator", "-o", str(out), "--k", "2", "--no-progress"]
    with _refused_port() as port:
        dead = _cli([*args, "--analyzer", f"openai:http://127.0.0.1:{port}/v1@x"], cwd=HERE)
        _, stderr = _finish(dead, timeout=180)
    assert dead.returncode == 1, stderr  # a model that failed for good: not bad input (2)
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "analyzer" in last and "run it again" in last, stderr
    assert all(entry["success"] for entry in Ledger(out).entries().values()), "a failed run was closed unlabelled"
    with OpenAIServer(_serve_analyzer) as server:
        again = _cli([*args, "--analyzer", f"openai:{server.base_url}@scripted"], cwd=HERE)
        stdout, stderr = _finish(again, timeout=180)
    assert again.returncode == 0, stderr
    entries = Ledger(out).entries()
    assert sorted(entries) == ["t0", "t1", "t2", "t3"]
    assert {t: e["label"]["step"] for t, e in entries.items() if e["label"]} == {"t0": 2, "t2": 4}


def test_failing_perturber_stops_the_run_and_a_rerun_labels_the_task(tmp_path):
    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", 2))  # t0 fails, t1 succeeds
    team = agentracer.trace(make_task_chain)
    out = tmp_path / "ds"
    broken = AnnotationPipeline(team, chain_evaluator, out, perturber=ScriptedModel([]), concurrency=1)
    with pytest.raises(ModelError, match="perturber") as stopped:
        broken.run(tasks, progress=False)
    assert "\n" not in str(stopped.value)
    assert "t1" not in Ledger(out).entries()
    summary = AnnotationPipeline(team, chain_evaluator, out, perturber=ScriptedModel(chain_perturber),
                                 concurrency=1).run(tasks, progress=False)
    assert summary.done == 1 and summary.injection_labels == 1 and summary.errors == []


def test_rerun_redoes_tasks_an_older_version_closed_after_analyzer_errors(tmp_path):
    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", 3))  # t0 and t2 fail, t1 succeeds
    out = tmp_path / "ds"
    old = {"status": "done", "success": False, "label": None, "replays": 0}
    Ledger(out).record({**old, "task_id": "t0", "stopped": "incomplete: steps could not be tried (see the attempts)"})
    Ledger(out).record({**old, "task_id": "t2", "stopped": "budget spent (max_replays=2)"})
    summary = AnnotationPipeline(agentracer.trace(make_task_chain), chain_evaluator, out, k=2,
                                 analyzer=ScriptedModel(chain_analyzer)).run(tasks, progress=False)
    assert (summary.skipped, summary.done, summary.counterfactual_labels) == (0, 3, 2)
    entries = Ledger(out).entries()
    assert entries["t0"]["label"]["step"] == 2 and entries["t2"]["label"]["step"] == 4
    assert Counter(t.metadata["task_id"] for t in read_trajectories(out / "trajectories.jsonl")
                   if t.replay is None) == Counter({"t0": 1, "t1": 1, "t2": 1})


def test_tasks_the_budget_cut_short_stay_open_for_the_next_run(tmp_path):
    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", 4))  # t0 and t2 fail, t1 and t3 succeed
    out = tmp_path / "ds"
    team = agentracer.trace(make_task_chain)
    small = AnnotationPipeline(team, chain_evaluator, out, analyzer=ScriptedModel(chain_analyzer),
                               perturber=ScriptedModel(chain_perturber), k=1, concurrency=1,
                               budget=Budget(max_replays=2))
    first = small.run(tasks, progress=False)
    assert first.left_open >= 1 and first.counterfactual_labels + first.injection_labels < 4
    assert len(Ledger(out).entries()) == 4 - first.left_open == first.done  # ("annotated now" counts no open task)
    second = AnnotationPipeline(team, chain_evaluator, out, analyzer=ScriptedModel(chain_analyzer),
                                perturber=ScriptedModel(chain_perturber), k=1).run(tasks, progress=False)
    assert second.left_open == 0 and second.skipped == 4 - first.left_open
    entries = Ledger(out).entries()
    assert len(entries) == 4 and all(e["label"] is not None for e in entries.values())


def test_a_search_larger_than_one_runs_budget_gets_further_each_run(tmp_path):
    """A task the budget leaves open keeps its replays: the next run reuses them (nothing spent on them again),
    so a search that needs more replays than one run's budget is finished over several runs."""
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"id": "deep", "task": "Count from 0, one step per message. slip=4",
                                "ground_truth": "5"}) + "\n")
    tasks = read_tasks(path)
    out = tmp_path / "ds"
    team = agentracer.trace(make_task_chain)
    replayed = []
    for _ in range(6):
        summary = AnnotationPipeline(team, chain_evaluator, out, analyzer=ScriptedModel(chain_analyzer), k=1,
                                     concurrency=1, budget=Budget(max_replays=1)).run(tasks, progress=False)
        replayed.append(summary.budget["replays"])
        if summary.left_open == 0:
            break
    entry = Ledger(out).entries()["deep"]
    assert entry["label"] is not None and entry["label"]["step"] == 4
    assert len(replayed) > 1 and all(n <= 1 for n in replayed)  # each run within its budget of one replay
    kept = [t for t in read_trajectories(out / "tasks" / "deep.jsonl") if t.replay is not None]
    assert sum(replayed) == len(kept) == len({(t.replay.step, str(t.replay.action)) for t in kept})


def test_an_injection_larger_than_one_runs_budget_gets_further_each_run(tmp_path):
    """Fault injection resumes as the search does: a task left open keeps its replays and the next run reuses them."""
    seen: list[int] = []  # the steps' values (a step's value is its index) in the order they were first asked for

    def flips_the_third_step_tried(messages):
        user = messages[-1]["content"]
        target = user.split("History before the step:")[1].split("Kind of mistake")[0].rsplit("\n\nStep ", 1)[1]
        value = last_value(target)
        if value not in seen:
            seen.append(value)
        return f"<rewrite>value = {value + 1 if seen.index(value) == 2 else value} (kept)</rewrite>"

    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"id": "good", "task": "Count from 0, one step per message.", "ground_truth": "7"}) + "\n")
    tasks, out = read_tasks(path), tmp_path / "ds"
    team = agentracer.trace(make_task_chain, steps=8)
    replayed, counted = [], []
    for _ in range(8):
        summary = AnnotationPipeline(team, chain_evaluator, out, perturber=ScriptedModel(flips_the_third_step_tried), tries=7,
                                     concurrency=1, budget=Budget(max_replays=1)).run(tasks, progress=False)
        replayed.append(summary.budget["replays"])
        counted.append((summary.replays, summary.reused_replays))
        if summary.left_open == 0:
            break
    entry = Ledger(out).entries()["good"]
    assert entry["label"] is not None and entry["label"]["step"] == seen[2]
    assert replayed == [1, 1, 1]  # one new replay per run: the earlier runs' replays were reused
    assert counted == [(1, 0), (1, 1), (1, 2)]  # and the summary says so
    kept = [t for t in read_trajectories(out / "tasks" / "good.jsonl") if t.replay is not None]
    assert sum(replayed) == len(kept) == len({t.replay.step for t in kept})


def test_an_analyzer_without_a_cache_that_never_answers_in_form_is_asked_new_samples_at_once_then_closes(tmp_path):
    """Its runs remember nothing, so a later run could only ask the same again: the task stayed open for ever, each
    run spending the calls anew and saying 'run again'. Its new samples are asked in the run, then the task closes
    naming the step."""
    from agentracer.annotate.counterfactual import REASKS

    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"id": "mute", "task": "Count from 0, one step per message. slip=3",
                                "ground_truth": "5"}) + "\n")
    out = tmp_path / "ds"
    mute = ScriptedModel(lambda m: "I would rather not say.")  # never a <correction>: no step can be tried
    summary = AnnotationPipeline(agentracer.trace(make_task_chain), chain_evaluator, out, analyzer=mute, k=1,
                                 concurrency=1).run(read_tasks(path), progress=False)
    assert (summary.done, summary.left_open) == (1, 0)
    entry = Ledger(out).entries()["mute"]
    assert entry["label"] is None and entry["stopped"].startswith("no flip; the analyzer never answered step(s) 1, 2, 3")
    (original,) = [t for t in read_trajectories(out / "tasks" / "mute.jsonl") if t.replay is None]
    attempts = original.metadata["counterfactual"]["attempts"]
    assert {a["status"] for a in attempts} == {"untagged"} and len(mute.calls) == len(attempts) * (REASKS + 1)
    assert all("the earlier ones were no better" in a["detail"] for a in attempts)


def test_a_small_model_call_budget_still_gets_further_each_run(tmp_path):
    """Analyzer answers an earlier run got come from the model's cache and cost no call: with --max-model-calls 2 a
    resumed search used to spend its whole budget asking again about the steps it had cleared, and never moved on."""
    from agentracer.models.openai_http import OpenAIChatModel

    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"id": "deep", "task": "Count from 0, one step per message. slip=4",
                                "ground_truth": "5"}) + "\n")
    out, team = tmp_path / "ds", agentracer.trace(make_task_chain)
    with OpenAIServer(lambda request: chain_analyzer(request["messages"])) as server:
        for _ in range(8):
            analyzer = OpenAIChatModel(server.base_url, "m", cache_dir=str(tmp_path / "cache"))
            summary = AnnotationPipeline(team, chain_evaluator, out, analyzer=analyzer, k=1, concurrency=1,
                                         budget=Budget(max_model_calls=2)).run(read_tasks(path), progress=False)
            if summary.left_open == 0:
                break
        asked = len(server.requests)
    entry = Ledger(out).entries()["deep"]
    assert entry["label"] is not None and entry["label"]["step"] == 4
    assert asked == 4  # steps 1 to 4, each asked once over all the runs


@pytest.mark.parametrize(("option", "value"), [("--limit", "-1"), ("--limit", "0"), ("--tries", "-1"),
                                               ("--max-replays-in-flight", "0"), ("--max-replays", "-5"),
                                               ("--max-cost", "-1"), ("--k", "0")])
def test_annotate_refuses_counts_below_their_range(tmp_path, option, value):
    from agentracer.cli import cli
    from click.testing import CliRunner

    tasks = write_tasks(tmp_path / "tasks.jsonl", 2)
    result = CliRunner().invoke(cli, ["annotate", "--team", f"{TEAM_FILE}:make_task_chain", "--tasks", str(tasks),
                                      "--analyzer", "scripted:x", "--evaluator", f"{TEAM_FILE}:chain_evaluator",
                                      "-o", str(tmp_path / "ds"), option, value])
    assert result.exit_code == 2 and option in result.output and not (tmp_path / "ds").exists()


def test_line_and_paragraph_separators_in_a_run_are_text_not_line_breaks(tmp_path):
    """JSON writes U+2028/U+2029/U+0085 unescaped; reading a JSONL file by str.splitlines() cut such a record in two
    (annotate then failed to write its exports on every rerun)."""
    from agentracer.annotate.ledger import write_trajectories
    from agentracer.schema import Step, Trajectory

    odd = "a\u2028line\u2029para\u0085next"
    runs = [Trajectory(id="r", task=odd, steps=[Step(index=0, agent="a", content=odd)])]
    write_trajectories(tmp_path / "runs.jsonl", runs)
    assert read_trajectories(tmp_path / "runs.jsonl")[0].steps[0].content == odd
    Ledger(tmp_path).record({"task_id": odd, "status": "done", "label": None})
    assert list(Ledger(tmp_path).entries()) == [odd]
    (tmp_path / "tasks.jsonl").write_text(json.dumps({"id": "t", "task": odd}, ensure_ascii=False) + "\n")
    assert read_tasks(tmp_path / "tasks.jsonl")[0].task == odd


def test_tasks_a_missing_model_could_not_label_stay_open_for_a_run_that_has_it(tmp_path):
    """A first run with only a perturber left the failed runs 'done' with no label: a later run given the analyzer
    said '0 annotated now, all already done' and never labelled them."""
    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", 4))  # t0 and t2 fail, t1 and t3 succeed
    out = tmp_path / "ds"
    team = agentracer.trace(make_task_chain)
    first = AnnotationPipeline(team, chain_evaluator, out, perturber=ScriptedModel(chain_perturber)).run(
        tasks, progress=False)
    assert (first.done, first.waiting_for_model, first.injection_labels, first.counterfactual_labels) == (4, 2, 2, 0)
    second = AnnotationPipeline(team, chain_evaluator, out, analyzer=ScriptedModel(chain_analyzer), k=2).run(
        tasks, progress=False)
    assert (second.skipped, second.done, second.counterfactual_labels, second.waiting_for_model) == (2, 2, 2, 0)
    third = AnnotationPipeline(team, chain_evaluator, out, analyzer=ScriptedModel([])).run(tasks, progress=False)
    assert (third.skipped, third.done) == (4, 0)  # nothing left that an analyzer could label
    assert sorted(e["label"]["source"] for e in Ledger(out).entries().values()) == ["counterfactual"] * 2 + [
        "injection"] * 2


def test_a_run_without_the_model_an_open_task_needs_leaves_it_open_and_its_replays_kept(tmp_path):
    """A run given only a perturber closed a failed task an analyzer's run had left open (its budget ran out) as
    'unlabelled for analyzer', writing its output file with the original run alone: the next analyzer run paid for
    every replay again."""
    tasks = [TaskRow(id="deep", task="Count from 0, one step per message. slip=4", ground_truth="5")]
    out, team = tmp_path / "ds", agentracer.trace(make_task_chain)
    first = AnnotationPipeline(team, chain_evaluator, out, analyzer=ScriptedModel(chain_analyzer), k=1,
                               budget=Budget(max_replays=3)).run(tasks, progress=False)
    assert (first.left_open, first.replays) == (1, 3)
    kept, ledger = (out / "tasks" / "deep.jsonl").read_bytes(), (out / "ledger.jsonl").read_bytes()
    second = AnnotationPipeline(team, chain_evaluator, out, perturber=ScriptedModel(chain_perturber)).run(
        tasks, progress=False)
    assert (second.done, second.left_open, second.waiting_for_model, second.replays) == (0, 0, 1, 0)
    assert (out / "tasks" / "deep.jsonl").read_bytes() == kept and (out / "ledger.jsonl").read_bytes() == ledger
    assert any("deep" in note and "3 replays" in note for note in second.notes)
    third = AnnotationPipeline(team, chain_evaluator, out, analyzer=ScriptedModel(chain_analyzer), k=1).run(
        tasks, progress=False)
    assert (third.done, third.replays, third.reused_replays) == (1, 1, 3)
    assert Ledger(out).entries()["deep"]["label"]["step"] == 4


def test_a_task_that_now_asks_something_else_is_refused(tmp_path):
    """Reusing a dataset folder with a tasks file whose ids mean other tasks kept the old labels for them."""
    path = write_tasks(tmp_path / "tasks.jsonl", 2)
    out = tmp_path / "ds"
    team = agentracer.trace(make_task_chain)

    def pipeline():
        return AnnotationPipeline(team, chain_evaluator, out, analyzer=ScriptedModel(chain_analyzer),
                                  perturber=ScriptedModel(chain_perturber), k=2)

    pipeline().run(read_tasks(path), progress=False)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["ground_truth"] = "99"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"1 task\(s\) ask something else.*'t1'.*another folder"):
        pipeline().run(read_tasks(path), progress=False)
    assert pipeline().run(read_tasks(write_tasks(tmp_path / "same.jsonl", 2)), progress=False).skipped == 2
    # a task begun but never finished (killed before its ledger line: nothing labelled) whose text changed since is
    # run again on its new text (it stopped the task with 'annotate them into another folder')
    ledger = out / "ledger.jsonl"
    ledger.write_text("".join(line + "\n" for line in ledger.read_text().splitlines() if '"t1"' not in line))
    summary = pipeline().run(read_tasks(path), progress=False)  # (t1's ground truth is 99 now)
    assert summary.errors == [] and summary.skipped == 1
    original = json.loads((out / "runs" / "t1.json").read_text())
    assert original["ground_truth"] == "99"


def test_a_task_fingerprint_is_the_same_in_every_process():
    """A set's order follows the hash seed and an object's repr holds its address: a resumed annotation of tasks with
    such ground truths was refused about half the time as 'ask something else'."""
    code = ("from agentracer.annotate.tasks import TaskRow, task_fingerprint\n"
            "class Answer:\n    pass\n"
            "print(task_fingerprint(TaskRow(id='t', task='q', ground_truth={'ok': {'a', 'b', 'c', 'd'}, "
            "'obj': Answer()})))")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert len(seen) == 1


def test_concurrent_tasks_cannot_all_start_on_what_is_left_of_a_budget(tmp_path):
    """Five tasks at once each reserved a call before any spent: --max-model-calls 5 used 8 or 9, --max-cost 11x.
    Calls and replays now hold what they are expected to spend (a replay: what its recording spent after the step)."""
    from agentracer.annotate.budget import Budget, Hold, expected_replay

    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", 8))  # four of them fail
    team = agentracer.trace(make_task_chain)
    budget = Budget(max_model_calls=9)
    AnnotationPipeline(team, chain_evaluator, tmp_path / "ds", analyzer=ScriptedModel(chain_analyzer),
                       k=2, concurrency=8, budget=budget).run(tasks, progress=False)
    assert 0 < budget.model_calls <= 9 and (budget.held_calls, budget.held_tokens) == (0, 0)
    run = read_trajectories(tmp_path / "ds" / "trajectories.jsonl")[0]
    assert expected_replay(run, 2).calls == sum(len(s.model_calls) for s in run.steps[3:])
    # one alone may pass a limit by what it spends (a budget smaller than one replay still gets further, even after an
    # analyzer call was charged); while it is in flight, no other may start on what it holds
    small = Budget(max_model_calls=20)
    first = small.take_call(10)
    assert first is not None
    small.settle_call(agentracer.Usage(prompt_tokens=5), cached=False, hold=first)
    replay = small.take_replay(Hold(calls=24))
    assert replay is not None and small.take_call() is None
    small.release(replay)
    assert small.take_call() is not None


def _pipeline(out: Path) -> AnnotationPipeline:
    return AnnotationPipeline(agentracer.trace(make_task_chain), chain_evaluator, out,
                              analyzer=ScriptedModel(chain_analyzer), perturber=ScriptedModel(chain_perturber), k=2)


def test_a_second_annotation_into_the_same_folder_is_refused_at_once(tmp_path):
    from agentracer.exclusive import sole_writer

    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", 2))
    with sole_writer(tmp_path / "ds" / "ledger.jsonl", "a first annotate"):
        with pytest.raises(InputError, match="another process .*is writing it"):
            _pipeline(tmp_path / "ds").run(tasks, progress=False)
        assert not (tmp_path / "ds" / "runs").exists()
    assert _pipeline(tmp_path / "ds").run(tasks, progress=False).done == 2


def test_a_finished_tasks_damaged_or_missing_output_is_annotated_again_and_named(tmp_path):
    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", 3))
    out = tmp_path / "ds"
    _pipeline(out).run(tasks, progress=False)
    whole = sorted(t.id for t in read_trajectories(out / "trajectories.jsonl"))
    damaged = out / "tasks" / "t0.jsonl"
    damaged.write_bytes(damaged.read_bytes()[:2000])  # cut short
    (out / "tasks" / "t1.jsonl").unlink()
    again = _pipeline(out).run(tasks, progress=False)
    assert again.done == 2 and again.skipped == 1
    assert any("t0" in note and "t0.jsonl:1 is damaged" in note for note in again.notes)
    assert any("t1" in note and "is missing" in note for note in again.notes)
    after = read_trajectories(out / "trajectories.jsonl")
    assert len(after) == len(whole) and {t.metadata["task_id"] for t in after} == {"t0", "t1", "t2"}
    # a line that looks whole but does not read: the export names the file and line
    lines = damaged.read_text().splitlines()
    damaged.write_text('{"id": 5}\n' + "\n".join(lines[1:]) + "\n")
    with pytest.raises(InputError, match=r"t0\.jsonl:1: does not read as a trajectory"):
        _pipeline(out).run(tasks, progress=False)


def test_cli_exits_1_when_a_task_failed_and_keeps_the_others(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", 3)
    evaluator = tmp_path / "raising_eval.py"
    evaluator.write_text("from annotate_teams import chain_evaluator\n\n"
                         "def judge(trajectory):\n"
                         "    if 'Task 1.' in (trajectory.task or ''):\n"
                         "        raise RuntimeError('the judge broke')\n"
                         "    return chain_evaluator(trajectory)\n")
    with OpenAIServer(lambda request: chain_analyzer(request["messages"])) as a_srv, \
            OpenAIServer(lambda request: chain_perturber(request["messages"])) as p_srv:
        proc = _cli(["--team", f"{TEAM_FILE}:make_task_chain", "--tasks", str(tasks), "--evaluator", f"{evaluator}:judge",
                     "--analyzer", f"openai:{a_srv.base_url}@scripted", "--perturber", f"openai:{p_srv.base_url}@scripted",
                     "--k", "2", "--no-progress", "-o", str(tmp_path / "o")], cwd=HERE, env={"PYTHONPATH": str(HERE)})
        out, err = _finish(proc, 120)
    assert proc.returncode == 1, (out, err)
    assert "task t1" in err and "the judge broke" in err and "2 tasks annotated now" in out


def test_tasks_and_scripted_answer_files_that_do_not_read_are_named(tmp_path):
    from agentracer.models import load_model

    binary = tmp_path / "tasks.jsonl"
    binary.write_bytes(b'{"id": "a", "task": "x"}\n\x87\xff garbage\n')
    with pytest.raises(InputError, match=r"tasks\.jsonl:2: not UTF-8 text"):
        read_tasks(binary)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"id": "a", "task": "x"}\n')
    assert [row.id for row in read_tasks(bom)] == ["a"]
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"text": "one"}\n{"answer": "two"}\n')
    with pytest.raises(InputError, match=r'answers\.jsonl:2: each line needs a "text"'):
        load_model(f"scripted:{answers}")
    answers.write_text('{"text": "one"}\n{not json\n')
    with pytest.raises(InputError, match=r"answers\.jsonl:2: not valid JSON"):
        load_model(f"scripted:{answers}")
    with pytest.raises(InputError, match=r"missing\.jsonl: no such scripted answers file"):
        load_model(f"scripted:{tmp_path / 'missing.jsonl'}")
    answers.write_text('{"text": "one"}\n\n{"text": "two"}\n')
    assert load_model(f"scripted:{answers}").complete([{"role": "user", "content": "q"}]).text == "one"
    assert load_model("scripted:first||second").complete([{"role": "user", "content": "q"}]).text == "first"
    inline = load_model("scripted:first||see notes.jsonl")  # (inline answers, one of them naming a file)
    assert [inline.complete([{"role": "user", "content": "q"}]).text for _ in range(2)] == ["first", "see notes.jsonl"]


def test_a_first_run_its_model_server_broke_is_not_labelled_and_is_run_again(tmp_path):
    from annotate_teams import chain_model

    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", 2))
    counting, state = chain_model(None), {"down": True}

    def model(messages):
        if state["down"] and any("Task 0." in str(m.get("content")) for m in messages):
            raise ConnectionError("HTTP 429 Too Many Requests")
        return counting(messages)

    def pipeline() -> AnnotationPipeline:
        return AnnotationPipeline(agentracer.trace(make_chain, steps=6, model=model), chain_evaluator, tmp_path / "ds",
                                  analyzer=ScriptedModel(chain_analyzer), perturber=ScriptedModel(chain_perturber), k=2)

    first = pipeline().run(tasks, progress=False)
    assert first.done == 1 and len(first.errors) == 1 and "t0" in first.errors[0] and "model server failed" in first.errors[0]
    assert not (tmp_path / "ds" / "runs" / "t0.json").exists() and "t0" not in Ledger(tmp_path / "ds").entries()
    state["down"] = False
    again = pipeline().run(tasks, progress=False)
    assert again.done == 1 and again.skipped == 1 and again.errors == []


def _ledger_entries(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]


def test_injected_replays_that_crash_on_the_teams_server_leave_the_task_open_for_a_later_run(tmp_path: Path) -> None:
    """Every try crashing on the team's model server closed a successful task with no label, for good."""
    from agentracer.annotate import TaskRow
    from annotate_teams import chain_model

    flaky, base = {"on": True}, chain_model(None)

    def model(messages: list[dict]) -> str:
        history = [m for m in messages if m["role"] != "system"]
        if flaky["on"] and len(history) > 1 and last_value(history[-1]["content"]) != len(history) - 1:
            raise ConnectionError("team model server: 503")  # (a replay's live steps after an injected mistake)
        return base(messages)

    tasks = [TaskRow(id="ok", task="Count.", ground_truth="5")]
    for _ in range(2):
        pipeline = AnnotationPipeline(agentracer.trace(make_chain, steps=6, model=model), chain_evaluator, tmp_path,
                                      perturber=ScriptedModel(chain_perturber), tries=2, seed=1)
        summary = pipeline.run(tasks, progress=False)
        flaky["on"] = False
    first, second = _ledger_entries(tmp_path)
    assert first["status"] == "open" and first["label"] is None and "could not finish" in first["stopped"]
    assert second["status"] == "done" and second["label"]["source"] == "injection" and summary.injection_labels == 1


def test_a_flip_found_past_a_step_the_teams_server_kept_untried_stays_open_and_moves_to_that_step(tmp_path: Path
                                                                                                  ) -> None:
    """A later step's flip was closed as the label, though the decisive step had only crashed on the team's
    server: the next run tries that step and the label moves to it."""
    from agentracer.annotate import TaskRow
    from annotate_teams import chain_model

    flaky, base = {"on": True}, chain_model(None)

    def model(messages: list[dict]) -> str:
        history = [m for m in messages if m["role"] != "system"]
        if flaky["on"] and len(history) == 3 and last_value(history[-1]["content"]) == 2:
            raise ConnectionError("team model server: 503")  # (the replay of the repaired step 2 only)
        return base(messages)

    def analyzer(messages: list[dict]) -> str:
        user = messages[-1]["content"]
        before = user.split("History before the step:")[1].split(" to correct - agent")[0]
        step = int(user.split("\n\nStep ")[-1].split(" ")[0])
        fixed = 5 if step == 5 else last_value(before.rsplit("\n\nStep ", 1)[0]) + 1  # (step 5's states the answer)
        return f"<correction>value = {fixed}</correction>"

    tasks = [TaskRow(id="t", task="Count. slip=2", ground_truth="5")]
    summaries = []
    for _ in range(2):
        pipeline = AnnotationPipeline(agentracer.trace(make_chain, steps=6, model=model), chain_evaluator, tmp_path,
                                      analyzer=ScriptedModel(analyzer), k=4)
        summaries.append(pipeline.run(tasks, progress=False))
        if flaky["on"]:  # the open task's label is no label of the dataset yet, and the summary said it was
            assert read_trajectories(tmp_path / "labelled.jsonl") == []
            assert (summaries[0].counterfactual_labels, summaries[0].left_open) == (0, 1)
            assert any("flip at step 5" in note and "open" in note for note in summaries[0].notes)
        flaky["on"] = False
    assert summaries[1].counterfactual_labels == 1
    first, second = _ledger_entries(tmp_path)
    assert first["status"] == "open" and first["label"]["step"] == 5 and "earlier step(s) [2]" in first["stopped"]
    assert second["status"] == "done" and second["label"]["step"] == 2 and second["stopped"] == "flip found"
    (labelled,) = read_trajectories(tmp_path / "labelled.jsonl")
    (label,) = labelled.labels
    assert (label.step, label.flags) == (2, [])


def test_annotate_refuses_a_folder_holding_files_it_did_not_write_and_resumes_its_own(tmp_path):
    """``-o DIR`` replaced a traced store and a user's labelled.jsonl (or a demo's runs) in DIR without a word."""
    tasks = write_tasks(tmp_path / "tasks.jsonl", 2)
    traced = agentracer.trace(make_task_chain).run("Count from 0, one step per message.", ground_truth="5")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "trajectories.jsonl").write_text(traced.to_json() + "\n")
    (mine / "labelled.jsonl").write_text("precious notes\n")
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / ".agentracer-demo").write_text("written by `agentracer demo`\n")
    (demo / "trajectories.jsonl").write_text(traced.to_json() + "\n")
    for folder, names in ((mine, "trajectories.jsonl, labelled.jsonl"), (demo, "trajectories.jsonl")):
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        proc = _cli(["--team", f"{TEAM_FILE}:make_task_chain", "--tasks", str(tasks), "--evaluator",
                     "annotate_teams.py:chain_evaluator", "--analyzer", "scripted:x", "--no-progress",
                     "-o", str(folder)], cwd=HERE)
        _, err = _finish(proc, timeout=60)
        assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err
        assert f"holds {names}, not written by annotate" in err, err
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # (nothing written, not even a lock)
    with pytest.raises(InputError, match="not written by annotate"):
        _pipeline(mine).run(read_tasks(tasks), progress=False)
    assert (mine / "labelled.jsonl").read_text() == "precious notes\n"
    # its own folder resumes: one a run left (marked), and one an older version wrote (a ledger, no mark)
    ours = tmp_path / "ours"
    assert _pipeline(ours).run(read_tasks(tasks), progress=False).done == 2
    assert _pipeline(ours).run(read_tasks(tasks), progress=False).skipped == 2
    (ours / ".agentracer-annotate").unlink()
    assert _pipeline(ours).run(read_tasks(tasks), progress=False).skipped == 2
    # ... and one an older version's run left when it was killed before its first ledger line: the runs it kept for
    # the next run to reuse, and its ledger's lock
    from agentracer.exclusive import lock_path

    killed = tmp_path / "killed"
    (killed / "runs").mkdir(parents=True)
    (killed / "runs" / "t0.json").write_text(traced.to_json())
    lock_path(killed / "ledger.jsonl").write_text("")
    assert _pipeline(killed).run(read_tasks(tasks), progress=False).done == 2
