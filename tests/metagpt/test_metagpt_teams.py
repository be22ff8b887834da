"""The software-company roles, concurrent roles, and MetaGPT's own OpenAI provider over loopback HTTP."""

import asyncio
import json

import agentracer
import pytest
from agentracer.testing.openai_server import OpenAIServer
from metagpt.configs.llm_config import LLMConfig
from metagpt.provider.openai_api import OpenAILLM
from mg_teams import GOOD, TASK, parallel_team, software_company

from agentracer_plugins.metagpt.mbpp_team import build_team, mbpp_outcome, mbpp_prompt


def document(step):
    """The document a software-company role saved, from the message's instruct_content."""
    docs = step.metadata["instruct_content"]["docs"]
    (doc,) = docs.values()
    return json.loads(doc["content"])


COMPANY = ["user", "Product Manager", "Architect", "Project Manager", "Engineer"]


@pytest.fixture(scope="module")
def company():
    traced = agentracer.trace(software_company)
    return traced, traced.run("Write a command-line tool that adds two integers")


def test_software_company_roles_are_recorded_in_routing_order(company):
    _, recorded = company
    agents = [s.agent for s in recorded.steps]
    assert agents[:5] == COMPANY and "QaEngineer" in agents[5:]
    assert {a.name for a in recorded.agents} == {*COMPANY[1:], "QaEngineer"}
    prd = document(recorded.steps[1])
    assert "Product Goals" in prd and prd["Original Requirements"]
    for step in recorded.steps[1:5]:
        assert step.model_calls and all(c.agent == step.agent for c in step.model_calls)
        assert step.model_calls[-1].produces_step and not any(c.produces_step for c in step.model_calls[:-1])


def test_software_company_replay_from_the_architect_with_a_changed_design(company):
    traced, recorded = company
    designed = recorded.steps[2].model_calls[-1].response
    assert designed.startswith("[CONTENT]")
    body = json.loads(designed[len("[CONTENT]"):-len("[/CONTENT]")])
    body["Implementation approach"] = "Use argparse and nothing else."
    action = "[CONTENT]\n" + json.dumps(body) + "\n[/CONTENT]"
    # MetaGPT names documents by timestamp and walks file sets in hash order: contents vary run to run,
    # so this replay checks model requests loosely (strict=False) but still serves the whole prefix.
    replay = traced.replay(recorded, step=2, action=action, strict=False)
    sources = [[c.source for c in s.model_calls] for s in replay.steps]
    assert sources[1] == ["cassette"] and sources[2] == ["replacement"]
    assert all(src == "live" for s in sources[3:] for src in s)
    assert document(replay.steps[2])["Implementation approach"] == "Use argparse and nothing else."
    assert document(recorded.steps[2])["Implementation approach"] != "Use argparse and nothing else."
    assert [s.agent for s in replay.steps[:5]] == COMPANY


def test_concurrent_roles_replay_in_their_recorded_order():
    traced = agentracer.trace(parallel_team)
    recorded = traced.run("Say something")
    assert [s.agent for s in recorded.steps] == ["user", "Fast", "Slow"]  # Slow is listed first but answers last
    replay = traced.replay(recorded, step=2, action="replaced slow answer")
    assert [s.agent for s in replay.steps] == ["user", "Fast", "Slow"]
    assert [c.source for s in replay.steps for c in s.model_calls] == ["cassette", "replacement"]
    assert replay.steps[2].content == "replaced slow answer"


@pytest.mark.parametrize("step", [1, 2, 3])
def test_a_replay_keeps_the_recorded_rounds_of_concurrent_roles(step):
    """A served answer comes back after the other roles of its round have read their messages, as a live one did:
    the drafters' round stays one round, and the judge still runs after both (it read only the first draft, and
    got a second turn, when a served answer came back at once)."""
    from mg_teams import judged_team

    traced = agentracer.trace(judged_team)
    recorded = traced.run("Say something")
    shape = [(s.agent, s.content) for s in recorded.steps]
    assert shape[1:] == [("Fast", "fast answer"), ("Slow", "slow answer"), ("Judge", "judged: slow answer, fast answer")]
    replay = traced.replay(recorded, step=step, action=recorded.steps[step].content)
    assert [(s.agent, s.content) for s in replay.steps] == shape
    assert replay.metadata["replay_stats"]["live"] == 3 - step


def _coder_or_reviewer(request):
    prompt = request["messages"][-1]["content"]
    if "Review the solution" in prompt:
        return "APPROVE"
    return "Here it is:\n" + GOOD


