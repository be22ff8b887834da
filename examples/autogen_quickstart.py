"""Trace an AutoGen team with one decorator, then replay it from step 2 with a corrected message.

Runs offline: the agents answer from AutoGen's own ReplayChatCompletionClient (one script line per
turn). Swap in any real client (e.g. OpenAIChatCompletionClient) and nothing else changes.

    python examples/autogen_quickstart.py
"""

import agentracer
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.models import AssistantMessage
from autogen_ext.models.replay import ReplayChatCompletionClient


class TurnScript(ReplayChatCompletionClient):
    """An offline model that says line n of its script on its agent's n-th turn."""

    async def create(self, messages, **kwargs):
        self._current_index = sum(isinstance(m, AssistantMessage) for m in messages)
        return await super().create(messages, **kwargs)


SCRIPTS = {  # what each agent's (scripted) model says, turn by turn
    "planner": ["Plan: split 23 into 20 + 3 and add the products.", "Final answer: the solver's total."],
    "solver": ["17 * 23 = 17 * 20 + 17 * 3 = 340 + 41 = 381"],  # the faulty step: 17 * 3 is 51
    "checker": ["I re-added the partial products: the total follows from them."],
}


@agentracer.trace
def make_team():
    agents = [AssistantAgent(name, model_client=TurnScript(script),
                             system_message=f"You are the {name}.") for name, script in SCRIPTS.items()]
    return RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(5))


def show(title, trajectory):
    print(f"== {title} ({len(trajectory.steps)} steps)")
    for step in trajectory.steps:
        mark = " <- replaced" if step.replaced else ""
        print(f"  [{step.index}] {step.agent:>8}: {step.text}{mark}")


if __name__ == "__main__":
    trajectory = make_team.run("What is 17 * 23?")
    show("recorded", trajectory)
    fixed = make_team.replay(trajectory, step=2, action="17 * 23 = 340 + 51 = 391")
    show("replayed from step 2", fixed)
    served = sum(c.source == "cassette" for s in fixed.steps for c in s.model_calls)
    print(f"prefix served from the recording: {served} model calls, live: {fixed.metadata['replay_stats']['live']}")
