"""MaAS: operator calls become steps, model calls go through ``aask``, replay replaces an operator's output."""

import asyncio
import os
import sys

import agentracer
import pytest
import wrapt
from agentracer.testing.openai_server import OpenAIServer
from maas_env import REAL_CHECKOUT

from agentracer_plugins import maas as maas_plugin

needs_lookalike = pytest.mark.skipif(
    REAL_CHECKOUT, reason="workflow tests build the look-alike's workflow; a real one needs its controller")


def answer(request):
    prompt = request["messages"][-1]["content"]
    if "Pick the most consistent" in prompt:
        return "<solution_letter>B</solution_letter>"
    if "Improve this solution" in prompt:
        return "<response>x = 42 (checked twice)</response>"
    return "<response>x = 41</response>"


def test_the_llm_hook_is_found_by_module_name_and_removed_exactly():
    import maas.provider.base_llm as base_llm

    maas_plugin.uninstrument()
    original = base_llm.BaseLLM.__dict__["aask"]
    maas_plugin.instrument()
    maas_plugin.instrument()
    wrapper = base_llm.BaseLLM.__dict__["aask"]
    assert isinstance(wrapper, wrapt.FunctionWrapper) and wrapper.__wrapped__ is original
    maas_plugin.uninstrument()
    assert base_llm.BaseLLM.__dict__["aask"] is original
    assert "maas.provider.base_llm" in sys.modules and os.path.exists(sys.modules["maas"].__path__[0])


@pytest.fixture(scope="module")
def server():
    with OpenAIServer(answer) as srv:
        yield srv


@pytest.fixture(scope="module")
def traced(server):
    from maas.ext.maas.scripts.workflow import Workflow
    from maas.provider.base_llm import OpenAICompatibleLLM

    def build(seed: int = 0):  # seed 0 samples Generate → SelfRefine → ScEnsemble
        return Workflow(OpenAICompatibleLLM(server.base_url, model="loopback", api_key="sk-maas-secret"), seed=seed)

    return agentracer.trace(build, evaluator=lambda t: "42" in str(t.outcome.answer))


@needs_lookalike
def test_each_operator_call_is_a_step_with_its_model_calls(traced, server):
    before = len(server.requests)
    recorded = traced.run("What is 6 * 7?")
    assert recorded.framework == "maas"
    operators = recorded.metadata["maas"]["operators"]
    assert [s.agent for s in recorded.steps] == ["user", *operators]
    assert operators == ["Generate", "SelfRefine", "ScEnsemble"]
    assert len(server.requests) - before == 3  # one aask per operator, over HTTP
    for step in recorded.steps[1:]:
        (call,) = step.model_calls
        assert call.agent == step.agent and call.model == "loopback" and not call.produces_step
        assert step.metadata["operator"] == step.agent
        assert call.usage is not None and call.usage.prompt_tokens > 0 and call.usage.completion_tokens > 0
    assert all(s.usage == s.model_calls[0].usage for s in recorded.steps[1:])
    assert recorded.steps[1].metadata["inputs"]["problem"] == "What is 6 * 7?"
    assert recorded.metadata["maas"]["cost"] > 0 and recorded.metadata["maas"]["log_prob"] < 0
    assert "sk-maas-secret" not in recorded.to_json()
    assert recorded.outcome.success is True  # ScEnsemble picked B, the refined (or second) solution


@needs_lookalike
def test_replay_replaces_an_operators_output_with_no_live_call_before_it(traced, server):
    recorded = traced.run("What is 6 * 7?")
    before = len(server.requests)
    replay = traced.replay(recorded, step=2, action="x = 0")
    assert replay.steps[2].replaced and replay.steps[2].content["response"] == "x = 0"
    assert [c.source for c in replay.steps[1].model_calls + replay.steps[2].model_calls] == ["cassette", "cassette"]
    assert len(server.requests) - before == 1  # only the ScEnsemble after step 2 asked the server
    assert replay.metadata["replay_stats"] == {"live": 1, "cassette": 2, "replacement": 1, "tools_served": 0}
    ensemble_prompt = replay.steps[3].model_calls[0].request["messages"][-1]["content"]
    assert "B: x = 0" in ensemble_prompt
    assert replay.outcome.success is False and replay.outcome.answer == "x = 0"


