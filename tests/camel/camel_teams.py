"""Scripted CAMEL teams for the tests: answers are functions of the conversation, so replays stay consistent."""

from __future__ import annotations

import json
import re
from typing import Any

from camel.agents import ChatAgent
from camel.messages import BaseMessage
from camel.societies import RolePlaying
from camel.societies.workforce import Workforce

from agentracer_plugins.camel import with_options
from agentracer_plugins.camel.testing import ScriptedModel

ROLE_TASK = "Write a three-line poem about unit tests"


class Ledger:
    """What the teams of one test built and did: their scripted models (live calls) and tool runs."""

    def __init__(self) -> None:
        self.models: list[ScriptedModel] = []
        self.tool_runs: list[tuple[str, dict[str, Any]]] = []

    def model(self, answer: Any, name: str, stream: bool = False) -> ScriptedModel:
        model = ScriptedModel([answer], cycle=True, name=name, stream=stream)
        self.models.append(model)
        return model

    @property
    def live_calls(self) -> int:
        return sum(m.calls for m in self.models)

    def reset(self) -> None:
        self.models.clear()
        self.tool_runs.clear()


def own_turns(messages: list[dict[str, Any]]) -> int:
    """How many answers this agent already gave (its assistant messages without tool calls)."""
    return sum(1 for m in messages if m.get("role") == "assistant" and not m.get("tool_calls"))


# ---------------------------------------------------------------------- a ChatAgent with a tool
def calculator_answer(messages: list[dict[str, Any]]) -> Any:
    last = messages[-1]
    if last.get("role") == "tool":
        return f"The sum is {last['content']}."
    a, b = (int(x) for x in re.findall(r"-?\d+", str(last.get("content")))[:2])
    return {"tool_calls": [{"name": "add", "arguments": {"a": a, "b": b}}]}


def make_calculator(ledger: Ledger, step_timeout: float | None = None, mode: str = "auto",
                    fail_after_tool: bool = False, stream: bool = False, **agent_kwargs: Any) -> Any:
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: the first integer.
            b: the second integer.
        """
        ledger.tool_runs.append(("add", {"a": a, "b": b}))
        return a + b

    def mul(a: int, b: int) -> int:
        """Multiply two integers.

        Args:
            a: the first integer.
            b: the second integer.
        """
        ledger.tool_runs.append(("mul", {"a": a, "b": b}))
        return a * b

    def answer(messages: list[dict[str, Any]]) -> Any:
        if fail_after_tool and messages[-1].get("role") == "tool":
            raise RuntimeError("the model broke after the tool")
        return calculator_answer(messages)

    system = BaseMessage.make_assistant_message("Calculator", "You add numbers with your tools.")
    agent = ChatAgent(system, model=ledger.model(answer, "calculator", stream), tools=[add, mul], step_timeout=step_timeout,
                      **agent_kwargs)
    return with_options(agent, mode=mode)


# ---------------------------------------------------------------------- a RolePlaying society
def instructor_answer(rounds: int) -> Any:
    def answer(messages: list[dict[str, Any]]) -> str:
        turn = own_turns(messages)
        return "CAMEL_TASK_DONE" if turn >= rounds else f"Instruction: write line {turn + 1}\nInput: None"
    return answer


def poet_answer(messages: list[dict[str, Any]]) -> str:
    turn = own_turns(messages)
    return f"Solution: line {turn + 1} of the poem. Next request."


def make_role_play(ledger: Ledger, rounds: int = 3, max_turns: int = 10, mode: str = "auto",
                   poet_prompt: str | None = None, step_timeout: float | None = 30.0, stream: bool = False) -> Any:
    assistant_kwargs: dict[str, Any] = {"model": ledger.model(poet_answer, "poet", stream), "step_timeout": step_timeout}
    society = RolePlaying(
        "Poet", "Editor", task_prompt=ROLE_TASK, with_task_specify=False,
        assistant_agent_kwargs=assistant_kwargs,
        user_agent_kwargs={"model": ledger.model(instructor_answer(rounds), "editor", stream),
                           "step_timeout": step_timeout},
    )
    if poet_prompt is not None:
        society.assistant_agent.update_system_message(
            BaseMessage.make_assistant_message("Poet", poet_prompt), reset_memory=True)
    return with_options(society, max_turns=max_turns, mode=mode)


# ---------------------------------------------------------------------- a Workforce
def coordinator_answer(messages: list[dict[str, Any]]) -> str:
    text = str(messages[-1].get("content"))
    workers = dict((desc, node) for node, desc in re.findall(r"<([^<>]+)>:<(Adder|Reporter)", text))
    tasks = re.findall(r"Task ID: (\S+)\nContent: (.*)", text)
    return json.dumps({"assignments": [
        {"task_id": tid, "assignee_id": workers["Adder" if "Compute" in content else "Reporter"], "dependencies": []}
        for tid, content in tasks]})


def planner_answer(messages: list[dict[str, Any]]) -> str:
    text = str(messages[-1].get("content"))
    if "decompose" in text.lower() and "<tasks>" in text:
        return "<tasks><task>Compute 2+3</task><task>Report the sum</task></tasks>"
    return json.dumps({"reasoning": "the result is fine", "quality_score": 90, "recovery_strategy": None,
                       "modified_task_content": None, "issues": []})


def worker_answer(messages: list[dict[str, Any]]) -> str:
    text = str(messages[-1].get("content"))
    result = "5" if "Compute 2+3" in text else "Report: the sum is 5"
    return json.dumps({"content": result, "failed": False})


def make_workforce(ledger: Ledger, adder: ChatAgent | None = None) -> Workforce:
    workforce = Workforce(
        "Math team",
        coordinator_agent=ChatAgent("You coordinate.", model=ledger.model(coordinator_answer, "coordinator")),
        task_agent=ChatAgent("You plan.", model=ledger.model(planner_answer, "planner")),
    )
    workforce.add_single_agent_worker(
        "Adder: adds numbers", adder or ChatAgent("You add.", model=ledger.model(worker_answer, "adder")))
    workforce.add_single_agent_worker(
        "Reporter: writes reports", ChatAgent("You report.", model=ledger.model(worker_answer, "reporter")))
    return workforce


def round_trips(traj: Any) -> bool:
    """The trajectory survives JSON (what a store writes) unchanged."""
    from agentracer import Trajectory

    return Trajectory.from_json(traj.to_json()) == traj


def calculator_team() -> Any:
    """A zero-argument factory, for ``agentracer replay --team camel_teams:calculator_team``."""
    return make_calculator(Ledger())


def make_workforce_with_checker(ledger: Ledger) -> Workforce:
    """The Workforce, its Adder asking a Checker agent through a tool: an agent nested in a worker's step."""
    checker = ChatAgent(BaseMessage.make_assistant_message("Checker", "You check sums."),
                        model=ledger.model("Yes, 2+3 is 5.", "checker"))

    def ask_checker(question: str) -> str:
        """Ask the checker agent whether a sum is right.

        Args:
            question: the question for the checker.
        """
        ledger.tool_runs.append(("ask_checker", {"question": question}))
        return checker.step(question).msgs[0].content

    def adder_answer(messages: list[dict[str, Any]]) -> Any:
        if messages[-1].get("role") == "tool":
            return json.dumps({"content": "5", "failed": False})
        if "Compute 2+3" in str(messages[-1].get("content")):
            return {"tool_calls": [{"name": "ask_checker", "arguments": {"question": "Is 2+3 equal to 5?"}}]}
        return worker_answer(messages)

    return make_workforce(ledger, ChatAgent("You add.", model=ledger.model(adder_answer, "adder"), tools=[ask_checker]))


