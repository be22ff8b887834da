"""`agentracer eval whowhen`: rows streamed to results.jsonl, resume, per-item errors, the table."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from agentracer.cli import main
from agentracer.testing.openai_server import OpenAIServer
from agentracer.tracer.lite import LiteModel

REPO = Path(__file__).resolve().parents[2]
HAND = ["3.json", "8.json", "13.json"]
ALGO = ["1.json", "10.json", "2.json"]


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "whowhen"
    for subset, names in (("Hand-Crafted", HAND), ("Algorithm-Generated", ALGO)):
        (root / subset).mkdir(parents=True)
        for name in names:
            shutil.copy(REPO / "data" / "whowhen" / subset / name, root / subset / name)
    bad = root / "Algorithm-Generated"
    (bad / "90.json").write_text(json.dumps({"history": [], "question": "q", "mistake_agent": "A",
                                             "mistake_step": "0"}))
    (bad / "91.json").write_text(json.dumps({"history": [{"name": "A", "content": "hi"}], "question": "q",
                                             "mistake_agent": "A", "mistake_step": "7"}))
    (bad / "92.json").write_text("{not json")
    return root


def run(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_majority_scores_every_file_and_records_bad_ones(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.jsonl"
    code, stdout, err = run(["eval", "whowhen", "--data", str(data), "--method", "majority", "-o", str(out)], capsys)
    # (the others are scored; the bad files have no label to score against: said so, not "count as wrong" beside a
    # table that left them out)
    assert code == 2 and "error: 3 of 9 items are bad input, with no label to score against, and are left out of " \
        "the score" in err, err
    algorithm = next(line for line in stdout.splitlines() if line.startswith("Algorithm-Generated"))
    assert algorithm.split()[3] == "3" and algorithm.split()[-3] == "3"  # (n: the 3 good files; errors: the bad)
    got = {r["id"]: r for r in rows(out)}
    assert len(got) == 9
    need = {"id", "subset", "predicted_agent", "predicted_step", "mistake_agent", "mistake_step", "error"}
    assert all(need <= set(r) for r in got.values())
    good = got["Hand-Crafted/3.json"]
    assert good["error"] is None and good["subset"] == "Hand-Crafted" and good["mistake_agent"] == "WebSurfer"
    assert good["mistake_step"] == 32 and isinstance(good["predicted_step"], int)
    assert got["Algorithm-Generated/90.json"]["error_kind"] == "input"
    assert "empty history" in got["Algorithm-Generated/90.json"]["error"]  # (its label names no step)
    assert "outside history" in got["Algorithm-Generated/91.json"]["error"]
    assert "not valid JSON" in got["Algorithm-Generated/92.json"]["error"]
    assert "Hand-Crafted" in stdout and "Algorithm-Generated" in stdout and "substr agent%" in stdout
    # resume: nothing left to do, nothing duplicated
    code, _, stderr = run(["eval", "whowhen", "--data", str(data), "--method", "majority", "-o", str(out)], capsys)
    assert code == 2 and "0 to evaluate, 9 already" in stderr and len(rows(out)) == 9


def _answers(request: dict) -> str:
    prompt = request["messages"][1]["content"]
    if "Which member of Apple" in prompt or "monday.com" in prompt:
        return "I refuse to answer."
    return "<think>the surfer clicked the wrong link</think><answer>WebSurfer|3</answer>"


def test_agentracer_against_a_flaky_server_retries_and_counts_unparsed(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "llm.jsonl"
    with OpenAIServer(_answers, fail_every=3) as server:
        code, stdout, stderr = run(["eval", "whowhen", "--data", str(data / "Hand-Crafted"),
                                    "--model", f"openai:{server.base_url}@stub", "--concurrency", "4",
                                    "-o", str(out)], capsys)
    assert code == 0
    got = {r["id"]: r for r in rows(out)}
    assert set(got) == {f"Hand-Crafted/{name}" for name in HAND}
    assert all(r["method"] == "agentracer" and r["with_gt"] is True for r in got.values())
    answered = [r for r in got.values() if r["error"] is None]
    unparsed = [r for r in got.values() if r["error_kind"] == "answer"]
    assert len(answered) + len(unparsed) == 3 and unparsed  # no model errors: retries absorbed the 500s
    assert all((r["predicted_agent"], r["predicted_step"]) == ("WebSurfer", 3) for r in answered)
    assert unparsed[0]["raw"] == "I refuse to answer."
    line = next(x for x in stdout.splitlines() if x.startswith("Hand-Crafted "))
    assert line.split()[-5] == str(len(unparsed))  # the unparsed column
    assert "retries" in stderr


def test_resume_after_an_interrupted_run(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.jsonl"
    run(["eval", "whowhen", "--data", str(data), "--method", "random", "-o", str(out)], capsys)
    full = rows(out)
    # keep two rows and half of a third, as a killed run would leave it
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:20])
    code, _, stderr = run(["eval", "whowhen", "--data", str(data), "--method", "random", "-o", str(out)], capsys)
    assert code == 2 and "7 to evaluate, 2 already" in stderr  # (3 items are bad input)
    again = rows(out)
    assert sorted(r["id"] for r in again) == sorted(r["id"] for r in full)
    assert {r["id"]: r["predicted_step"] for r in again} == {r["id"]: r["predicted_step"] for r in full}


def test_resuming_with_another_prompt_budget_is_refused_and_each_row_names_its_budget(data: Path, tmp_path: Path,
                                                                                      capsys) -> None:
    """Rows scored with 300-token prompts next to 28K-token ones would be scored as one experiment."""
    out = tmp_path / "results.jsonl"
    with OpenAIServer("<think>x</think><answer>WebSurfer|3</answer>") as server:
        args = ["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--model", f"openai:{server.base_url}@stub",
                "-o", str(out), "--max-prompt-tokens", "4000"]
        assert run(args + ["--limit", "1"], capsys)[0] == 0
        assert [r["prompt_budget"] for r in rows(out)] == [4000]
        code, _, stderr = run(args[:-1] + ["2000"], capsys)
        assert code == 2 and "scored with prompts of up to 4000 tokens" in stderr and "--max-prompt-tokens 4000" in stderr
        assert len(rows(out)) == 1  # nothing added, nothing lost
        assert run(args, capsys)[0] == 0 and [r["prompt_budget"] for r in rows(out)] == [4000] * 3  # (resumed)
    run(["eval", "whowhen", "--data", str(data), "--method", "random", "-o", str(tmp_path / "r.jsonl")], capsys)
    assert {r["prompt_budget"] for r in rows(tmp_path / "r.jsonl")} == {None}  # (no model, no prompt)


def test_both_settings_in_one_file_and_a_foreign_method_is_refused(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.jsonl"
    args = ["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--method", "random", "-o", str(out)]
    run(args + ["--without-gt"], capsys)
    code, stdout, _ = run(args + ["--with-gt"], capsys)
    assert code == 0 and len(rows(out)) == 6 and "w/ G" in stdout and "w/o G" in stdout
    code, _, stderr = run(["eval", "whowhen", "--data", str(data), "--method", "majority", "-o", str(out)], capsys)
    assert code == 2 and "holds results of method 'random'" in stderr


def test_server_down_gives_per_item_errors_and_exit_1(data: Path, tmp_path: Path, capsys) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "down.jsonl"
    code, _, stderr = run(["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--method", "agentracer",
                           "--model", f"openai:http://127.0.0.1:{port}/v1@m", "-o", str(out)], capsys)
    assert code == 1 and "nothing could be evaluated" in stderr and "--retry-errors" in stderr
    assert [r["error_kind"] for r in rows(out)] == ["model"] * 3
    assert all("cannot reach" in r["error"] for r in rows(out))
    # the server is back: --retry-errors re-runs exactly those items
    with OpenAIServer("<think>x</think><answer>WebSurfer|1</answer>") as server:
        code, _, _ = run(["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--retry-errors",
                          "--model", f"openai:{server.base_url}@m", "-o", str(out)], capsys)
    assert code == 0 and [r["error"] for r in rows(out)] == [None] * 3


def test_tracertraj_jsonl_is_evaluated_too(tmp_path: Path, capsys) -> None:
    path = tmp_path / "tracertraj.jsonl"
    records = [
        {"question_ID": "q1", "question": "2+2?", "ground_truth": "4", "mistake_agent": "Coder",
         "mistake_step": 1, "mistake_reason": "typo", "subset": "MATH",
         "history": [{"content": "plan", "name": "Planner", "role": "assistant", "step": 0},
                     {"content": "5", "name": "Coder", "role": "assistant", "step": 1}]},
        {"question_ID": "q2", "question": "x", "history": "not a list"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out.jsonl"
    code, stdout, _ = run(["eval", "whowhen", "--data", str(path), "--method", "majority", "-o", str(out)], capsys)
    assert code == 2  # (q2 is bad input)
    got = rows(out)
    assert len(got) == 2
    first = next(r for r in got if r["error"] is None)
    assert (first["id"], first["subset"], first["mistake_agent"], first["mistake_step"]) == ("q1", "MATH", "Coder", 1)
    assert any(r["error_kind"] == "input" for r in got)
    assert "MATH" in stdout


def test_a_model_without_a_method_means_agentracer(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.jsonl"
    code, _, _ = run(["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--model",
                      "scripted:<think>t</think><answer>Orchestrator|2</answer>", "--concurrency", "1",
                      "--limit", "1", "-o", str(out)], capsys)
    assert code == 0
    (row,) = rows(out)
    assert row["method"] == "agentracer" and row["predicted_agent"] == "Orchestrator" and row["strict"] is True


def test_the_lite_training_data_note_is_for_whowhen_files_only_and_quiet_prints_only_the_table(
        data: Path, tmp_path: Path, capsys) -> None:
    clean = data / "Hand-Crafted"
    code, _, err = run(["eval", "whowhen", "--data", str(clean), "--method", "lite", "-o", str(tmp_path / "a.jsonl")],
                       capsys)
    assert code == 0 and "trained on the Who&When development split" in err
    code, out, err = run(["eval", "whowhen", "--data", str(clean), "--method", "lite", "-o", str(tmp_path / "b.jsonl"),
                          "--quiet"], capsys)
    assert code == 0 and "agent%" in out and "trained on" not in err and err == ""
    assert "paper layout" not in out  # the table only
    own = tmp_path / "own.jsonl"
    own.write_text(json.dumps({"question_ID": "q1", "question": "2+2?", "ground_truth": "4", "mistake_agent": "Coder",
                               "mistake_step": 1, "history": [{"content": "plan", "name": "Planner", "step": 0},
                                                              {"content": "5", "name": "Coder", "step": 1}]}) + "\n")
    code, _, err = run(["eval", "whowhen", "--data", str(own), "--method", "lite", "-o", str(tmp_path / "c.jsonl")],
                       capsys)
    assert code == 0 and "trained on" not in err  # one's own runs are not the lite tracer's training data


def test_retry_errors_asks_the_model_again_not_its_cache(data: Path, tmp_path: Path, capsys) -> None:
    """An unparsable answer is an error row; once the model answers well, --retry-errors gets the new answer (the
    cached bad one was served again before)."""
    out = tmp_path / "results.jsonl"
    args = ["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "-o", str(out)]
    with OpenAIServer("I cannot tell.") as server:
        code, _, stderr = run([*args, "--model", f"openai:{server.base_url}@m"], capsys)
    assert [r["error_kind"] for r in rows(out)] == ["answer"] * 3
    # the model answered, unreadably: a result (0 %), not "nothing could be evaluated" (exit 1, retry advised)
    assert code == 0 and "none of the 3 answers could be read" in stderr and "nothing could be" not in stderr
    kept = rows(out)  # but one unreadable answer beside a model that failed the others is the model's failure
    for row in kept[1:]:
        row.update(error="HTTP 500 after 6 attempts", error_kind="model")
    failing = tmp_path / "failing.jsonl"
    failing.write_text("".join(json.dumps(row) + "\n" for row in kept))
    code, _, stderr = run([*args[:-1], str(failing), "--model", f"openai:{server.base_url}@m"], capsys)
    assert code == 1 and "nothing could be evaluated" in stderr and "could be read" not in stderr
    kept[1].update(error=None, error_kind=None, predicted_agent="WebSurfer", predicted_step=1)  # one answer read
    failing.write_text("".join(json.dumps(row) + "\n" for row in kept))
    code, _, stderr = run([*args[:-1], str(failing), "--model", f"openai:{server.base_url}@m"], capsys)
    assert code == 0 and "could be read" not in stderr and "--retry-errors" in stderr
    with OpenAIServer("<answer>WebSurfer|1</answer>", port=server.port) as again:
        code, _, stderr = run([*args, "--model", f"openai:{again.base_url}@m", "--retry-errors"], capsys)
        assert len(again.requests) == 3
    assert code == 0 and [r["error"] for r in rows(out)] == [None] * 3 and "0 from cache" in stderr


def test_timeout_option_bounds_each_attempt(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.jsonl"
    with OpenAIServer("<answer>WebSurfer|1</answer>", latency=1.0) as server:
        code, _, _ = run(["eval", "whowhen", "--data", str(data / "Hand-Crafted" / HAND[0]), "-o", str(out),
                          "--model", f"openai:{server.base_url}@m", "--timeout", "0.05", "--no-cache"], capsys)
    assert code == 1 and "no answer within 0.05s" in rows(out)[0]["error"]


def test_credentials_a_server_echoes_never_reach_the_results(data: Path, tmp_path: Path, capsys,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-echoed-0123456789abcdef")

    class Echoing(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"error": {"message": f"bad key: {self.headers.get('Authorization')}"}}).encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echoing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "results.jsonl"
    try:
        url = f"http://bob:hunter2pw@127.0.0.1:{server.server_address[1]}/v1"
        code, stdout, stderr = run(["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "-o", str(out),
                                    "--model", f"openai:{url}@m"], capsys)
    finally:
        server.shutdown()
        server.server_close()
    written = out.read_text() + stdout + stderr
    assert code == 1 and "bad key" in written and "HTTP 401" in written
    assert "sk-echoed" not in written and "hunter2pw" not in written


def test_a_results_row_holding_a_line_separator_is_read_back(tmp_path: Path) -> None:
    from agentracer.tracer.evaluation import read_rows

    out = tmp_path / "results.jsonl"
    row = {"id": "a", "method": "m", "with_gt": True, "raw": "answer\u2028more"}
    out.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_rows(out) == [row]


def test_rows_scored_on_data_that_changed_since_are_scored_again(tmp_path: Path, capsys) -> None:
    """Re-annotate, re-export to the same file, eval again into the same results: the rows of changed items were
    kept and the accuracy printed was against the old labels."""
    path = tmp_path / "rows.jsonl"

    def write(agent_of_q1: str, step_of_q1: int) -> None:
        records = [{"question_ID": qid, "question": "2+2?", "ground_truth": "4", "mistake_agent": agent,
                    "mistake_step": step, "history": [{"content": "plan", "name": "Planner", "role": "assistant",
                                                       "step": 0},
                                                      {"content": "5", "name": "Coder", "role": "assistant", "step": 1}]}
                   for qid, agent, step in (("q1", agent_of_q1, step_of_q1), ("q2", "Coder", 1))]
        path.write_text("".join(json.dumps(r) + "\n" for r in records))

    out = tmp_path / "results.jsonl"
    args = ["eval", "whowhen", "--data", str(path), "--method", "lite", "-o", str(out)]
    write("Coder", 1)
    assert run(args, capsys)[0] == 0
    first = {r["id"]: r for r in rows(out)}
    write("Planner", 0)  # q1's label changed
    code, _, stderr = run(args, capsys)
    assert code == 0 and "1 to evaluate (1 of them again" in stderr and "'q1'" in stderr, stderr
    again = {r["id"]: r for r in rows(out)}
    assert sorted(again) == ["q1", "q2"] and len(rows(out)) == 2
    assert (again["q1"]["mistake_agent"], again["q1"]["mistake_step"]) == ("Planner", 0)
    assert again["q2"] == first["q2"]  # an unchanged row is kept as it was
    assert "0 to evaluate, 2 already" in run(args, capsys)[2]


def test_majority_references_read_like_any_input_and_a_bad_file_is_an_error(data: Path, tmp_path: Path,
                                                                            capsys) -> None:
    """--references given annotate's labelled.jsonl (a store) was read as TracerTraj, every row failed, and the method
    fell back to step counts without a word; /etc/hostname was accepted too."""
    from agentracer.schema import Step, Trajectory, Verdict
    from agentracer.store import open_store

    store = open_store(tmp_path / "labelled.jsonl")
    store.append(Trajectory(id="r1", steps=[Step(index=0, agent="Orchestrator", content="x")],
                            labels=[Verdict(agent="Orchestrator", step=0, source="counterfactual")]))
    out = tmp_path / "r.jsonl"
    code, _, err = run(["eval", "whowhen", "--data", str(data), "--method", "majority", "--references",
                        str(store.path), "-o", str(out)], capsys)
    assert code == 2 and "3 of 9 items are bad input" in err, err
    scored = [r for r in rows(out) if r["error"] is None and r["subset"] == "Hand-Crafted"]
    assert scored and all(r["predicted_agent"] == "Orchestrator" for r in scored)
    junk = tmp_path / "junk.txt"
    junk.write_text("not a trajectory\n")
    for bad in (junk, tmp_path / "empty.jsonl"):
        bad.touch()
        code, _, err = run(["eval", "whowhen", "--data", str(data), "--method", "majority", "--references",
                            str(bad), "-o", str(tmp_path / "x.jsonl")], capsys)
        assert code == 2 and str(bad) in err and "Traceback" not in err, err


def test_nothing_to_evaluate_but_bad_input_says_so_and_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"question_ID": "q", "question": "?", "history": []}) + "\n")  # a run with no step
    code, _, err = run(["eval", "whowhen", "--data", str(path), "--method", "lite", "-o", str(tmp_path / "r.jsonl")],
                       capsys)
    assert code == 2 and "every item is bad input" in err and "--retry-errors" not in err, err


def test_a_file_two_runs_wrote_at_once_counts_each_item_once(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.jsonl"
    args = ["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--method", "random", "-o", str(out)]
    run(args, capsys)
    first = rows(out)
    failed = {**first[0], "error": "the server went away", "error_kind": "model", "predicted_agent": None}
    lines = out.read_text().splitlines()
    out.write_text("\n".join([json.dumps(failed), *lines, lines[1], json.dumps(failed)]) + "\n")  # as two runs left it
    code, stdout, stderr = run(args, capsys)
    assert code == 0 and "0 to evaluate, 3 already" in stderr
    assert rows(out) == first  # one row per item, the one without an error
    table = next(line for line in stdout.splitlines() if line.startswith("Hand-Crafted"))
    assert table.split()[:4] == ["Hand-Crafted", "w/", "G", "3"]


def test_a_second_eval_writing_the_same_file_is_refused_at_once(data: Path, tmp_path: Path, capsys) -> None:
    from agentracer.exclusive import sole_writer

    out = tmp_path / "results.jsonl"
    args = ["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--method", "random", "-o", str(out)]
    with sole_writer(out, "another eval"):
        code, _, stderr = run(args, capsys)
        assert code == 2 and "another process" in stderr and str(out) in stderr and not out.exists()
    code, _, _ = run(args, capsys)
    assert code == 0 and len(rows(out)) == 3


def test_the_table_shows_both_settings_of_the_same_items(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.jsonl"
    args = ["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--method", "random", "-o", str(out)]
    run(args + ["--with-gt"], capsys)
    _, stdout, _ = run(args + ["--without-gt", "--limit", "1"], capsys)
    counts = {line.split()[1]: line.split()[3] for line in stdout.splitlines() if line.startswith("Hand-Crafted ")}
    assert counts == {"w/": "1", "w/o": "1"}, stdout


def test_a_rambling_answer_is_kept_whole_once_not_twice(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.jsonl"
    ramble = "I think " * 5000
    with OpenAIServer(f"<think>{ramble}</think><answer>WebSurfer|3</answer>") as server:
        code, _, _ = run(["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--limit", "1",
                          "--model", f"openai:{server.base_url}@stub", "--no-cache", "-o", str(out)], capsys)
    [row] = rows(out)
    assert code == 0 and row["predicted_agent"] == "WebSurfer" and ramble.strip() in row["raw"]
    assert len(row["reason"]) < 2100 and row["reason"].endswith("more characters in raw]")


def test_items_with_no_label_to_score_against_are_an_error_not_a_table_of_zeros(tmp_path: Path, capsys) -> None:
    path = tmp_path / "guesses.jsonl"
    record = {"question_ID": "q1", "question": "2+2?", "ground_truth": "4", "mistake_agent": "Coder",
              "mistake_step": 1, "mistake_source": "tracer",  # (a tracer's verdict, exported with --label-source)
              "history": [{"content": "plan", "name": "Planner", "role": "assistant", "step": 0},
                          {"content": "5", "name": "Coder", "role": "assistant", "step": 1}]}
    path.write_text(json.dumps(record) + "\n" + json.dumps({**record, "question_ID": "q2"}) + "\n")
    code, stdout, stderr = run(["eval", "whowhen", "--data", str(path), "--method", "random", "-o",
                                str(tmp_path / "out.jsonl")], capsys)
    assert code == 2 and "no item has a label to score against (2 runs" in stderr and str(path) in stderr
    assert stdout == "" and not (tmp_path / "out.jsonl").exists()  # (nothing asked of a model, nothing written)


def test_lite_rows_name_their_weights_and_rows_of_unnamed_weights_are_not_mixed_in(data: Path, tmp_path: Path,
                                                                                    capsys) -> None:
    """A results file of an earlier release's lite weights resumed with today's would mix two models in one table."""
    out = tmp_path / "r.jsonl"
    code, _, err = run(["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--method", "lite", "--limit", "2",
                        "-o", str(out)], capsys)
    assert code == 0, err
    [named] = {row["model"] for row in rows(out)}
    assert named.startswith(f"lite weights of {LiteModel.load().metadata['trained_at']} (")
    older = [{**row, "model": None} for row in rows(out)][:1]  # (as the release before wrote them)
    out.write_text("".join(json.dumps(row) + "\n" for row in older))
    code, _, err = run(["eval", "whowhen", "--data", str(data / "Hand-Crafted"), "--method", "lite", "-o", str(out)],
                       capsys)
    assert code == 2 and "lite weights of an earlier release" in err and len(rows(out)) == 1


def test_resume_after_a_kill_that_cut_a_character_in_two(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.jsonl"
    run(["eval", "whowhen", "--data", str(data), "--method", "random", "-o", str(out)], capsys)
    full = rows(out)
    lines = out.read_text(encoding="utf-8").splitlines()
    last = json.loads(lines[2]) | {"reason": "naïve café — " * 20}
    cut = json.dumps(last, ensure_ascii=False).encode("utf-8")
    out.write_bytes(f"{lines[0]}\n{lines[1]}\n".encode() + cut[:cut.index("ï".encode()) + 1])
    code, _, stderr = run(["eval", "whowhen", "--data", str(data), "--method", "random", "-o", str(out)], capsys)
    assert code == 2 and "7 to evaluate, 2 already" in stderr  # (3 items are bad input)
    assert sorted(r["id"] for r in rows(out)) == sorted(r["id"] for r in full)


def test_a_complete_row_that_is_not_utf8_is_an_error_naming_its_line(tmp_path: Path) -> None:
    from agentracer.errors import InputError
    from agentracer.tracer.evaluation import prepare_output, read_rows

    out = tmp_path / "results.jsonl"
    good = json.dumps({"id": "a", "method": "random", "with_gt": True}).encode()
    data = good + b"\n" + good.replace(b'"a"', b'"b\xc3"') + b"\n" + good.replace(b'"a"', b'"c"') + b"\n"
    out.write_bytes(data)
    with pytest.raises(InputError, match=rf"{out.name}:2\b"):
        read_rows(out)
    with pytest.raises(InputError, match=rf"{out.name}:2\b"):
        prepare_output(out, with_gt=True, method="random")
    assert out.read_bytes() == data  # (nothing lost)


def test_subset_folders_evaluated_one_at_a_time_into_one_file_keep_each_others_rows(data: Path, tmp_path: Path,
                                                                                    capsys) -> None:
    """Both subsets have a 3.json: ids relative to the subset folder collided, and the second subset's run took the
    first's rows for changed data and replaced them."""
    for name in ("1.json", "10.json"):
        shutil.copy(REPO / "data" / "whowhen" / "Algorithm-Generated" / name, data / "Hand-Crafted" / name)
    out = tmp_path / "r.jsonl"
    args = ["eval", "whowhen", "--method", "lite", "-o", str(out), "--data"]
    assert run([*args, str(data / "Algorithm-Generated")], capsys)[0] == 2  # (its three bad files)
    code, _, err = run([*args, str(data / "Hand-Crafted")], capsys)
    assert code == 0 and "5 to evaluate, 0 already" in err and "again" not in err, err
    got = {r["id"]: r["subset"] for r in rows(out)}
    assert len(got) == 11 and got["Algorithm-Generated/1.json"] == "Algorithm-Generated"
    assert got["Hand-Crafted/1.json"] == "Hand-Crafted"
    assert "0 to evaluate, 11 already" in run([*args, str(data)], capsys)[2]  # (the ids the whole folder gives)
    # a file an earlier version wrote for a subset folder (ids relative to it) is resumed, not redone
    out.write_text("".join(json.dumps({**r, "id": r["id"].split("/", 1)[1]}) + "\n" for r in rows(out)
                           if r["subset"] == "Hand-Crafted"))
    code, _, err = run([*args, str(data / "Hand-Crafted")], capsys)
    assert code == 0 and "0 to evaluate, 5 already" in err, err
    assert sorted(r["id"] for r in rows(out)) == sorted(f"Hand-Crafted/{n}" for n in ("1.json", "10.json", *HAND))
    # two folders of other subsets below a folder of no subset: refused, not replaced
    for subset in ("Hand-Crafted", "Algorithm-Generated"):
        (tmp_path / subset / "x").mkdir(parents=True)
        shutil.copy(data / "Hand-Crafted" / "3.json", tmp_path / subset / "x" / "3.json")
    other = tmp_path / "other.jsonl"
    assert run(["eval", "whowhen", "--method", "lite", "-o", str(other), "--data",
                str(tmp_path / "Hand-Crafted" / "x")], capsys)[0] == 0
    code, _, err = run(["eval", "whowhen", "--method", "lite", "-o", str(other), "--data",
                        str(tmp_path / "Algorithm-Generated" / "x")], capsys)
    assert code == 2 and "of subset 'Hand-Crafted'" in err and len(rows(other)) == 1, err


