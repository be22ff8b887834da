"""The MetaGPT plugin: runs a ``Team`` (or an ``Environment`` with roles) on a task under the recorder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentracer import AgentInfo, AgentracerError, Run, UsageError

from . import hooks
from .llm_hook import model_name

DEFAULT_ROUNDS = 5


class MetaGPTRunError(AgentracerError):
    """A role raised during the run (MetaGPT's ``Team.run`` had swallowed it)."""


@dataclass
class Rounds:
    """A MetaGPT team with run options: ``agentracer.trace(lambda: Rounds(team, n_round=8))``."""

    team: Any
    n_round: int = DEFAULT_ROUNDS
    send_to: str = ""


def _budget_spent(team: Any) -> str | None:
    """Why a MetaGPT team stopped when its investment ran out (``Team.run`` stops on ``NoMoneyException`` and
    swallows it: the run would read as rounds used up), else None."""
    costs = getattr(team, "cost_manager", None)
    total, budget = getattr(costs, "total_cost", None), getattr(costs, "max_budget", None)
    if isinstance(total, int | float) and isinstance(budget, int | float) and total >= budget:
        return f"the team's budget was spent (cost {total:g} of its investment {budget:g})"
    return None


def _would_act(role: Any) -> bool:
    """Whether a role's next ``_observe`` would find news: a buffered message it watches or that names it, not
    already in its memory (MetaGPT's own filter). Every message reaches every role's buffer, watched or not."""
    queued = role.rc.msg_buffer.pop_all()
    for message in queued:  # (MessageQueue has no peek: put them back in order)
        role.rc.msg_buffer.push(message)
    seen = role.rc.memory.get()
    return any((m.cause_by in role.rc.watch or role.name in m.send_to) and m not in seen for m in queued)


def _unhandled(env: Any) -> bool:
    """Whether the rounds ran out with a message some role would still act on (``Environment.is_idle`` also counts
    messages no role watches, and each role's news it already acted on)."""
    return any(_would_act(role) for role in env.roles.values())


def _is_a(obj: Any, module: str, name: str) -> bool:
    return any(c.__module__ == module and c.__name__ == name for c in type(obj).__mro__)


def _is_team(obj: Any) -> bool:
    return _is_a(obj, "metagpt.team", "Team")


def _is_env(obj: Any) -> bool:
    return _is_a(obj, "metagpt.environment.base_env", "Environment")


def _environment(team: Any) -> Any:
    team = team.team if isinstance(team, Rounds) else team
    return team.env if _is_team(team) else team


class MetaGPTPlugin:
    """Plugin for ``metagpt.team.Team``, ``metagpt.environment.Environment`` and ``Rounds``."""

    name = "metagpt"

    def matches(self, team: Any) -> bool:
        inner = team.team if isinstance(team, Rounds) else team
        return _is_team(inner) or _is_env(inner)

    def instrument(self) -> None:
        hooks.install()

    def uninstrument(self) -> None:
        hooks.remove()

    def team_kind(self, team: Any) -> str:
        """The MetaGPT team's class, with ``Rounds`` or not."""
        return type(team.team if isinstance(team, Rounds) else team).__qualname__

    def describe(self, team: Any) -> list[AgentInfo]:
        agents = []
        for role in _environment(team).roles.values():
            llm = getattr(role, "llm", None)
            agents.append(AgentInfo(
                name=hooks.role_name(role), system_prompt=role._get_prefix() or None,
                description=getattr(role, "goal", None) or None, model=model_name(llm) if llm else None,
                tools=[type(a).__name__ for a in getattr(role, "actions", [])],
            ))
        return agents

    def fresh(self, team: Any) -> Any:
        """A traced team object (not a factory) can run once; a replay needs a fresh one from a factory."""
        if _environment(team).history:
            raise UsageError("this MetaGPT team has already run: trace a factory (a function building the team)")
        return team

    async def arun(self, team: Any, task: str, run: Run) -> Any:
        options = team if isinstance(team, Rounds) else Rounds(team)
        inner = options.team
        if _is_team(inner):
            await inner.run(n_round=options.n_round, idea=task, send_to=options.send_to, auto_archive=False)
        else:
            await _run_environment(inner, task, options)
        if run.divergence is not None:
            raise run.divergence
        failed = hooks.failures(run)
        spent = _budget_spent(inner) if _is_team(inner) else None
        if not failed and spent is not None:  # (Team.run stops on NoMoneyException and swallows it)
            run.trajectory.outcome.stop_reason = spent
            run.trajectory.outcome.success = False
        elif not failed and _unhandled(_environment(inner)):  # rounds ran out with messages still to handle
            run.trajectory.outcome.stop_reason = f"n_round={options.n_round} used up with messages still unhandled"
            run.trajectory.outcome.success = False
        if failed:  # (MetaGPT's Team.run stops at a role's exception, with messages left: that is not its limit)
            first = failed[0]
            raise MetaGPTRunError(f"role {first['agent']!r} failed: {first['error']}")
        answers = [s for s in run.trajectory.steps if s.agent != hooks.USER]
        return answers[-1].content if answers else None


async def _run_environment(env: Any, task: str, options: Rounds) -> None:
    from metagpt.actions import UserRequirement
    from metagpt.const import MESSAGE_ROUTE_TO_ALL
    from metagpt.schema import Message

    env.publish_message(Message(role="Human", content=task, cause_by=UserRequirement,
                                send_to=options.send_to or MESSAGE_ROUTE_TO_ALL))
    for _ in range(options.n_round):
        if env.is_idle:
            break
        await env.run()