@pytest.mark.parametrize("stream", [False, True])
def test_metagpt_openai_provider_against_a_loopback_server(stream):
    with OpenAIServer(_coder_or_reviewer) as server:
        def llm_for(profile):
            return OpenAILLM(LLMConfig(api_type="openai", base_url=server.base_url, api_key="sk-test-not-real",
                                       model="loopback-model", stream=stream, calc_usage=False))

        traced = agentracer.trace(build_team, TASK, llm_for, evaluator=mbpp_outcome(TASK))
        recorded = traced.run(mbpp_prompt(TASK))
        assert len(server.requests) == 2 and all(r["model"] == "loopback-model" for r in server.requests)
        assert bool(server.requests[0].get("stream")) is stream
        assert recorded.outcome.success is True
        call = recorded.steps[1].model_calls[0]
        assert call.model == "loopback-model" and call.response.startswith("Here it is:")
        if not stream:  # the tokens the server reported (MetaGPT hands them to _update_costs, calc_usage or not;
            # streamed, MetaGPT asks for none and counts them only with calc_usage on)
            assert call.usage.prompt_tokens > 0 and call.usage.completion_tokens == len(call.response) // 4 + 1
            assert recorded.steps[1].usage == call.usage
        assert "sk-test-not-real" not in recorded.to_json()

        replay = traced.replay(recorded, step=3, action="REJECT")
        assert len(server.requests) == 2  # zero live model calls: the prefix was served, step 3 replaced
        assert replay.steps[3].content == "REJECT"

        traced.replay(recorded, step=1, action=GOOD)
        assert len(server.requests) == 3  # only the Reviewer, after the replaced step, went to the server


def test_a_rounds_recording_replays_on_the_bare_team_and_names_the_team_type(company):
    """``Rounds`` only carries run options: the team inside it is what a replay must match."""
    traced, recorded = company
    assert recorded.metadata["team_type"] == "Team"
    bare = agentracer.trace(lambda: software_company().team)
    replay = bare.replay(recorded, step=4, action="```python\nprint('x')\n```", strict=False)
    assert replay.replay is not None and replay.steps[4].replaced


def test_a_role_whose_action_raises_after_its_model_answered_has_a_failed_step():
    """The role's turn shows where it failed (an event step holding its call), not among the calls no step followed:
    a tracer looking at the run would otherwise blame an earlier role."""
    from agentracer import TeamRunError
    from metagpt.team import Team
    from mg_teams import Draft, Drafter

    from agentracer_plugins.metagpt import Rounds
    from agentracer_plugins.metagpt.testing import ScriptedLLM

    class BrokenDraft(Draft):
        async def run(self, with_messages=None) -> str:
            await super().run(with_messages)
            raise RuntimeError("boom after the answer")

    class BrokenDrafter(Drafter):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.set_actions([BrokenDraft])

    def team() -> Rounds:
        company = Team()
        company.hire([BrokenDrafter(name="A", profile="Broken", llm=ScriptedLLM("an answer", model="m"))])
        return Rounds(company, n_round=2)

    with pytest.raises(TeamRunError) as info:
        agentracer.trace(team).run("go")
    traj = info.value.trajectory
    assert [(s.agent, s.kind) for s in traj.steps] == [("user", "message"), ("Broken", "event")]
    assert "boom after the answer" in traj.steps[1].content and traj.steps[1].metadata == {"failed_turn": True}
    assert [c.response for c in traj.steps[1].model_calls] == ["an answer"] and traj.unattached_calls == []


def test_a_react_roles_choice_of_action_makes_no_step_so_an_action_that_asks_nothing_is_replaceable():
    """REACT mode asks the model which action comes next (``_think``): that call is not the step's. When the chosen
    action asks the model nothing, a replay puts the action into the published message (the choice was replaced,
    and MetaGPT failed on it)."""
    from metagpt.actions import Action, UserRequirement
    from metagpt.roles import Role
    from metagpt.roles.role import RoleReactMode
    from metagpt.team import Team

    from agentracer_plugins.metagpt.testing import ScriptedLLM

    class Lint(Action):
        name: str = "Lint"

        async def run(self, with_messages=None) -> str:
            return f"lint ok ({len(with_messages[-1].content)} chars)"

    class Review(Action):
        name: str = "Review"

        async def run(self, with_messages=None) -> str:
            return await self._aask("review it")

    class Checker(Role):
        name: str = "Chet"
        profile: str = "Checker"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._watch([UserRequirement])
            self.set_actions([Lint, Review])
            self._set_react_mode(RoleReactMode.REACT, max_react_loop=1)

    def team() -> Team:
        company = Team()
        company.hire([Checker(llm=ScriptedLLM("0", model="checker"))])  # the choice: action 0, Lint
        return company

    traced = agentracer.trace(team)
    run = traced.run("some code")
    assert run.steps[1].content == "lint ok (9 chars)"
    assert [(c.response, c.produces_step) for c in run.steps[1].model_calls] == [("0", False)]
    fixed = traced.replay(run, step=1, action="lint FAILED: line 3")
    assert fixed.steps[1].content == "lint FAILED: line 3" and fixed.steps[1].replaced
    assert [c.source for c in fixed.steps[1].model_calls] == ["cassette"]