@needs_lookalike
def test_a_replay_from_the_task_runs_the_workflow_on_the_new_task(traced, server):
    """Replacing step 0 (the task) was refused after running the whole workflow live ('ran without the replacement');
    MetaGPT's plugin took it."""
    recorded = traced.run("What is 6 * 7?")
    before = len(server.requests)
    replay = traced.replay(recorded, step=0, action="What is 7 * 6?")
    assert replay.steps[0].content == "What is 7 * 6?" and replay.steps[0].replaced and replay.task == "What is 7 * 6?"
    assert replay.steps[1].metadata["inputs"]["problem"] == "What is 7 * 6?"
    assert len(server.requests) - before == 3  # every operator runs live on the new task


@needs_lookalike
def test_without_a_run_operators_and_llm_pass_through(traced, server):
    workflow = traced.build()
    maas_plugin.wrap_operators(workflow)
    solution, cost, log_prob = asyncio.run(workflow("What is 6 * 7?"))
    assert "4" in solution and cost > 0 and log_prob < 0


@needs_lookalike
def test_a_text_action_in_json_is_the_operators_object_and_one_it_cannot_take_is_refused_up_front(traced, server):
    """An operator's output shows as JSON (``step.text``), which an analyzer imitates: that text was put inside
    ``response``; a text in place of an output without ``response`` (MaAS's Programmer: code and output) failed
    inside the workflow, naming no step. A workflow whose ``__call__`` takes more than the problem (MaAS's HumanEval
    workflow: problem, entry_point, log_path) runs through ``call_with``."""
    import json

    from agentracer import ReplayError
    from maas.ext.maas.scripts.operator import Generate, Operator

    from agentracer_plugins.maas import call_with

    recorded = traced.run("What is 6 * 7?")
    replay = traced.replay(recorded, step=1, action=json.dumps({"response": "x = 5"}))
    assert replay.steps[1].content == {"response": "x = 5"}

    class Programmer(Operator):
        async def __call__(self, problem: str, analysis: str) -> dict:
            generated = await Generate(self.llm)(problem=problem)
            return {"code": generated["response"], "output": "42"}

    class CodeWorkflow:
        def __init__(self, llm) -> None:
            self.llm, self.programmer = llm, Programmer(llm, "Programmer")

        async def __call__(self, problem: str, entry_point: str) -> tuple:
            result = await self.programmer(problem=problem, analysis=entry_point)
            return f"{result['code']} -> {result['output']}", self.llm.total_cost, 0.0

    for cls in (Programmer, CodeWorkflow):
        cls.__module__ = "maas.custom"
    from maas.provider.base_llm import OpenAICompatibleLLM

    coded = agentracer.trace(lambda: call_with(CodeWorkflow(OpenAICompatibleLLM(server.base_url, model="loopback")),
                                               entry_point="solve"))
    run = coded.run("What is 6 * 7?")
    assert run.metadata["team_type"].endswith("CodeWorkflow") and run.steps[-1].agent == "Programmer"
    assert run.steps[-1].metadata["inputs"]["analysis"] == "solve"
    before = len(server.requests)
    with pytest.raises(ReplayError, match=r"step 2 is the output of operator 'Programmer', an object with "
                                          r"\['code', 'output'\]"):
        coded.replay(run, step=2, action="print(42)")
    assert len(server.requests) == before  # (refused before anything ran)
    fixed = coded.replay(run, step=2, action='{"code": "print(42)", "output": "42"}')
    assert fixed.outcome.answer == "print(42) -> 42"


