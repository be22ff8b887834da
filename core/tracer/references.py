"""Reference methods that need no model, the floor any tracer must beat.

* ``random``: a step drawn uniformly (seeded by ``seed`` and the trajectory id, so runs repeat), and the
  agent that took it.
* ``majority``: with ``references`` (trajectories with labels, e.g. a training split), the agent most often
  blamed among them that also acts in this trajectory; without references, or when none of those agents
  acts here, the agent that took the most steps. Agents standing for the human/user are never chosen while
  another agent acts. The step is the chosen agent's first step (decisive errors tend to come early).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..schema import Trajectory, Verdict
from .base import Method, require_steps

HUMAN_AGENTS = frozenset({"human", "user", "user_proxy", "userproxy", "admin"})


def _verdict(method: str, agent: str, step: int, reason: str, **metadata: Any) -> Verdict:
    return Verdict(agent=agent, step=step, reason=reason, source="tracer", metadata={"method": method, **metadata})


class RandomMethod(Method):
    """A uniformly random step and its agent."""

    name = "random"

    def __init__(self, model: Any = None, *, seed: int = 0, **options: Any) -> None:
        super().__init__(None, **options)
        self.seed = seed

    async def alocate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        require_steps(trajectory)
        rng = random.Random(f"{self.seed}:{trajectory.id}")
        step = trajectory.steps[rng.randrange(len(trajectory.steps))]
        return _verdict(self.name, step.agent, step.index, "a uniformly random step", seed=self.seed)


class MajorityMethod(Method):
    """The most often blamed agent among references (or the busiest agent), at its first step."""

    name = "majority"

    def __init__(self, model: Any = None, *, references: Iterable[Trajectory] | None = None,
                 **options: Any) -> None:
        super().__init__(None, **options)
        self.blamed: Counter[str] = Counter()
        for reference in references or ():
            label = reference.training_label()  # (a tracer's own verdict is no reference)
            if label is not None:
                self.blamed[label.agent.lower()] += 1

    async def alocate(self, trajectory: Trajectory, *, with_ground_truth: bool = False) -> Verdict:
        require_steps(trajectory)
        counts = Counter(step.agent for step in trajectory.steps)
        candidates = [a for a in counts if a.lower() not in HUMAN_AGENTS] or list(counts)
        by = "label counts"
        ranked = [a for a in candidates if self.blamed.get(a.lower())]
        if ranked:
            agent = max(ranked, key=lambda a: (self.blamed[a.lower()], counts[a]))
        else:
            by = "step counts"
            agent = max(candidates, key=lambda a: counts[a])  # ties: first to appear (dicts keep order)
        step = next(s.index for s in trajectory.steps if s.agent == agent)
        return _verdict(self.name, agent, step, f"most frequent agent by {by}, at its first step", by=by)