def test_a_role_with_its_own_react_loop_owns_its_calls_and_replays():
    """The react hook sits on Role: a subclass's own react (no super()) ran with no actor, its calls were nobody's
    ('metagpt', unattached) and an unchanged replay diverged. The Role.run hook names the role for the whole turn."""
    from metagpt.actions import UserRequirement
    from metagpt.roles import Role
    from metagpt.team import Team
    from mg_teams import Draft

    from agentracer_plugins.metagpt.testing import ScriptedLLM

    class QuickDrafter(Role):
        name: str = "Quin"
        profile: str = "Quick"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._watch([UserRequirement])
            self.set_actions([Draft])

        async def react(self):  # its own loop: one action, no think
            self._set_state(0)
            return await self._act()

    def team() -> Team:
        company = Team()
        company.hire([QuickDrafter(llm=ScriptedLLM("a quick draft", model="m"))])
        return company

    traced = agentracer.trace(team)
    run = traced.run("go")
    assert [(s.agent, [c.agent for c in s.model_calls]) for s in run.steps] == [("user", []), ("Quick", ["Quick"])]
    assert run.unattached_calls == []
    fixed = traced.replay(run, step=1, action="a better draft")
    assert fixed.steps[1].content == "a better draft" and fixed.steps[1].replaced


def _last_prompt(messages) -> str:
    return str(messages[-1]["content"])


def test_a_roles_choice_of_action_stays_on_its_own_step_beside_a_concurrent_role():
    """A REACT role choosing its next action while another role answers in the same round: each call stays on its
    own role's step (choice calls went to whichever step came next, and the other role's step lost its producer)."""
    from metagpt.actions import UserRequirement
    from metagpt.roles import Role
    from metagpt.roles.role import RoleReactMode
    from metagpt.team import Team
    from mg_teams import Draft, Drafter

    from agentracer_plugins.metagpt.testing import ScriptedLLM

    class Plan(Draft):
        name: str = "Plan"

        async def run(self, with_messages=None) -> str:
            await asyncio.sleep(0.2)  # the drafter publishes meanwhile, after this role chose its action
            return await super().run(with_messages)

    class Reacter(Role):
        name: str = "Rex"
        profile: str = "Reacter"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._watch([UserRequirement])
            self.set_actions([Draft, Plan])
            self._set_react_mode(RoleReactMode.REACT, max_react_loop=2)

    def reacter_answer(messages) -> str:
        return "1" if "number between" in _last_prompt(messages).lower() else "rex's plan"  # the choice: Plan

    def team() -> Team:
        company = Team()
        company.hire([Drafter(name="Dan", profile="Drafter", llm=ScriptedLLM("dan's draft", model="d", delay=0.1)),
                      Reacter(llm=ScriptedLLM(reacter_answer, model="r"))])
        return company

    traced = agentracer.trace(team)
    run = traced.run("make a plan")
    for step in run.steps[1:]:
        assert {c.agent for c in step.model_calls} == {step.agent}, step
        assert sum(c.produces_step for c in step.model_calls) == 1
    drafter = next(s.index for s in run.steps if s.agent == "Drafter")
    fixed = traced.replay(run, step=drafter, action="dan's better draft")
    assert fixed.steps[drafter].content == "dan's better draft"


