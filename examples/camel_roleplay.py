"""Trace a CAMEL role-play offline, find the faulty step, and replay from it with a corrected message.

A customer asks a shop assistant for a total; the assistant gets the pens wrong at step 3. Replaying from
step 3 with the right line serves steps 0-2 from the recording (no model call) and reruns the rest.

    python examples/camel_roleplay.py [--out trajectories.jsonl]

The models are scripted CAMEL backends (``agentracer_plugins.camel.testing.ScriptedModel``): swap in any
CAMEL model (e.g. ``OpenAICompatibleModel``) to trace a real run the same way.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import agentracer
from camel.societies import RolePlaying

from agentracer_plugins.camel import with_options
from agentracer_plugins.camel.testing import ScriptedModel

TASK = "Compute the total price of 3 notebooks at $4.00 each and 2 pens at $1.50 each."
INSTRUCTIONS = [
    "Instruction: compute the cost of the notebooks.\nInput: 3 notebooks at $4.00",
    "Instruction: compute the cost of the pens.\nInput: 2 pens at $1.50",
    "Instruction: add both costs and state the total.\nInput: None",
]


def turns(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


def customer(messages: list[dict[str, Any]]) -> str:
    turn = turns(messages)
    return INSTRUCTIONS[turn] if turn < len(INSTRUCTIONS) else "CAMEL_TASK_DONE"


def shop_assistant(messages: list[dict[str, Any]]) -> str:
    last = str(messages[-1]["content"])
    amounts = [float(x) for m in messages if m["role"] == "assistant"
               for x in re.findall(r"= \$(\d+\.\d\d)", str(m["content"]))]
    if "notebooks" in last:
        return "Solution: 3 x $4.00 = $12.00. Next request."
    if "pens" in last:
        return "Solution: 2 x $1.50 = $4.00. Next request."  # the mistake
    if "add both" in last:
        return f"Solution: the total is ${sum(amounts):.2f}. Next request."
    return f"Final answer: the total is ${sum(amounts[:2]):.2f}."


@agentracer.trace(evaluator=lambda traj: "$15.00" in str(traj.outcome.answer))
def make_society() -> Any:
    return with_options(
        RolePlaying("Shop Assistant", "Customer", task_prompt=TASK, with_task_specify=False,
                    assistant_agent_kwargs={"model": ScriptedModel([shop_assistant], cycle=True)},
                    user_agent_kwargs={"model": ScriptedModel([customer], cycle=True)}),
        max_turns=8,
    )


def show(title: str, traj: agentracer.Trajectory) -> None:
    print(f"== {title}: {len(traj.steps)} steps, success={traj.outcome.success}, answer={traj.outcome.answer!r}")
    for step in traj.steps:
        sources = ",".join(c.source for c in step.model_calls) or "-"
        mark = " (replaced)" if step.replaced else ""
        print(f"  {step.index:>2} {step.agent:<15} [{sources:<11}] {step.text.splitlines()[0]}{mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="append both trajectories to this JSONL file")
    args = parser.parse_args()

    traj = make_society.run(TASK)
    show("recorded", traj)
    fixed = make_society.replay(traj, step=3, action="Solution: 2 x $1.50 = $3.00. Next request.")
    show("replayed from step 3", fixed)
    stats = fixed.metadata["replay_stats"]
    print(f"replay: {stats['cassette']} calls served from the recording, {stats['live']} live")
    if args.out:
        store = agentracer.open_store(args.out)
        store.extend([traj, fixed])
        print(f"wrote 2 trajectories to {args.out}")


if __name__ == "__main__":
    main()
