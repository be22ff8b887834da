"""An OWL-style society (step overridden without the parent, forwarded messages edited) is recorded at its agents."""

from __future__ import annotations

import re
from typing import Any

import agentracer
from camel_owl_style import OwlStyleSociety
from camel_teams import Ledger, own_turns, round_trips

from agentracer_plugins.camel import with_options

TASK = "How many moons do Mars and Jupiter have together?"
FACTS = {"Mars": 2, "Jupiter": 95}


def planner_answer(messages: list[dict[str, Any]]) -> str:
    turn = own_turns(messages)
    return [
        "Instruction: use the moon_count tool for Mars.",
        "Instruction: use the moon_count tool for Jupiter.",
        "Instruction: add the two numbers and give the final answer.",
    ][turn] if turn < 3 else "<TASK_DONE>"


def operator_answer(messages: list[dict[str, Any]]) -> Any:
    last = messages[-1]
    if last["role"] == "tool":
        return f"The tool says {last['content']}."
    text = str(last["content"])
    planet = next((p for p in FACTS if p in text.split("(Overall task")[0]), None)
    if planet:
        return {"tool_calls": [{"name": "moon_count", "arguments": {"planet": planet}}]}
    numbers = [int(n) for n in re.findall(r"The tool says (\d+)", " ".join(str(m["content"]) for m in messages))]
    return f"The answer is {sum(numbers)}."


def make_owl_society(ledger: Ledger) -> OwlStyleSociety:
    def moon_count(planet: str) -> int:
        """How many moons a planet has.

        Args:
            planet: the planet's name.
        """
        ledger.tool_runs.append(("moon_count", {"planet": planet}))
        return FACTS[planet]

    return OwlStyleSociety(TASK, ledger.model(planner_answer, "planner"), ledger.model(operator_answer, "operator"),
                           [moon_count])


def test_records_the_agents_own_messages_and_tool_use(ledger: Ledger) -> None:
    traj = agentracer.trace(make_owl_society, ledger).run(TASK)

    kinds = [(s.agent, s.kind) for s in traj.steps]
    assert kinds[:4] == [("Planner", "message"), ("Operator", "tool_call"), ("Operator", "tool_result"),
                         ("Operator", "message")]
    assert traj.steps[1].tool_calls[0].arguments == {"planet": "Mars"}
    assert traj.steps[2].content == 2
    assert traj.steps[-2].content == "<TASK_DONE>" and traj.outcome.stop_reason == "done"
    assert any(s.content == "The answer is 97." for s in traj.steps)
    # steps are what each agent said, not the society's edited forwards ...
    assert all("(Overall task" not in str(s.content) and "Give me the next instruction" not in str(s.content)
               for s in traj.steps)
    # ... while the requests show what the agents were actually sent
    operator_first = traj.steps[1].model_calls[0].request["messages"][-1]["content"]
    assert "(Overall task, for reference:" in operator_first
    planner_second = traj.steps[4].model_calls[0].request["messages"][-1]["content"]
    assert "Give me the next instruction" in planner_second
    assert round_trips(traj)


def test_replay_replaces_a_tool_call_and_reruns_the_rest(ledger: Ledger) -> None:
    traced = agentracer.trace(make_owl_society, ledger)
    traj = traced.run(TASK)
    ledger.reset()

    new = traced.replay(traj, step=1, action={"tool_calls": [{"name": "moon_count", "arguments": {"planet": "Jupiter"}}]})

    assert new.steps[0].content == traj.steps[0].content
    assert new.steps[2].content == 95
    assert ledger.tool_runs[0] == ("moon_count", {"planet": "Jupiter"})
    assert new.steps[0].model_calls[0].source == "cassette"
    assert traj.outcome.answer != new.outcome.answer


def run_society_like(society: OwlStyleSociety, round_limit: int = 10) -> tuple[str, list[dict[str, str]], dict]:
    """Our own loop shaped like OWL's ``run_society``: returns (answer, chat history, token info)."""
    history: list[dict[str, str]] = []
    message = society.init_chat()
    answer = ""
    for _ in range(round_limit):
        operator, planner = society.step(message)
        if operator.terminated or planner.terminated or "TASK_DONE" in planner.msgs[0].content:
            break
        answer = operator.msgs[0].content
        history.append({"user": planner.msgs[0].content, "assistant": answer})
        message = operator.msgs[0]
    return answer, history, {"rounds": len(history)}


def test_a_society_run_by_its_own_loop(ledger: Ledger) -> None:
    traced = agentracer.trace(lambda: with_options(make_owl_society(ledger), loop=run_society_like))
    traj = traced.run(TASK)
    plugin_loop = agentracer.trace(make_owl_society, ledger).run(TASK)

    assert [(s.agent, s.kind, s.content) for s in traj.steps] == [
        (s.agent, s.kind, s.content) for s in plugin_loop.steps]
    assert traj.outcome.answer.startswith("The answer is 97.")
    ledger.reset()
    new = traced.replay(traj, step=2, action="3")
    assert ledger.tool_runs == [("moon_count", {"planet": "Jupiter"})]
    assert "The answer is 98." in new.outcome.answer
