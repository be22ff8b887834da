"""``agentracer.trace``: one line turns a team (or its factory) into one that records and replays."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from collections.abc import Callable
from typing import Any

from .errors import ReplayError, TeamRunError
from .plugins import Plugin, plugin_for
from .record import Run
from .replay import Cassette, ReplayPlan, check_plan
from .schema import Outcome, ReplayInfo, Trajectory

Evaluator = Callable[[Trajectory], Any]


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, also when an event loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def apply_evaluation(trajectory: Trajectory, evaluator: Evaluator) -> None:
    """Fill ``trajectory.outcome`` from an evaluator returning a bool, a score, an Outcome or a dict."""
    result = evaluator(trajectory)
    outcome = trajectory.outcome
    if isinstance(result, Outcome):
        merged = outcome.model_dump()
        merged.update({k: v for k, v in result.model_dump().items() if v is not None})
        trajectory.outcome = Outcome.model_validate(merged)
    elif isinstance(result, dict):
        trajectory.outcome = Outcome.model_validate({**outcome.model_dump(), **result})
    elif isinstance(result, bool):
        outcome.success = result
        outcome.score = float(result)
    elif isinstance(result, int | float):
        outcome.score = float(result)
        outcome.success = result >= 1.0
    else:
        raise TypeError(f"evaluator returned {type(result).__name__}; want bool, float, dict or Outcome")


class TracedTeam:
    """A team factory (or team) whose runs are recorded and can be replayed from any step.

    ``run(task)`` returns the recorded ``Trajectory``; ``replay(trajectory, step=t, action=...)`` rebuilds a
    fresh team, serves steps before ``t`` from the recording, puts ``action`` at ``t`` and runs the rest
    live. Calling the object still calls the factory.
    """

    def __init__(
        self,
        target: Any,
        *args: Any,
        evaluator: Evaluator | None = None,
        store: Any = None,
        raise_on_error: bool = True,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._target = target
        self._is_factory = callable(target) and (inspect.isfunction(target) or inspect.ismethod(target)
                                                 or isinstance(target, functools.partial) or inspect.isclass(target))
        self._args, self._kwargs = args, kwargs
        self.evaluator = evaluator
        self.store = store
        self.raise_on_error = raise_on_error
        self.name = name or getattr(target, "__qualname__", type(target).__name__)
        if self._is_factory:
            functools.update_wrapper(self, target)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._is_factory:
            raise TypeError("this traced object wraps a team, not a factory")
        return self._target(*args, **kwargs)

    # ------------------------------------------------------------------ building
    def build(self) -> Any:
        """A fresh team: the factory's result, or the wrapped team reset by its plugin."""
        if self._is_factory:
            team = self._target(*self._args, **self._kwargs)
            if inspect.isawaitable(team):
                raise TypeError("the team factory is async; use 'await traced.arun(...)'")
            return team
        reset = getattr(plugin_for(self._target), "fresh", None)
        return reset(self._target) if reset else self._target

    async def _abuild(self) -> Any:
        if self._is_factory:
            team = self._target(*self._args, **self._kwargs)
            return await team if inspect.isawaitable(team) else team
        return self.build()

    # ------------------------------------------------------------------ running
    async def _execute(self, task: str, *, plan: ReplayPlan | None, parent: Trajectory | None,
                       ground_truth: Any, metadata: dict[str, Any] | None) -> Trajectory:
        team = await self._abuild()
        plugin: Plugin = plugin_for(team)
        plugin.instrument()
        trajectory = Trajectory(
            task=task, ground_truth=ground_truth, framework=plugin.name, agents=plugin.describe(team),
            metadata={"team": self.name, **(metadata or {})},
        )
        cassette = None
        if plan is not None and parent is not None:
            self._check_shape(parent, trajectory, plugin)
            cassette = Cassette(parent)
            trajectory.replay = ReplayInfo(
                parent_id=parent.id, step=plan.step, action=plan.action, served_tools=plan.serve_tools
            )
        run = Run(trajectory, plan=plan, cassette=cassette)
        error: BaseException | None = None
        with run.activate():
            try:
                answer = await plugin.arun(team, task, run)
                trajectory.outcome.answer = answer if _jsonable(answer) else str(answer)
            except ReplayError:
                raise
            except Exception as exc:  # the team failed: record it as the outcome
                error = exc
                trajectory.outcome.success = False
                trajectory.outcome.error = f"{type(exc).__name__}: {exc}"
        run.finish()
        if run.divergence is not None:
            raise run.divergence
        if plan is not None and len(trajectory.steps) <= plan.step and error is None:
            raise ReplayError(
                f"the replay ended after {len(trajectory.steps)} steps, before reaching step {plan.step}"
            )
        if self.evaluator is not None and error is None:
            apply_evaluation(trajectory, self.evaluator)
        if self.store is not None:
            self.store.append(trajectory)
        if error is not None and self.raise_on_error:
            raise TeamRunError(f"the team raised {type(error).__name__}: {error}", trajectory) from error
        return trajectory

    @staticmethod
    def _check_shape(parent: Trajectory, fresh: Trajectory, plugin: Plugin) -> None:
        if parent.framework and parent.framework != plugin.name:
            raise ReplayError(
                f"trajectory {parent.id} was recorded with {parent.framework!r}; this team is {plugin.name!r}"
            )
        before = sorted(a.name for a in parent.agents)
        now = sorted(a.name for a in fresh.agents)
        if before and now and before != now:
            raise ReplayError(f"team shape differs: recorded agents {before}, this team has {now}")

    async def arun(self, task: str, *, ground_truth: Any = None, metadata: dict[str, Any] | None = None) -> Trajectory:
        """Run a fresh team on ``task`` and return its recorded trajectory."""
        return await self._execute(task, plan=None, parent=None, ground_truth=ground_truth, metadata=metadata)

    def run(self, task: str, *, ground_truth: Any = None, metadata: dict[str, Any] | None = None) -> Trajectory:
        """Synchronous ``arun``."""
        # straight to _execute: frameworks that walk the stack on every step (CAMEL) pay for each frame
        return run_sync(self._execute(task, plan=None, parent=None, ground_truth=ground_truth, metadata=metadata))

    async def areplay(self, trajectory: Trajectory, step: int, action: Any, *, serve_tools: bool = False,
                      strict: bool = True) -> Trajectory:
        """Replay ``trajectory`` from ``step`` with ``action`` there; zero live model calls before it."""
        plan = ReplayPlan(step=step, action=action, serve_tools=serve_tools, strict=strict)
        check_plan(trajectory, plan)
        if trajectory.task is None:
            raise ReplayError(f"trajectory {trajectory.id} has no task to replay")
        return await self._execute(trajectory.task, plan=plan, parent=trajectory,
                                   ground_truth=trajectory.ground_truth, metadata=None)

    def replay(self, trajectory: Trajectory, step: int, action: Any, *, serve_tools: bool = False,
               strict: bool = True) -> Trajectory:
        """Synchronous ``areplay``."""
        return run_sync(self.areplay(trajectory, step, action, serve_tools=serve_tools, strict=strict))


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def trace(target: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Trace a team factory or a team: ``@agentracer.trace`` or ``agentracer.trace(team_or_factory, ...)``.

    Keyword options: ``evaluator`` (Ω over the trajectory), ``store`` (append each run), ``raise_on_error``,
    ``name``. Other positional and keyword arguments are passed to the factory on every build.
    """
    if target is None:
        return lambda t: TracedTeam(t, *args, **kwargs)
    return TracedTeam(target, *args, **kwargs)
