"""A two-agent framework-free team whose coder calls an ``add`` tool: recorded runs for the format tests."""

from __future__ import annotations

from typing import Any

import agentracer
from agentracer.simple import SimpleAgent, SimpleTeam


def scripted_reply(messages: list[dict]) -> str:
    """The model both agents share: a tool call on the third message, done after the fifth."""
    turn = len(messages)
    if turn == 3:
        return 'CALL add {"a": 2, "b": 3}'
    return "TERMINATE" if turn > 5 else f"thinking at {turn}"


def traced_adding_team() -> Any:
    """The traced factory of the team (planner, then a coder with the ``add`` tool; six turns at most)."""
    return agentracer.trace(lambda: SimpleTeam([
        SimpleAgent("planner", scripted_reply, "You plan."),
        SimpleAgent("coder", scripted_reply, "You code.", tools={"add": lambda a, b: a + b}),
    ], max_turns=6))
