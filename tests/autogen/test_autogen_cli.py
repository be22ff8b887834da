"""``agentracer trace`` / ``agentracer replay --team module:factory`` on an AutoGen team."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from agentracer import Trajectory

FACTORY = textwrap.dedent("""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat
    from autogen_ext.models.replay import ReplayChatCompletionClient

    def make_team():
        client = ReplayChatCompletionClient(["plan it", "code it", "review it", "ship it"])
        agents = [AssistantAgent(n, model_client=client) for n in ("planner", "coder", "reviewer")]
        return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(4))
""")
CLI = [sys.executable, "-c", "from agentracer.cli import main; main()"]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)


def _read(path: Path) -> list[Trajectory]:
    return [Trajectory.from_json(line) for line in path.read_text().splitlines() if line.strip()]


def test_trace_then_replay_from_the_command_line(tmp_path):
    (tmp_path / "ag_cli_team.py").write_text(FACTORY)
    runs, fixed = tmp_path / "runs.jsonl", tmp_path / "fixed.jsonl"
    out = _cli(tmp_path, "trace", "--team", "ag_cli_team:make_team", "--task", "ship a feature", "-o", str(runs))
    assert out.returncode == 0, out.stderr
    (traj,) = _read(runs)
    assert traj.framework == "autogen" and [s.agent for s in traj.steps] == ["user", "planner", "coder", "reviewer"]

    out = _cli(tmp_path, "replay", str(runs), "--team", "ag_cli_team:make_team", "--step", "2",
               "--action", "code it better", "-o", str(fixed))
    assert out.returncode == 0, out.stderr
    (new,) = _read(fixed)
    assert new.steps[2].content == "code it better" and new.replay.parent_id == traj.id
    assert [s.content for s in new.steps[:2]] == [s.content for s in traj.steps[:2]]

    bad = tmp_path / "bad.jsonl"
    out = _cli(tmp_path, "replay", str(runs), "--team", "ag_cli_team:make_team", "--step", "9",
               "--action", "x", "-o", str(bad))
    assert out.returncode == 2 and "out of range" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not bad.exists() or bad.read_text() == ""


def test_a_replay_that_diverges_says_so_in_one_line_without_autogens_logged_tracebacks(tmp_path):
    (tmp_path / "ag_cli_team.py").write_text(FACTORY)
    runs, edited, out_path = tmp_path / "runs.jsonl", tmp_path / "edited.jsonl", tmp_path / "out.jsonl"
    assert _cli(tmp_path, "trace", "--team", "ag_cli_team:make_team", "--task", "ship", "-o", str(runs)).returncode == 0
    (traj,) = _read(runs)
    traj.steps[1].agent = "coder"  # a hand edit: the team cannot reproduce it
    edited.write_text(traj.to_json() + "\n")
    out = _cli(tmp_path, "replay", str(edited), "--team", "ag_cli_team:make_team", "--step", "3",
               "--action", "x", "-o", str(out_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: replay diverged at step 1, agent 'planner': the recording has agent 'coder' at this step"]
    assert not out_path.exists() or out_path.read_text() == ""


HTTP_FACTORY = textwrap.dedent("""
    import gc
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat
    from autogen_ext.models.openai import OpenAIChatCompletionClient
    from agentracer.testing.openai_server import OpenAIServer

    server = OpenAIServer(lambda request: "still wrong", latency=0.01)
    server.start()

    def make_team():
        gc.collect()  # (the earlier tasks' teams, which AutoGen leaves in reference cycles, go now: in this loop)
        client = OpenAIChatCompletionClient(model="gpt-4o-mini-2024-07-18", base_url=server.base_url, api_key="sk-x")
        agents = [AssistantAgent(n, model_client=client) for n in ("planner", "coder")]
        return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(3))

    def never(trajectory):
        return False
""")


def test_refine_of_several_tasks_closes_each_teams_model_clients_in_their_own_event_loop(tmp_path):
    """Each task in an event loop of its own left the previous task's OpenAI clients to be closed in the next one,
    whose loop they were not made in: 'Event loop is closed' tracebacks for every task after the first."""
    (tmp_path / "httpteam.py").write_text(HTTP_FACTORY)
    (tmp_path / "tasks.jsonl").write_text("".join(f'{{"id": "t{i}", "task": "task {i}"}}\n' for i in range(3)))
    done = _cli(tmp_path, "refine", "--team", "httpteam:make_team", "--tasks", "tasks.jsonl", "--evaluator",
                "httpteam:never", "--rounds", "1", "-o", "attempts.jsonl")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Event loop is closed" not in done.stderr, done.stderr
    assert len(_read(tmp_path / "attempts.jsonl")) == 6


def test_refine_called_twice_closes_each_calls_model_clients_in_its_own_event_loop(tmp_path):
    (tmp_path / "httpteam.py").write_text(HTTP_FACTORY)
    script = ("import agentracer, httpteam\n"
              "for task in ('one', 'two', 'three'):\n"
              "    agentracer.refine(httpteam.make_team, task, evaluator=httpteam.never, tracer='lite', rounds=1)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert "Event loop is closed" not in done.stderr, done.stderr


SHARED_CLIENT = textwrap.dedent("""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat
    from autogen_ext.models.openai import OpenAIChatCompletionClient
    from agentracer.testing.openai_server import OpenAIServer

    server = OpenAIServer(lambda request: "still working")
    server.start()
    client = OpenAIChatCompletionClient(model="gpt-4o-mini-2024-07-18", base_url=server.base_url, api_key="sk-x")

    def make_team():  # (the README's snippet: one client, made once, for every team the factory builds)
        agents = [AssistantAgent(n, model_client=client) for n in ("planner", "coder")]
        return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(3))
""")


def test_a_client_made_once_outside_the_factory_serves_every_run_of_a_tasks_file_and_a_replay(tmp_path):
    """Each sync run had an event loop of its own: the client's connections, bound to the first, failed the second
    run ('Event loop is closed'), which trace --tasks kept as a failed run blaming the planner."""
    (tmp_path / "shared_team.py").write_text(SHARED_CLIENT)
    (tmp_path / "tasks.jsonl").write_text("".join(f'{{"id": "t{i}", "task": "task {i}"}}\n' for i in range(3)))
    done = _cli(tmp_path, "trace", "--team", "shared_team:make_team", "--tasks", "tasks.jsonl", "-o", "runs.jsonl")
    assert done.returncode == 0, done.stderr
    runs = _read(tmp_path / "runs.jsonl")
    assert len(runs) == 3 and [r.outcome.error for r in runs] == [None] * 3
    replayed = _cli(tmp_path, "replay", "runs.jsonl", "--id", runs[1].id, "--team", "shared_team:make_team",
                    "--step", "1", "--action", "a new plan", "-o", "fixed.jsonl")
    assert replayed.returncode == 0, replayed.stderr
    assert _read(tmp_path / "fixed.jsonl")[0].outcome.error is None
