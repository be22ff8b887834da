"""Feedback for the next attempt: from a tracer verdict (the culprit agent and step), or the Self-Refine and
CRITIC baselines (a critique of the final answer, without and with the environment's feedback)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..models import ChatModel
from ..schema import Trajectory, Verdict
from ..tracer.parse import without_reasoning


@dataclass
class Feedback:
    """What the next attempt is told: ``text``, and for a tracer's feedback the culprit ``agent`` and ``step``."""

    text: str
    source: str
    agent: str | None = None
    step: int | None = None
    reason: str | None = None  # a tracer's reason, as it gave it

    def note(self) -> str:
        """The feedback as a note appended to the task."""
        who = f" (for {self.agent})" if self.agent else ""
        return f"Feedback from the previous attempt{who}:\n{self.text}"

    def __str__(self) -> str:
        return self.note()

    def for_agent(self, name: str) -> str | None:
        """The note for agent ``name`` (None when the feedback names another agent; names compare as the tracer's
        do, case and surrounding spaces aside)."""
        return self.note() if self.agent is None or same_agent(self.agent, name) else None


def same_agent(a: str, b: str) -> bool:
    """Whether two agent names are one agent's, as a tracer's answer is read (case and surrounding spaces aside)."""
    return a.strip().lower() == b.strip().lower()


def is_the_task(trajectory: Trajectory, index: int) -> bool:
    """Whether step ``index`` is the task the team was given (the user's first message): no agent's action."""
    if index != 0 or not trajectory.steps:
        return False
    step = trajectory.steps[0]
    return step.role == "user" or (trajectory.task is not None and step.text.strip() == trajectory.task.strip())


def _team_agent(trajectory: Trajectory, name: str) -> str | None:
    """The run's own spelling of the agent ``name`` (case and spaces aside), or None when no agent of the team has
    it: the task's author (``user``) is none, unless it made a step of the run besides the task."""
    steps = trajectory.steps[1:] if is_the_task(trajectory, 0) else trajectory.steps
    names = [agent.name for agent in trajectory.agents] + [step.agent for step in steps]
    return next((agent for agent in names if same_agent(agent, name)), None)


def _own_step_near(trajectory: Trajectory, agent: str, index: int) -> int | None:
    """The agent's last step at or before ``index``, else its first after it; None when it made no step."""
    mine = [step.index for step in trajectory.steps if same_agent(step.agent, agent)]
    before = [i for i in mine if i <= index]
    return before[-1] if before else (mine[0] if mine else None)


def _which_message(trajectory: Trajectory, index: int) -> str:
    """Step ``index`` as its agent can find it in a new attempt, which never shows step numbers: "your 2nd message"."""
    agent = trajectory.steps[index].agent
    n = sum(1 for step in trajectory.steps[:index + 1] if same_agent(step.agent, agent))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"your {n}{suffix} message"


