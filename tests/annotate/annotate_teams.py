"""Scripted framework-free teams for the annotation tests (and the CLI tests, as ``FILE.py:make_chain``).

The chain team counts: each agent says ``value = previous + 1``; the agent producing step ``error_step``
adds 2 instead, unless the task carries feedback naming that step. Ω: the final value equals the number of
agent steps. Correcting step ``error_step`` is the earliest fix that flips the run; correcting an earlier
step does not (the mistake happens again), nor does a later local fix.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from agentracer.simple import SimpleAgent, SimpleTeam

NUMBER = re.compile(r"value = (-?\d+)")


def last_value(text: str) -> int:
    found = NUMBER.findall(text)
    return int(found[-1]) if found else 0


def chain_model(error_step: int | None, delay: float = 0.0):
    """The agents' model; with ``error_step=None`` the task's ``slip=N`` names the step that goes wrong."""
    def model(messages: list[dict[str, Any]]) -> str:
        if delay:
            time.sleep(delay)
        history = [m for m in messages if m["role"] != "system"]
        step = len(history)
        task = history[0]["content"]
        slip = error_step
        if slip is None:
            found = re.search(r"slip=(\d+)", task)
            slip = int(found.group(1)) if found else -1
        previous = last_value("\n".join(m["content"] for m in history[1:]))
        fixed = f"step {slip}" in task.lower()
        return f"value = {previous + (2 if step == slip and not fixed else 1)}"
    return model


def make_task_chain(steps: int = 6, delay: float = 0.0) -> SimpleTeam:
    """The chain team for task files: each task's text says where it slips (``slip=N``), if anywhere."""
    return make_chain(steps=steps, model=chain_model(None, delay))


def make_slow_chain() -> SimpleTeam:
    """The task chain, slowed. With ``CHAIN_HOLD_DIR`` and ``CHAIN_HOLD_AFTER`` set, every model call waits once
    that annotation output folder's ledger holds that many finished tasks: a test kills the run there, mid-way,
    however fast or slow the machine is."""
    hold_dir, hold_after = os.environ.get("CHAIN_HOLD_DIR"), int(os.environ.get("CHAIN_HOLD_AFTER", "0"))
    slow = chain_model(None, 0.05)
    if not hold_dir:
        return make_chain(steps=6, model=slow)

    def held(messages: list[dict[str, Any]]) -> str:
        from agentracer.annotate.ledger import Ledger

        while len(Ledger(hold_dir).entries()) >= hold_after:
            time.sleep(0.05)
        return slow(messages)

    return make_chain(steps=6, model=held)


def make_chain(steps: int = 8, error_step: int = 5, agents: int = 3, model=None) -> SimpleTeam:
    """A team of ``agents`` agents producing ``steps - 1`` messages after the task (step 0)."""
    fn = model or chain_model(error_step)
    members = [SimpleAgent(name=f"agent{i}", model=fn, system_prompt=f"You are agent {i}; add one.")
               for i in range(agents)]
    return SimpleTeam(members, max_turns=steps - 1, stop_word=None)


def chain_task(steps: int = 8) -> tuple[str, str]:
    return "Count from 0, one step per message.", str(steps - 1)


def chain_analyzer(messages: list[dict[str, Any]]) -> str:
    """A scripted analyzer: the local fix is 'previous + 1', said a little differently."""
    user = messages[-1]["content"]
    before = user.split("History before the step:")[1].split(" to correct - agent")[0]
    previous = last_value(before.rsplit("\n\nStep ", 1)[0])
    return f"Checking the arithmetic.\n<correction>value = {previous + 1} (checked)</correction>"


def chain_perturber(messages: list[dict[str, Any]]) -> str:
    """A scripted perturber: an off-by-one in the step's value."""
    user = messages[-1]["content"]
    target = user.split("History before the step:")[1].split("Kind of mistake")[0].rsplit("\n\nStep ", 1)[1]
    return f"<rewrite>value = {last_value(target) + 1}</rewrite>"


def chain_evaluator(trajectory) -> bool:
    return last_value(trajectory.steps[-1].text) == int(trajectory.ground_truth)