# ---------------------------------------------------------------------- a tool that runs an agent of its own
CAPITALS = {"Switzerland": "Bern", "Denmark": "Copenhagen"}


def browser_answer(messages: list[dict[str, Any]]) -> str:
    query = str(messages[-1].get("content"))
    if "flag" in query:
        return "Switzerland"
    return next((city for country, city in CAPITALS.items() if country in query), "I could not find it.")


def researcher_answer(messages: list[dict[str, Any]]) -> Any:
    """Look up the flag's country, then its capital (each tool call with an id of its own: CAMEL's memory keeps
    one tool message per id)."""
    last = messages[-1]
    if last.get("role") != "tool":
        return {"tool_calls": [{"name": "browse", "arguments": {"query": "the flag that is red with a white cross"},
                                "id": "call_flag"}]}
    if last["content"] in CAPITALS:
        return {"tool_calls": [{"name": "browse", "arguments": {"query": f"the capital of {last['content']}"},
                                "id": "call_capital"}]}
    return f"The capital is {last['content']}."


def make_researcher(ledger: Ledger, mode: str = "auto") -> Any:
    """A Researcher whose ``browse`` tool steps a Browser agent of its own, as OWL's browser toolkit does: the
    Browser's steps come between each tool call and its result."""
    browser = ChatAgent(BaseMessage.make_assistant_message("Browser", "You browse the web."),
                        model=ledger.model(browser_answer, "browser"))

    def browse(query: str) -> str:
        """Browse the web for an answer.

        Args:
            query: what to look for.
        """
        ledger.tool_runs.append(("browse", {"query": query}))
        return browser.step(query).msgs[0].content

    system = BaseMessage.make_assistant_message("Researcher", "You answer questions with your tools.")
    agent = ChatAgent(system, model=ledger.model(researcher_answer, "researcher"), tools=[browse])
    return with_options(agent, mode=mode)