def tracer_feedback(trajectory: Trajectory, verdict: Verdict) -> Feedback:
    """Actionable feedback to the culprit, naming the step and what went wrong there.

    A verdict whose step another agent wrote (a tracer can name the right agent and a step off by a few) never
    tells the culprit it wrote that step: it quotes the step as the other agent's and points the culprit to its own
    step nearest before it."""
    step = trajectory.steps[verdict.step] if 0 <= verdict.step < len(trajectory.steps) else None
    why = f"Why: {(verdict.reason or 'it led the run to fail').rstrip('. ')}."
    env = trajectory.outcome.feedback or trajectory.outcome.error
    named = _team_agent(trajectory, verdict.agent)
    author = None if step is None or is_the_task(trajectory, verdict.step) else step.agent
    unknown = f" (the tracer named {verdict.agent!r}, no agent of this team)" if named is None else ""
    culprit = named or author or verdict.agent  # (a name no agent has: the step's author is the one to tell)
    if step is not None and named is None and author is None:  # the task itself, and no agent named: tell everyone
        text = (f'The failure was traced to step {verdict.step}, the task itself: "{step.text[:400]}"{unknown}. '
                f"{why} Check your actions, and keep the rest of the approach.")
    elif step is None:
        text = (f"{culprit}, the failure was traced to you (at step {verdict.step}, which the run does not have). "
                f"{why} Check your actions, and keep the rest of the approach.")
    elif same_agent(step.agent, culprit):
        text = (f'{culprit}, your action at step {verdict.step} ({_which_message(trajectory, verdict.step)}) caused '
                f'the failure{unknown}. You wrote: "{step.text[:400]}". {why} This time get that message right, and '
                "keep the rest of the approach.")
    else:
        went_wrong = (f"{culprit}, the run went wrong at step {verdict.step}, where {step.agent} wrote: "
                      f'"{step.text[:400]}".')
        own = _own_step_near(trajectory, culprit, verdict.step)
        if own is None:
            text = f"{went_wrong} {why} Act so that this does not happen again, and keep the rest of the approach."
        elif own > verdict.step:  # (its first step comes after: it did not cause the step, it could have caught it)
            text = (f"{went_wrong} Your first action after it, at step {own} ({_which_message(trajectory, own)}), did "
                    f'not put it right: "{trajectory.steps[own].text[:400]}". {why} This time catch the mistake '
                    "there, and keep the rest of the approach.")
        else:
            text = (f"{went_wrong} Your action at step {own} ({_which_message(trajectory, own)}) led to it: "
                    f'"{trajectory.steps[own].text[:400]}". {why} This time get that message right, and keep the rest '
                    "of the approach.")
    if env:
        text += f"\nThe check of the final result said: {env}"
    to = named or author  # (no agent of the team, and no step of the run or the task: everyone)
    return Feedback(text=text, source=verdict.source, agent=to, step=verdict.step, reason=verdict.reason)


CRITIQUE_SYSTEM = (
    "You review the final result of a team of agents for the task below and say, in a few sentences, what is "
    "wrong with it and how to fix it. Do not write the solution."
)


async def critique(trajectory: Trajectory, critic: ChatModel, *, with_environment: bool) -> Feedback:
    """Self-Refine (``with_environment=False``) or CRITIC (``True``: the environment's checks are shown)."""
    from ..evaluate.outcome import final_text

    user = f"Task:\n{trajectory.task}\n\nFinal result:\n{final_text(trajectory)}"
    if with_environment:
        user += f"\n\nResult of checking it:\n{trajectory.outcome.feedback or trajectory.outcome.error or '(none)'}"
    completion = await critic.acomplete([{"role": "system", "content": CRITIQUE_SYSTEM},
                                         {"role": "user", "content": user}])
    return Feedback(text=without_reasoning(completion.text).strip(),  # (a reasoning model's <think>: not the critique)
                    source="critic" if with_environment else "self-refine")


Tracer = Callable[[Trajectory], Any] | Any


async def ask_tracer(tracer: Tracer, trajectory: Trajectory) -> Verdict:
    """A verdict from a tracer given as a method name, an object with ``alocate``/``locate``, or a callable."""
    if tracer is None or isinstance(tracer, str):
        from ..tracer import get_method

        tracer = get_method(tracer or "lite")
    if hasattr(tracer, "alocate"):
        verdict = await tracer.alocate(trajectory)
    elif hasattr(tracer, "locate"):
        verdict = tracer.locate(trajectory)
    elif callable(tracer):
        verdict = tracer(trajectory)
        if inspect.isawaitable(verdict):
            verdict = await verdict
    else:
        raise InputError(f"a tracer must be a method name, have locate/alocate, or be callable; got {tracer!r}")
    if not isinstance(verdict, Verdict):
        raise InputError(f"the tracer returned {type(verdict).__name__}, not a Verdict")
    from ..tracer.base import redacted_verdict

    return redacted_verdict(verdict)