@needs_lookalike
def test_an_operator_that_fails_on_its_models_answer_has_a_failed_step_holding_its_call(server):
    """It left no step: its call sat among the calls no step followed, and a tracer could not name it."""
    from agentracer import TeamRunError
    from maas.ext.maas.scripts.operator import Operator
    from maas.provider.base_llm import OpenAICompatibleLLM

    class Parse(Operator):
        async def __call__(self, problem: str) -> dict:
            answer = await self._fill(problem, "response")
            return {"response": int(answer["response"])}  # (the model answered "x = 41": no integer)

    class ParseWorkflow:
        def __init__(self, llm) -> None:
            self.llm, self.parse = llm, Parse(llm, "Parse")

        async def __call__(self, problem: str) -> tuple:
            return (await self.parse(problem=problem))["response"], 0.0, 0.0

    for cls in (Parse, ParseWorkflow):
        cls.__module__ = "maas.custom"
    traced = agentracer.trace(lambda: ParseWorkflow(OpenAICompatibleLLM(server.base_url, model="loopback")))
    with pytest.raises(TeamRunError, match="invalid literal for int"):
        traced.run("What is 6 * 7?")
    with pytest.raises(TeamRunError) as info:
        traced.run("What is 6 * 7?")
    run = info.value.trajectory
    assert [(s.agent, s.kind) for s in run.steps] == [("user", "message"), ("Parse", "event")]
    assert "invalid literal for int" in run.steps[1].content and run.steps[1].metadata == {"failed_turn": True}
    assert [c.agent for c in run.steps[1].model_calls] == ["Parse"] and run.unattached_calls == []
    fixed = traced.replay(run, step=1, action={"response": 42})  # (the failed step takes a good output)
    assert fixed.outcome.answer == 42 and fixed.metadata["replay_stats"]["cassette"] == 1


@needs_lookalike
def test_an_operator_running_another_replays_at_either_step_without_waiting(server):
    """An outer operator asks its model, then runs an inner one (whose step comes first): its served call waited for
    its own recorded step, which could come only after it (5 s, then a divergence at the inner step)."""
    import time

    from maas.ext.maas.scripts.operator import Generate, Operator
    from maas.provider.base_llm import OpenAICompatibleLLM

    class Outer(Operator):
        def __init__(self, llm, inner) -> None:
            super().__init__(llm, "Outer")
            self.inner = inner

        async def __call__(self, problem: str) -> dict:
            plan = await self.llm.aask("plan for " + problem)
            generated = await self.inner(problem=problem, instruction=plan)
            return {"response": "outer: " + generated["response"]}

    class Nested:
        def __init__(self, llm) -> None:
            self.llm = llm
            self.generate = Generate(llm)
            self.outer = Outer(llm, self.generate)

        async def __call__(self, problem: str) -> tuple:
            return (await self.outer(problem=problem))["response"], self.llm.total_cost, 0.0

    for cls in (Outer, Nested):
        cls.__module__ = "maas.custom"
    traced = agentracer.trace(lambda: Nested(OpenAICompatibleLLM(server.base_url, model="loopback")))
    run = traced.run("What is 6 * 7?")
    assert [s.agent for s in run.steps] == ["user", "Generate", "Outer"]
    started = time.monotonic()
    inner = traced.replay(run, step=1, action="x = 42")
    outer = traced.replay(run, step=2, action="x = 43")
    assert time.monotonic() - started < 3  # (each had waited ORDER_STALL_S)
    assert inner.outcome.answer == "outer: x = 42" and inner.metadata["replay_stats"]["cassette"] == 1
    assert outer.outcome.answer == "x = 43" and outer.metadata["replay_stats"]["live"] == 0


def _gathered_ensemble(after_call_s: float = 0.0):
    """A factory of a workflow that gathers three Generates (variant 0 answers last, as a slower request), then
    ScEnsemble; each Generate awaits ``after_call_s`` after its model call (MaAS's Programmer runs its code)."""
    from maas.ext.maas.scripts.operator import Generate, ScEnsemble
    from maas.provider.base_llm import BaseLLM

    class SlowFirstLLM(BaseLLM):
        async def _achat(self, messages, timeout):
            prompt = messages[-1]["content"]
            await asyncio.sleep({"variant 0": 0.06, "variant 1": 0.01}.get(prompt.splitlines()[0], 0.03))
            if "Pick the most" in prompt:
                return "<solution_letter>A</solution_letter>"
            return f"<response>{prompt.splitlines()[0]}</response>"

    class Working(Generate):
        async def __call__(self, problem: str, instruction: str = "Solve the problem.") -> dict:
            out = await self._fill(f"{instruction}\n{problem}", "response")
            if after_call_s:  # (a sleep of 0 lets the others go on too)
                await asyncio.sleep(after_call_s)
            return out

    class Ensemble:
        def __init__(self, llm) -> None:
            self.llm, self.generate, self.ensemble = llm, Working(llm), ScEnsemble(llm)

        async def __call__(self, problem: str) -> tuple:
            solutions = await asyncio.gather(*[self.generate(problem=problem, instruction=f"variant {i}")
                                               for i in range(3)])
            out = await self.ensemble(problem=problem, solutions=[s["response"] for s in solutions])
            return out["response"], self.llm.total_cost, 0.0

    for cls in (SlowFirstLLM, Working, Ensemble):
        cls.__module__ = "maas.custom"
    return lambda: Ensemble(SlowFirstLLM("fake"))