def test_a_role_with_its_own_think_that_asks_the_model_replays_its_answer():
    """A role class with its own ``_think`` asking the model whether anything is left (as DataInterpreter's does):
    that call is a choice, not the step's answer, so a replay puts the action into the step."""
    from metagpt.actions import UserRequirement
    from metagpt.roles import Role
    from metagpt.roles.role import RoleReactMode
    from metagpt.team import Team
    from mg_teams import Draft

    from agentracer_plugins.metagpt.testing import ScriptedLLM

    class StopThinker(Role):
        name: str = "Dee"
        profile: str = "Doer"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._watch([UserRequirement])
            self.set_actions([Draft])
            self._set_react_mode(RoleReactMode.REACT, max_react_loop=3)

        async def _think(self) -> bool:
            if self.rc.state < 0 and not self.rc.memory.get_by_role(self.profile):
                self._set_state(0)
                return True
            verdict = await self.llm.aask("Is anything left to do? answer yes or no")
            self._set_state(-1 if verdict.strip() == "no" else 0)
            return verdict.strip() != "no"

    def team() -> Team:
        company = Team()
        company.hire([StopThinker(llm=ScriptedLLM(
            lambda m: "no" if "anything left" in _last_prompt(m) else "a solution", model="m"))])
        return company

    traced = agentracer.trace(team)
    run = traced.run("solve it")
    assert [(c.response, c.produces_step) for c in run.steps[1].model_calls] == [("a solution", True), ("no", False)]
    fixed = traced.replay(run, step=1, action="a better solution")
    assert fixed.steps[1].content == "a better solution" and fixed.steps[1].replaced


def test_a_metagpt_team_object_runs_once_and_says_so_for_a_plain_run():
    from agentracer import AgentracerError, ReplayError
    from mg_teams import parallel_team

    traced = agentracer.trace(parallel_team())
    traced.run("go")
    with pytest.raises(AgentracerError, match="already run: trace a factory") as info:
        traced.run("go again")
    assert not isinstance(info.value, ReplayError)  # a plain run, not a replay


def test_a_plan_and_act_roles_summary_is_replaced_whole(monkeypatch):
    """A PLAN_AND_ACT role publishes its planner's summary of the plan and every task's result: the replacement went
    into the last task's call, so the replayed step was a new summary (marked replaced, not the action)."""
    import metagpt.strategy.planner as planner_module
    from metagpt.actions import UserRequirement
    from metagpt.actions.di.write_plan import WritePlan
    from metagpt.roles import Role
    from metagpt.roles.role import RoleReactMode
    from metagpt.schema import TaskResult
    from metagpt.team import Team
    from mg_teams import Draft

    from agentracer_plugins.metagpt import Rounds
    from agentracer_plugins.metagpt.testing import ScriptedLLM

    plan = json.dumps([{"task_id": "1", "dependent_task_ids": [], "instruction": "draft part one", "task_type": "other"},
                       {"task_id": "2", "dependent_task_ids": ["1"], "instruction": "draft part two",
                        "task_type": "other"}])

    def answer(messages):
        asked = str(messages[-1]["content"])
        return f"```json\n{plan}\n```" if "write a plan" in asked.lower() else "done: " + asked.removeprefix("DO ")

    class ScriptedWritePlan(WritePlan):  # the planner makes its own WritePlan, on MetaGPT's default model
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.llm = ScriptedLLM(answer, model="planner")

    monkeypatch.setattr(planner_module, "WritePlan", ScriptedWritePlan)

    class Planner(Role):
        name: str = "Pat"
        profile: str = "Planner"

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._watch([UserRequirement])
            self.set_actions([Draft])
            self._set_react_mode(RoleReactMode.PLAN_AND_ACT)

        async def _act_on_task(self, current_task):
            return TaskResult(result=await self.llm.aask(f"DO {current_task.instruction}"), is_success=True)

    def team():
        company = Team()
        company.hire([Planner(llm=ScriptedLLM(answer, model="worker"))])
        return Rounds(company, n_round=3)

    traced = agentracer.trace(team)
    run = traced.run("make a two-part thing")
    summary = run.steps[1]
    assert summary.agent == "Planner" and "## Current Plan" in summary.text and len(summary.model_calls) == 3
    assert not any(call.produces_step for call in summary.model_calls)  # no one call answered the summary
    fixed = traced.replay(run, step=1, action="MY NEW PLAN RESULT")
    assert fixed.steps[1].content == "MY NEW PLAN RESULT" and fixed.steps[1].replaced
    assert fixed.metadata["replay_stats"]["live"] == 0  # the plan's calls are served, the summary replaced


