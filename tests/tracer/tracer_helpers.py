"""Small trajectories for the tracer tests."""

from __future__ import annotations

from agentracer.schema import Step, Trajectory, Verdict


def make_trajectory(agents: list[str], *, id: str = "t1", label: tuple[str, int] | None = None,
                    task: str = "What is 2 + 2?", ground_truth: str = "4", text: str = "said something") -> Trajectory:
    """A small trajectory whose step i is taken by ``agents[i]``."""
    steps = [Step(index=i, agent=a, content=f"{a} {text} at step {i}") for i, a in enumerate(agents)]
    labels = [Verdict(agent=label[0], step=label[1], source="human")] if label else []
    return Trajectory(id=id, task=task, ground_truth=ground_truth, steps=steps, labels=labels)