@needs_lookalike
def test_operators_gathered_together_replay_at_the_one_that_finished_last():
    """Served calls return at once, so the operator that finished last in the recording (step 3) finished first in
    the replay: its output was checked against the next index (1), left as it was, and the replay failed ('step 3 ran
    without the replacement')."""
    traced = agentracer.trace(_gathered_ensemble())
    run = traced.run("P")
    assert [s.content for s in run.steps[1:4]] == [{"response": f"variant {i}"} for i in (1, 2, 0)]
    for step in (1, 3):
        replay = traced.replay(run, step=step, action="X")
        assert [s.index for s in replay.steps] == [0, 1, 2, 3, 4]
        assert [s.replaced for s in replay.steps] == [i == step for i in range(5)]
        assert replay.steps[step].content == {"response": "X"} and replay.steps[step].agent == "Generate"
        assert replay.metadata["replay_stats"]["replacement"] == 1
    assert replay.outcome.answer == "X"  # (variant 0, the first solution, was replaced; the ensemble picks A)


@needs_lookalike
def test_operators_of_one_name_gathered_together_get_their_own_calls_when_they_work_on_after_them():
    """Calls were an operator name's: the first Generate to finish its work after its call took every finished call of
    that name (step 1 held calls 1 and 2, step 2 none), and replays after it diverged at step 1."""
    traced = agentracer.trace(_gathered_ensemble(after_call_s=0.04))
    run = traced.run("P")
    assert [[c.call_index for c in s.model_calls] for s in run.steps] == [[], [1], [2], [0], [0]]
    assert all(s.model_calls[0].request["messages"][-1]["content"].startswith(s.content["response"])
               for s in run.steps[1:4])
    for step in (1, 3, 4):
        replay = traced.replay(run, step=step, action="X")
        assert [s.replaced for s in replay.steps] == [i == step for i in range(5)]
        assert replay.steps[step].content == {"response": "X"}


@needs_lookalike
def test_a_text_action_at_a_failed_operators_step_is_refused_up_front_naming_the_step(server):
    """The up-front check shaped the text after the recorded error text, so it let the text through, and the workflow
    failed on it ('string indices must be integers'), naming no step."""
    from agentracer import ReplayError, TeamRunError
    from maas.ext.maas.scripts.operator import Generate, Operator
    from maas.provider.base_llm import OpenAICompatibleLLM

    class Strict(Operator):
        async def __call__(self, problem: str, solution: str) -> dict:
            out = await self._fill(f"Check: {solution}", "response")
            if "41" in out["response"]:
                raise ValueError("not the answer")
            return out

    class Checked:
        def __init__(self, llm) -> None:
            self.llm, self.generate, self.check = llm, Generate(llm), Strict(llm, "Strict")

        async def __call__(self, problem: str) -> tuple:
            solution = (await self.generate(problem=problem))["response"]
            return (await self.check(problem=problem, solution=solution))["response"], 0.0, 0.0

    for cls in (Strict, Checked):
        cls.__module__ = "maas.custom"
    traced = agentracer.trace(lambda: Checked(OpenAICompatibleLLM(server.base_url, model="loopback")))
    with pytest.raises(TeamRunError) as info:
        traced.run("What is 6 * 7?")
    run = info.value.trajectory
    assert [(s.agent, s.kind) for s in run.steps] == [("user", "message"), ("Generate", "message"), ("Strict", "event")]
    before = len(server.requests)
    with pytest.raises(ReplayError, match=r"step 2 is where operator 'Strict' failed.*give the action as the object"):
        traced.replay(run, step=2, action="x = 42")
    assert len(server.requests) == before  # (refused before anything ran)
    for action in ('{"response": "x = 42"}', {"response": "x = 42"}):
        fixed = traced.replay(run, step=2, action=action)
        assert fixed.outcome.answer == "x = 42" and fixed.steps[2].replaced
        assert fixed.steps[2].content == {"response": "x = 42"}