def test_a_run_whose_rounds_ran_out_is_a_failure_and_one_that_finished_is_not(company):
    """Running out of n_round with messages still to handle is the team's turn limit, as AutoGen's max_turns: it was
    recorded with its outcome unknown."""
    from mg_teams import scripted_mbpp_team

    from agentracer_plugins.metagpt import Rounds

    _, recorded = company  # QA wrote its tests; six rounds end before it runs them
    assert recorded.outcome.success is False
    assert recorded.outcome.stop_reason == "n_round=6 used up with messages still unhandled"
    from mg_teams import TASK as MBPP_TASK

    finished = agentracer.trace(lambda: Rounds(scripted_mbpp_team(), n_round=12)).run(mbpp_prompt(MBPP_TASK))
    assert finished.outcome.stop_reason is None and finished.outcome.success is None  # (Ω's call)
    # a team whose investment ran out stops too (Team.run swallows NoMoneyException): it says so, not 'rounds'

    def broke() -> Rounds:
        team = parallel_team()
        team.invest(0.0)
        return Rounds(team, n_round=3)

    spent = agentracer.trace(broke).run("go")
    assert spent.outcome.success is False and spent.outcome.stop_reason.startswith("the team's budget was spent")


def test_a_run_that_finished_in_its_last_round_is_not_a_rounds_limit():
    """The last round's message sits in every role's buffer even when no role watches it: a run finishing in its
    final round was recorded as its n_round used up."""
    from metagpt.actions import Action, UserRequirement
    from metagpt.roles import Role
    from metagpt.team import Team

    from agentracer_plugins.metagpt import Rounds
    from agentracer_plugins.metagpt.testing import ScriptedLLM

    class Draft(Action):
        async def run(self, with_messages=None):
            return await self._aask("draft: " + with_messages[-1].content)

    class Judge(Action):
        async def run(self, with_messages=None):
            return await self._aask("judge: " + with_messages[-1].content)

    class Drafter(Role):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._watch([UserRequirement])
            self.set_actions([Draft])

    class Judger(Role):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._watch([Draft])
            self.set_actions([Judge])

    for n_round in (2, 3):
        def team(n_round=n_round):
            company = Team()
            company.hire([Drafter(profile="Drafter", llm=ScriptedLLM("a draft")),
                          Judger(profile="Judge", llm=ScriptedLLM("verdict"))])
            return Rounds(company, n_round=n_round)

        run = agentracer.trace(team).run("Q")
        assert [s.agent for s in run.steps] == ["user", "Drafter", "Judge"]
        assert run.outcome.success is None and run.outcome.stop_reason is None, n_round
    cut = agentracer.trace(lambda: Rounds(team().team, n_round=1)).run("Q")  # the judge never ran: that is the limit
    assert cut.outcome.success is False and cut.outcome.stop_reason == "n_round=1 used up with messages still unhandled"


def test_a_changed_image_before_the_replayed_step_is_a_divergence():
    """An aask's images were recorded as a count: a replay whose role sent another image was served as if nothing
    had changed."""
    from agentracer import ReplayDivergence
    from metagpt.actions import Action, UserRequirement
    from metagpt.roles import Role
    from metagpt.team import Team

    from agentracer_plugins.metagpt import Rounds
    from agentracer_plugins.metagpt.testing import ScriptedLLM

    image = {"now": "https://example.com/a.png"}

    class Look(Action):
        name: str = "Look"

        async def run(self, with_messages=None) -> str:
            return await self.llm.aask("describe the image", images=[image["now"], "aGVsbG8gd29ybGQ="])

    class Looker(Role):
        name: str = "L"
        profile: str = "Looker"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._watch([UserRequirement])
            self.set_actions([Look])

    class Sum(Action):
        name: str = "Sum"

        async def run(self, with_messages=None) -> str:
            return await self.llm.aask("summarize " + with_messages[-1].content)

    class Summer(Role):
        name: str = "S"
        profile: str = "Summer"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._watch([Look])
            self.set_actions([Sum])

    def team() -> Rounds:
        company = Team()
        company.hire([Looker(llm=ScriptedLLM("a cat", model="m")), Summer(llm=ScriptedLLM("sum", model="s"))])
        return Rounds(company, n_round=3)

    traced = agentracer.trace(team)
    run = traced.run("go")
    assert [s.agent for s in run.steps] == ["user", "Looker", "Summer"]
    images = run.steps[1].model_calls[0].request["images"]
    assert images[0] == "https://example.com/a.png" and images[1].startswith("image of 16 bytes, sha256 ")
    assert traced.replay(run, step=2, action="a summary").steps[2].content == "a summary"  # (the same images)
    image["now"] = "https://example.com/OTHER.png"
    with pytest.raises(ReplayDivergence, match="step 1"):
        traced.replay(run, step=2, action="a summary")


