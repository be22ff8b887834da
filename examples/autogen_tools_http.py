"""A real OpenAIChatCompletionClient over HTTP, with a tool: record it, then replace the tool call.

Starts agentracer's loopback OpenAI-compatible server (scripted, offline); point ``base_url`` at a
vLLM or OpenAI endpoint to trace a real model the same way.

    python examples/autogen_tools_http.py
"""

import agentracer
from agentracer.testing import OpenAIServer
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.openai import OpenAIChatCompletionClient


def convert(amount: float, currency: str) -> str:
    """Convert an amount of euros into another currency."""
    rates = {"USD": 1.08, "GBP": 0.85}
    return f"{amount * rates[currency]:.2f} {currency}"


def model(request):
    """The scripted model: call the tool, then report its result."""
    last = request["messages"][-1]
    if last["role"] == "tool":
        return f"That is {last['content']}."
    return {"tool_calls": [{"name": "convert", "arguments": {"amount": 100, "currency": "GBP"}}]}


if __name__ == "__main__":
    with OpenAIServer(model) as server:
        @agentracer.trace
        def make_team():
            client = OpenAIChatCompletionClient(model="gpt-4o-mini-2024-07-18", base_url=server.base_url,
                                                api_key="not-needed")
            agent = AssistantAgent("banker", model_client=client, tools=[convert], reflect_on_tool_use=True)
            return RoundRobinGroupChat([agent], termination_condition=MaxMessageTermination(2))

        trajectory = make_team.run("How much is 100 EUR in USD?")
        for step in trajectory.steps:
            print(f"[{step.index}] {step.agent} {step.kind}: {step.text}")
        fixed = make_team.replay(trajectory, step=1, action={
            "tool_calls": [{"name": "convert", "arguments": {"amount": 100, "currency": "USD"}}]})
        print("after replacing the tool call at step 1:", fixed.steps[-1].text)