def test_resuming_with_another_seed_references_or_script_is_refused(data: Path, tmp_path: Path, capsys) -> None:
    """A changed --seed or --references, or another inline script (every one is named scripted:inline), was resumed
    into the same file without a word: one table mixed two settings."""
    hand = str(data / "Hand-Crafted")
    out = tmp_path / "random.jsonl"
    args = ["eval", "whowhen", "--data", hand, "--method", "random", "-o", str(out)]
    assert run([*args, "--limit", "1"], capsys)[0] == 0 and rows(out)[0]["setting"] == {"seed": 0}
    code, _, err = run([*args, "--seed", "1"], capsys)
    assert code == 2 and "another seed" in err and "--seed 0" in err and len(rows(out)) == 1, err
    assert run(args, capsys)[0] == 0 and len(rows(out)) == 3  # (the same seed resumes)

    references = tmp_path / "refs.jsonl"
    for agent in ("Orchestrator", "WebSurfer"):
        references.write_text(json.dumps({"question_ID": "r", "question": "?", "mistake_agent": agent,
                                          "mistake_step": "0", "history": [{"name": agent, "content": "x"}]}) + "\n")
        code, _, err = run(["eval", "whowhen", "--data", hand, "--method", "majority", "--references",
                            str(references), "-o", str(tmp_path / "majority.jsonl")], capsys)
    assert code == 2 and "another references" in err, err

    scripted = ["eval", "whowhen", "--data", hand, "--method", "all-at-once", "-o", str(tmp_path / "s.jsonl")]
    assert run([*scripted, "--model", "scripted:Agent Name: WebSurfer\nStep Number: 1"], capsys)[0] == 0
    code, _, err = run([*scripted, "--model", "scripted:Agent Name: Orchestrator\nStep Number: 0"], capsys)
    assert code == 2 and "another script" in err, err
