"""``Run.invocation``: invocations of one agent running at the same time each get the model calls made in them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import agentracer
from agentracer import Trajectory
from agentracer.plugins import register_plugin
from agentracer.record import Run
from agentracer.simple import TEXT_CODEC
from team_plugins import PlainTeamPlugin


@dataclass
class Twins:
    """One agent, ``worker``, invoked twice at once: the first invocation's model answers last, and each goes on
    working ``after_s`` after its call; ``marked``: the plugin marks each invocation (``Run.invocation``)."""

    marked: bool
    after_s: float = 0.1


class _TwinsPlugin(PlainTeamPlugin):
    name = "twins"
    team_type = Twins

    async def arun(self, team, task, run):
        async def invoked(part: str, delay: float) -> None:
            async def live():
                await asyncio.sleep(delay)
                return f"did {part}"

            text = await run.acall_model("worker", {"messages": [task, part]}, live, TEXT_CODEC)
            await asyncio.sleep(team.after_s)
            run.add_step("worker", text)

        async def worker(part: str, delay: float) -> None:
            if team.marked:
                with run.invocation():
                    await invoked(part, delay)
            else:
                await invoked(part, delay)

        await asyncio.gather(worker("one", 0.05), worker("two", 0.0))
        return "done"


register_plugin(_TwinsPlugin())


def test_each_invocation_of_an_agent_gets_the_calls_made_in_it_and_replays_at_either_step():
    team = agentracer.trace(lambda: Twins(marked=True))
    run = team.run("split")
    assert [(s.content, [c.call_index for c in s.model_calls]) for s in run.steps] == [("did two", [1]),
                                                                                        ("did one", [0])]
    for step in (0, 1):
        replay = team.replay(run, step=step, action="redone")
        assert [s.content for s in replay.steps] == ["redone" if i == step else s.content for i, s in enumerate(run.steps)]
        assert replay.metadata["replay_stats"]["live"] == (1 if step == 0 else 0)  # (step 1's call, after step 0)


def test_unmarked_invocations_of_an_agent_share_its_calls_as_before():
    run = agentracer.trace(lambda: Twins(marked=False)).run("split")
    assert [[c.call_index for c in s.model_calls] for s in run.steps] == [[1, 0], []]


def test_a_step_added_outside_any_invocation_takes_every_waiting_call_of_its_agent():
    async def team_run():
        run = Run(Trajectory(framework="test"))
        with run.activate():
            with run.invocation():
                await run.acall_model("worker", {"messages": ["a"]}, _answer("a"), TEXT_CODEC)
            await run.acall_model("worker", {"messages": ["b"]}, _answer("b"), TEXT_CODEC)
            return run.add_step("worker", "both")

    step = asyncio.run(team_run())
    assert [c.call_index for c in step.model_calls] == [0, 1]


def _answer(text: str):
    async def live():
        return text

    return live
