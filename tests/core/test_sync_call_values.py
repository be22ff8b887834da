"""What a sync call returns is handed back without being printed: asyncio's runner, in the main thread, reprs its
finished task (result included) as it puts back the SIGINT handler, which cost a MetaGPT run 8 ms (its team's repr)."""

from __future__ import annotations

import threading

import agentracer
from agentracer.loops import run_in_kept_loop
from agentracer.simple import SimpleAgent, SimpleTeam


class Loud:
    """A value whose repr is counted."""

    reprs = 0

    def __repr__(self) -> str:
        Loud.reprs += 1
        return "Loud()"


class LoudTeam(SimpleTeam):
    def __repr__(self) -> str:
        Loud.reprs += 1
        return "LoudTeam()"


def test_a_sync_calls_value_and_a_built_team_are_not_repr_d():
    assert threading.current_thread() is threading.main_thread()  # (where asyncio installs its SIGINT handler)
    Loud.reprs = 0
    value = Loud()

    async def give() -> Loud:
        return value

    assert run_in_kept_loop(give()) is value
    traced = agentracer.trace(lambda: LoudTeam([SimpleAgent("a", lambda messages: "TERMINATE", "")], max_turns=1))
    assert traced.run("x").steps[-1].content == "TERMINATE"
    assert Loud.reprs == 0


def test_a_sync_calls_error_still_comes_out():
    async def fail() -> None:
        raise KeyError("lost")

    try:
        run_in_kept_loop(fail())
    except KeyError as exc:
        assert exc.args == ("lost",)
    else:
        raise AssertionError("the error was lost")