def test_a_by_order_roles_message_is_its_last_actions_which_asks_no_model_and_still_takes_the_replacement():
    """The turn's last model call (its first action's) was taken for the maker of the message its last action
    published: a replay put the action into that call's answer, and the message kept the last action's output."""
    from metagpt.actions import Action, UserRequirement
    from metagpt.roles import Role
    from metagpt.roles.role import RoleReactMode
    from metagpt.team import Team

    from agentracer_plugins.metagpt import Rounds
    from agentracer_plugins.metagpt.testing import ScriptedLLM

    class Draft(Action):
        name: str = "Draft"

        async def run(self, with_messages=None) -> str:
            return await self._aask("draft: " + with_messages[-1].content)

    class Lint(Action):
        name: str = "Lint"

        async def run(self, with_messages=None) -> str:
            return "lint ok"

    class Writer(Role):
        name: str = "W"
        profile: str = "Writer"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._watch([UserRequirement])
            self.set_actions([Draft, Lint])
            self._set_react_mode(RoleReactMode.BY_ORDER)

    def team() -> Rounds:
        company = Team()
        company.hire([Writer(llm=ScriptedLLM("the draft", model="w"))])
        return Rounds(company, n_round=2)

    traced = agentracer.trace(team)
    run = traced.run("go")
    assert run.steps[1].content == "lint ok" and [c.produces_step for c in run.steps[1].model_calls] == [False]
    fixed = traced.replay(run, step=1, action="REPLACED")
    assert fixed.steps[1].content == "REPLACED" and fixed.steps[1].replaced
    assert [(c.source, c.response) for c in fixed.steps[1].model_calls] == [("cassette", "the draft")]


def test_a_recording_that_marks_an_earlier_actions_call_as_the_message_maker_replays_the_action_as_the_message():
    """A recording made before a message's maker was its last action's call marks the turn's last call (its first
    action's) as making it: a replay trusted that mark, put the action into that call's answer and published the last
    action's output of it ('fixed from REPLACED'). Live, a BY_ORDER role's earlier action makes no message; a role
    whose own loop runs its actions cannot say so before it publishes, and the replay refuses."""
    from agentracer import ReplayError, Trajectory
    from metagpt.actions import Action, UserRequirement
    from metagpt.roles import Role
    from metagpt.roles.role import RoleReactMode
    from metagpt.team import Team

    from agentracer_plugins.metagpt import Rounds
    from agentracer_plugins.metagpt.testing import ScriptedLLM

    class Plan(Action):
        async def run(self, with_messages=None) -> str:
            return await self._aask("plan: " + with_messages[-1].content)

    class Fixed(Action):
        async def run(self, with_messages=None) -> str:
            return "fixed from " + with_messages[-1].content

    class Planner(Role):
        profile: str = "Planner"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._watch([UserRequirement])
            self.set_actions([Plan, Fixed])
            self._set_react_mode(RoleReactMode.BY_ORDER)

    class LoopingPlanner(Planner):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self._set_react_mode(RoleReactMode.REACT)  # (its own loop: its mode says nothing of its order)

        async def _react(self):
            for state in range(len(self.states)):
                self._set_state(state)
                message = await self._act()
            return message

    def old_style(traced) -> Trajectory:
        run = traced.run("task")
        assert run.steps[1].content == "fixed from the plan"
        assert [c.produces_step for c in run.steps[1].model_calls] == [False]
        run.steps[1].model_calls[0].produces_step = True  # as the recorder before the fix marked it
        return Trajectory.model_validate_json(run.to_json())

    for role in (Planner, LoopingPlanner):
        def team(role=role) -> Rounds:
            company = Team()
            company.hire([role(llm=ScriptedLLM("the plan", model="p"))])
            return Rounds(company, n_round=2)

        traced = agentracer.trace(team)
        if role is Planner:
            fixed = traced.replay(old_style(traced), step=1, action="REPLACED")
            assert fixed.steps[1].content == "REPLACED" and fixed.steps[1].replaced
            assert [(c.source, c.response) for c in fixed.steps[1].model_calls] == [("cassette", "the plan")]
        else:
            with pytest.raises(ReplayError, match="model call #0 of 'Planner' .its Plan action's.*record the run again"):
                traced.replay(old_style(traced), step=1, action="REPLACED")
