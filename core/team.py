"""``agentracer.trace``: one line turns a team (or its factory) into one that records and replays."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import json
import os
import pathlib
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from .errors import AgentracerError, ReplayError, RunNotStoredError, TeamBuildError, TeamRunError, UsageError
from .loops import close_loop, kept_loop, new_loop, run_in_kept_loop, run_returning
from .plugins import Plugin, plugin_for, registered_plugins, team_kind
from .record import Run
from .redact import Redactor, redact
from .replay import Cassette, ReplayPlan, check_described_tools, check_plan
from .schema import Outcome, ReplayInfo, Trajectory

Evaluator = Callable[[Trajectory], Any]


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, in this thread's kept event loop (``agentracer.loops``); where an
    event loop already runs here, in a worker thread."""
    if not _loop_running():
        return run_in_kept_loop(coro)
    return _in_worker_thread(run_sync, coro)


def apply_evaluation(trajectory: Trajectory, evaluator: Evaluator) -> None:
    """Fill ``trajectory.outcome`` from an evaluator returning a bool, a score, an Outcome or a dict (its texts
    redacted: a feedback may quote the answer's key, and the run was redacted before Ω saw it)."""
    result = evaluator(trajectory)
    outcome = trajectory.outcome
    if isinstance(result, Outcome):
        merged = outcome.model_dump()
        merged.update(redact({k: v for k, v in result.model_dump().items() if v is not None}))
        trajectory.outcome = Outcome.model_validate(merged)
    elif isinstance(result, dict):
        trajectory.outcome = Outcome.model_validate({**outcome.model_dump(), **redact(result)})
    elif isinstance(result, bool):
        outcome.success = result
        outcome.score = float(result)
    elif isinstance(result, int | float):
        outcome.score = float(result)
        outcome.success = result >= 1.0
    else:
        raise TypeError(f"evaluator returned {type(result).__name__}; want bool, float, dict or Outcome")


def is_factory(target: Any) -> bool:
    """Whether tracing ``target`` calls it to build each team (a function, method, partial or class) rather than
    running it as the team itself."""
    return callable(target) and (inspect.isfunction(target) or inspect.ismethod(target)
                                 or isinstance(target, functools.partial) or inspect.isclass(target))


def _as_evaluator(evaluator: Any) -> Evaluator | None:
    """Ω as ``get_evaluator`` reads it: a name (``exact``, ``mbpp``), ``module:function``, or a function of the
    trajectory (or, by its first parameter's name ``answer``/``text``/``output``, of the final answer text)."""
    if evaluator is None:
        return None
    from .evaluate.outcome import get_evaluator

    return get_evaluator(evaluator)


def _as_store(store: Any) -> Any:
    """A store given by its path (``"runs.jsonl"``, ``"runs.db"``) opened; a store object as it is; anything else
    refused now, not when the first run ends (its trajectory would be lost)."""
    if store is None or (callable(getattr(store, "append", None))):
        return store
    if isinstance(store, str | os.PathLike):
        from .errors import InputError
        from .store import foreign_content, open_store

        what = foreign_content(pathlib.Path(store))
        if what:
            raise InputError(f"holds {what}, not trajectories: give the runs a new store", where=str(store))
        _check_writable(pathlib.Path(store))
        return open_store(store)
    raise TypeError(f"store must be a path (.jsonl, .db) or a store with append(trajectory), got "
                    f"{type(store).__name__}")


def _check_writable(path: pathlib.Path) -> None:
    """Refuse a store path no run could be appended to (a read-only file or folder), before any run (``open_store``
    refuses a folder)."""
    from .errors import InputError

    existing = path if path.exists() else next((p for p in path.parents if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | (os.X_OK if existing.is_dir() else 0)):
        what = "the file" if existing == path else f"its folder {existing}"
        raise InputError(f"cannot be written ({what} is read-only): give the runs a store they can be added to",
                         where=str(path))


class _TeamObjectState:
    """What every traced wrapper of one team object shares: the event loop the object is bound to, the loop its sync
    runs use, and the locks its runs take turns on (two wrappers of one MetaGPT team run at once mixed their runs'
    messages)."""

    def __init__(self) -> None:
        self.kept_runner: asyncio.Runner | None = None  # the event loop of the sync runs (see ``_event_loop``)
        self.kept_lock = threading.Lock()
        self.bind_lock = threading.Lock()
        self.loop: weakref.ref[asyncio.AbstractEventLoop] | None = None  # where the team object runs
        self.turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


_OBJECT_STATES: weakref.WeakValueDictionary[int, _TeamObjectState] = weakref.WeakValueDictionary()
_OBJECT_STATES_LOCK = threading.Lock()


def _state_of(team: Any) -> _TeamObjectState:
    """The state the traced wrappers of ``team`` share (by identity: each wrapper holds the team, so its id stays its
    own while the state lives)."""
    with _OBJECT_STATES_LOCK:
        state = _OBJECT_STATES.get(id(team))
        if state is None:
            state = _OBJECT_STATES[id(team)] = _TeamObjectState()
        return state


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
        evaluator: Evaluator | str | None = None,
        store: Any = None,
        raise_on_error: bool = True,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._target = target
        self._is_factory = is_factory(target)
        self._args, self._kwargs = args, kwargs
        self.evaluator = _as_evaluator(evaluator)
        self.evaluator_spec: str | None = evaluator if isinstance(evaluator, str) else None  # noted in runs
        self.store = _as_store(store)
        self.raise_on_error = raise_on_error
        self.name = name or getattr(target, "__qualname__", type(target).__name__)
        if self._is_factory:
            functools.update_wrapper(self, target)
        # where a wrapped team object runs and takes turns: shared by every traced wrapper of that object
        self._shared = _TeamObjectState() if self._is_factory else _state_of(target)

    def with_arguments(self, **kwargs: Any) -> TracedTeam:
        """The same traced factory (its arguments, Ω, store, options) with keyword arguments added or replaced, e.g.
        the ``feedback`` the self-correction loop gives the next attempt."""
        if not self._is_factory:
            raise TypeError("this traced object wraps a team, not a factory: it takes no arguments")
        return TracedTeam(self._target, *self._args, evaluator=self.evaluator_spec or self.evaluator, store=self.store,
                          raise_on_error=self.raise_on_error, name=self.name, **{**self._kwargs, **kwargs})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._is_factory:
            raise TypeError("this traced object wraps a team, not a factory")
        return self._target(*args, **kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> TracedTeam:
        """A traced method read from an instance traces the method bound to it (``obj.build.run(task)``)."""
        if instance is None or not inspect.isfunction(self._target):
            return self
        return TracedTeam(self._target.__get__(instance, owner), *self._args,
                          evaluator=self.evaluator_spec or self.evaluator,
                          store=self.store, raise_on_error=self.raise_on_error, name=self.name, **self._kwargs)

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

    def _takes_task(self) -> bool:
        """Whether the factory has a ``task`` parameter that the traced arguments leave unset: it then gets each run's
        task (a CAMEL society, built with the task it plays, runs the tasks of a tasks file so). Worked out once."""
        found = self.__dict__.get("_gives_task")
        if found is None:
            try:
                signature = inspect.signature(self._target)
                given = signature.bind_partial(*self._args, **self._kwargs).arguments
            except (TypeError, ValueError):
                found = False
            else:
                partial = self._target
                while isinstance(partial, functools.partial):  # (a partial's own task shows as a default)
                    given = {**partial.keywords, **given}
                    partial = partial.func
                parameter = signature.parameters.get("task")
                found = parameter is not None and "task" not in given and \
                    parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
            self.__dict__["_gives_task"] = found
        return found

    async def _abuild(self, task: str) -> Any:
        """The team a run of ``task`` runs; the factory's own exception comes out as ``TeamBuildError`` (nothing ran)."""
        if not self._is_factory:
            team = self.build()
            reset = getattr(plugin_for(team), "areset", None)  # a team object that ran before starts afresh
            if reset is not None:
                await reset(team)
            return team
        try:
            extra = {"task": task} if self._takes_task() else {}
            team = self._target(*self._args, **self._kwargs, **extra)
            return await team if inspect.isawaitable(team) else team
        except AgentracerError:
            raise
        except Exception as exc:
            raise TeamBuildError(f"the team factory {self.name} raised {error_summary(exc)}") from exc

    # ------------------------------------------------------------------ running
    # A run is begun (plugin, trajectory, Run), driven by the plugin's coroutine, and ended (outcome, checks,
    # store). The sync entry points make the plugin's coroutine the root of the event loop's task: frameworks that
    # walk the stack on every step (CAMEL inspects every frame) pay for each frame between the user and the team.
    def _new_run(self, task: str, plan: ReplayPlan | None, parent: Trajectory | None, ground_truth: Any,
                 metadata: dict[str, Any] | None) -> Run:
        """The run, begun before its team is built: a factory's own model calls (a CAMEL society's task specifier
        asks its model as the society is made) are recorded, and served in a replay, like the team's. The hooks of
        the plugin a replay's recording names, or of a plugin that records such calls (``records_build_calls``), are
        put in first."""
        trajectory = Trajectory(task=task, ground_truth=ground_truth, metadata=dict(metadata or {}))
        cassette = None
        if plan is not None and parent is not None:
            cassette = Cassette(parent)
            trajectory.replay = ReplayInfo(
                parent_id=parent.id, step=plan.step, action=plan.action, served_tools=plan.serve_tools
            )
        if self._is_factory:
            _instrument_for_build(parent)
        run = Run(trajectory, plan=plan, cassette=cassette)
        run.team_built_for_task = self._is_factory and self._takes_task()
        return run

    def _begin(self, team: Any, run: Run, plan: ReplayPlan | None, parent: Trajectory | None) -> Plugin:
        """The built team's plugin (its hooks put in) and what the run records of the team; a replay's team must be
        of its recording's shape."""
        plugin: Plugin = plugin_for(team)
        plugin.instrument()
        trajectory = run.trajectory
        trajectory.framework, trajectory.agents = plugin.name, plugin.describe(team)
        trajectory.metadata = {"team": self.name, "team_type": team_kind(plugin, team), **trajectory.metadata}
        if plan is not None and parent is not None:
            self._check_shape(parent, trajectory, plugin)
            check_described_tools(parent, trajectory, plan)
        return plugin

    async def _abuild_in(self, run: Run, task: str) -> Any:
        """The team for ``task``, a factory's built with the run active (its model calls are the run's)."""
        if not self._is_factory:
            return await self._abuild(task)
        with run.activate():
            return await self._abuild(task)

    @staticmethod
    def _failed(run: Run, exc: Exception) -> Exception:
        """The team raised: that is the run's outcome (a replay's own errors and a plugin's usage errors are not)."""
        if isinstance(exc, ReplayError | UsageError):
            raise exc
        run.add_failed_call_steps()
        run.trajectory.outcome.success = False
        run.trajectory.outcome.error = error_summary(exc)
        return exc

    def _evaluate(self, trajectory: Trajectory) -> None:
        """Apply Ω; when Ω itself raises, the run is kept with its outcome unknown and Ω's error in its metadata."""
        assert self.evaluator is not None
        if self.evaluator_spec is not None:  # (a replay of this run on the CLI judges it the same way)
            trajectory.metadata["evaluator"] = self.evaluator_spec
        try:
            apply_evaluation(trajectory, self.evaluator)
        except Exception as exc:
            error = trajectory.metadata["evaluation_error"] = redact(error_summary(exc))
            warnings.warn(f"the evaluator raised {error}: run {trajectory.id} is kept with its outcome "
                          "unknown (metadata['evaluation_error'])", RuntimeWarning, stacklevel=2)

    def _end(self, run: Run, plan: ReplayPlan | None, answer: Any, error: Exception | None) -> Trajectory:
        trajectory = run.trajectory
        if error is None:
            trajectory.outcome.answer = _answer_value(answer)
        run.finish()
        if run.divergence is not None:
            raise run.divergence
        if plan is not None and plan.step == 0 and run.cassette is not None:
            _replaced_task(trajectory, run.cassette.trajectory)
        if plan is not None and len(trajectory.steps) <= plan.step and error is None:
            raise ReplayError(
                f"the replay ended after {len(trajectory.steps)} steps, before reaching step {plan.step}"
            )
        if plan is not None and len(trajectory.steps) > plan.step and not run.stats["replacement"]:
            step = trajectory.steps[plan.step]
            raise ReplayError(
                f"step {plan.step} ({step.kind} of {step.agent!r}) ran without the replacement: "
                f"the {trajectory.framework} plugin found "
                f"no model call, tool result or event of that step to put the action into, so its content is live")
        if self.evaluator is not None and error is None:
            self._evaluate(trajectory)
        if self.store is not None:
            self._store(trajectory)
        if error is not None and self.raise_on_error:
            raise TeamRunError(f"the team raised {trajectory.outcome.error or error_summary(error)}", trajectory) from error
        return trajectory

    def _store(self, trajectory: Trajectory) -> None:
        """Append the run to the store; a refusal keeps the run (``RunNotStoredError`` carries it)."""
        try:
            self.store.append(trajectory)
        except Exception as exc:  # (whatever the store raised: the run, paid for, must not go with it)
            raise RunNotStoredError(f"run {trajectory.id} ended but the store did not take it ({error_summary(exc)}): "
                                    "the trajectory is attached to this error as .trajectory", trajectory) from exc

    async def _execute(self, task: str, *, plan: ReplayPlan | None, parent: Trajectory | None,
                       ground_truth: Any, metadata: dict[str, Any] | None) -> Trajectory:
        # a factory builds a fresh team per run; runs of one team object take turns
        turn = contextlib.nullcontext() if self._is_factory else self._turn(asyncio.get_running_loop())
        async with turn:
            return await self._execute_once(task, plan=plan, parent=parent, ground_truth=ground_truth,
                                            metadata=metadata)

    def _turn(self, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        """The lock async runs of a wrapped team object take turns on, in the one loop it runs in."""
        shared = self._shared
        with shared.bind_lock:
            self._bind(loop)
            lock = shared.turns.get(loop)
            if lock is None:
                lock = shared.turns[loop] = asyncio.Lock()
            return lock

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep a wrapped team object to one event loop while that loop is open (for good, where its plugin says the
        team keeps it): frameworks bind a team's queues and events to the loop it first ran in (AutoGen, CAMEL), so a
        run in another fails inside the team."""
        shared = self._shared
        bound = shared.loop() if shared.loop is not None else None
        gone = shared.loop is not None and (bound is None or bound.is_closed())  # (asyncio.run's loop: closed, freed)
        if shared.loop is not None and bound is not loop and (not gone or self._bound_for_good()):
            where = "run()/replay()" if shared.kept_runner is not None and bound is shared.kept_runner.get_loop() \
                else "another event loop" + (", closed since" if gone else "")
            raise UsageError(
                f"this traced team object {'ran' if gone else 'already runs'} in {where}, and a team is bound to the "
                "event loop it first ran in: use either run()/replay() or await arun()/areplay() in one loop, or "
                "trace a factory that builds a fresh team per run")
        shared.loop = weakref.ref(loop)

    def _bound_for_good(self) -> bool:
        """Whether the wrapped team keeps its first event loop even once that loop is closed (its plugin's
        ``keeps_its_loop(team)``: an AutoGen group chat's runtime queues do, and fail in any other loop)."""
        keeps = getattr(plugin_for(self._target), "keeps_its_loop", None)
        return bool(keeps is not None and keeps(self._target))

    async def _execute_once(self, task: str, *, plan: ReplayPlan | None, parent: Trajectory | None,
                            ground_truth: Any, metadata: dict[str, Any] | None) -> Trajectory:
        run = self._new_run(task, plan, parent, ground_truth, metadata)
        answer, error = None, None
        try:
            team = await self._abuild_in(run, task)
            plugin = self._begin(team, run, plan, parent)
            with run.activate():
                try:
                    answer = await plugin.arun(team, task, run)
                except Exception as exc:
                    error = self._failed(run, exc)
            return self._end(run, plan, answer, error)
        finally:
            run.release()

    @contextlib.contextmanager
    def _sync_session(self, task: str, plan: ReplayPlan | None, parent: Trajectory | None, ground_truth: Any,
                      metadata: dict[str, Any] | None) -> Iterator[_SyncSession]:
        """A new event loop with the team built and the run begun. The caller runs ``session.main()`` on it in
        its own body, so that the plugin's coroutine is the loop's root task and no frame of ours sits between
        the caller and the team (frameworks that walk the stack on each step, like CAMEL, pay for every frame;
        a generator's frame is off the stack while it is suspended). An error of the team becomes the outcome;
        the run ends on exit and its trajectory is ``session.trajectory``."""
        with self._event_loop() as runner:
            context = contextvars.copy_context()  # building and running share it, as they do in ``_execute``
            run = context.run(self._new_run, task, plan, parent, ground_truth, metadata)
            error = None
            try:
                if self._is_factory:
                    run.activate_in(context)  # (a factory's model calls are the run's)
                team = run_returning(runner, self._abuild(task), context)
                plugin = context.run(self._begin, team, run, plan, parent)
                if not self._is_factory:
                    run.activate_in(context)
                session = _SyncSession(runner, context, lambda: plugin.arun(team, task, run))
                try:
                    yield session
                except Exception as exc:
                    error = self._failed(run, exc)
                session.trajectory = self._end(run, plan, session.answer, error)
            finally:
                run.release()

    @contextlib.contextmanager
    def _event_loop(self) -> Iterator[asyncio.Runner]:
        """The event loop of one sync run: for a factory's fresh teams, the thread's kept loop (``agentracer.loops``:
        a model client made once and shared by the factory's teams is bound to it); for a wrapped team object, one
        kept for the object's life, as frameworks bind a team's queues to the loop it first ran in (AutoGen does). A
        team object runs once at a time: sync runs of it from several threads take turns."""
        if self._is_factory:
            with kept_loop() as runner:
                yield runner
            return
        shared = self._shared
        with shared.kept_lock:
            if shared.kept_runner is None:
                shared.kept_runner = asyncio.Runner(loop_factory=new_loop)
                weakref.finalize(shared, _close_kept_runner, shared.kept_runner)
            with shared.bind_lock:
                self._bind(shared.kept_runner.get_loop())
            yield shared.kept_runner

    @staticmethod
    def _check_shape(parent: Trajectory, fresh: Trajectory, plugin: Plugin) -> None:
        if parent.framework and parent.framework != plugin.name:
            raise ReplayError(
                f"trajectory {parent.id} was recorded with {parent.framework!r}; this team is {plugin.name!r}"
            )
        recorded_type, fresh_type = parent.metadata.get("team_type"), fresh.metadata.get("team_type")
        if recorded_type and fresh_type and recorded_type != fresh_type:
            raise ReplayError(f"team shape differs: trajectory {parent.id} was recorded with a {recorded_type}, this "
                              f"team is a {fresh_type}")
        shape = getattr(plugin, "shape_agents", None) or (lambda agents: [a.name for a in agents])
        before, now = sorted(shape(parent.agents)), sorted(shape(fresh.agents))
        if before and now and before != now:
            raise ReplayError(f"team shape differs: recorded agents {before}, this team has {now}")

    async def arun(self, task: str, *, ground_truth: Any = None, metadata: dict[str, Any] | None = None) -> Trajectory:
        """Run a fresh team on ``task`` and return its recorded trajectory."""
        _check_task(task)
        return await self._execute(task, plan=None, parent=None, ground_truth=ground_truth, metadata=metadata)

    def run(self, task: str, *, ground_truth: Any = None, metadata: dict[str, Any] | None = None) -> Trajectory:
        """Synchronous ``arun``."""
        _check_task(task)
        if not _loop_running():  # the plugin's coroutine is driven right here, early in this frame: see ``_sync_session``
            with self._sync_session(task, None, None, ground_truth, metadata) as session:
                # (not ``run_returning``: no frame over the plugin's coroutine; its answer is short text to repr)
                session.answer = session.runner.run(session.main(), context=session.context)
            return session.trajectory
        return _in_worker_thread(self.run, task, ground_truth=ground_truth, metadata=metadata)

    async def areplay(self, trajectory: Trajectory, step: int, action: Any, *, serve_tools: bool = False,
                      strict: bool = True) -> Trajectory:
        """Replay ``trajectory`` from ``step`` with ``action`` there; zero live model calls before it."""
        plan = _replay_plan(trajectory, step, action, serve_tools, strict)
        return await self._execute(trajectory.task or "", plan=plan, parent=trajectory,
                                   ground_truth=trajectory.ground_truth, metadata=None)

    def replay(self, trajectory: Trajectory, step: int, action: Any, *, serve_tools: bool = False,
               strict: bool = True) -> Trajectory:
        """Synchronous ``areplay``."""
        if _loop_running():
            return _in_worker_thread(self.replay, trajectory, step, action, serve_tools=serve_tools, strict=strict)
        plan = _replay_plan(trajectory, step, action, serve_tools, strict)
        task = trajectory.task or ""
        with self._sync_session(task, plan, trajectory, trajectory.ground_truth, None) as session:
            session.answer = session.runner.run(session.main(), context=session.context)
        return session.trajectory


class _SyncSession:
    """One sync run of a team: its event loop, the context the team runs in, the plugin's coroutine to run, and
    what came of it."""

    def __init__(self, runner: asyncio.Runner, context: contextvars.Context, start: Callable[[], Any]) -> None:
        self.runner, self.context, self._start = runner, context, start
        self.answer: Any = None
        self.trajectory: Trajectory  # set when the session ends

    def main(self) -> Any:
        """The plugin's coroutine for this run (a plugin refusing the team raises here, inside the session)."""
        return self.context.run(self._start)


def _in_worker_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a sync entry point from a thread that already runs an event loop: in a worker thread of its own."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()


def _instrument_for_build(parent: Trajectory | None) -> None:
    """Put in, before a factory builds its team, the hooks of the plugin whose framework a replay's recording names,
    and of each plugin that says its framework's teams ask models as they are built (``records_build_calls()``)."""
    plugins = registered_plugins()
    if parent is not None and parent.framework in plugins:
        with contextlib.suppress(AgentracerError):  # (its framework is not installed: the team's shape says so)
            plugins[parent.framework].instrument()
        return
    for plugin in plugins.values():
        wanted = getattr(plugin, "records_build_calls", None)
        if wanted is not None and wanted():
            with contextlib.suppress(AgentracerError):  # (a version it cannot hook: a team of it is refused later)
                plugin.instrument()


def _close_kept_runner(runner: asyncio.Runner) -> None:
    """Close a traced team object's event loop when the object goes. The collector may free it while another loop
    runs in this thread, where the loop cannot be run to shut down its generators, or at exit while a daemon thread
    runs it: it is then closed as it is, or left."""
    loop = runner.get_loop()
    if loop.is_running():
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        runner.close()
        return
    close_loop(loop)


def _check_task(task: Any) -> None:
    """A run records one task text: anything else is refused before the team is built."""
    if not isinstance(task, str):
        hint = " (pass its text, e.g. message.content)" if hasattr(task, "content") else ""
        raise AgentracerError(f"the task must be a text (str), not {type(task).__name__}{hint}")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _replaced_task(trajectory: Trajectory, parent: Trajectory) -> None:
    """A replay that replaced the task step (step 0, the task as the user gave it) ran on another task: that is
    its task."""
    first, recorded = (trajectory.steps[0] if trajectory.steps else None), parent.steps[0]
    if (first is not None and first.replaced and recorded.role == "user" and recorded.content == parent.task
            and isinstance(first.content, str)):
        trajectory.task = first.content


def _replay_plan(trajectory: Trajectory, step: int, action: Any, serve_tools: bool, strict: bool) -> ReplayPlan:
    plan = ReplayPlan(step=step, action=action, serve_tools=serve_tools, strict=strict)
    check_plan(trajectory, plan)
    if trajectory.task is None:
        raise ReplayError(f"trajectory {trajectory.id} has no task to replay")
    return plan


_TRACEBACK_MARKS = ("\nTraceback:", "\nTraceback (most recent call last)")


def error_summary(exc: BaseException, limit: int = 2000) -> str:
    """``Type: message`` of a team's exception, without the traceback text a framework folds into its message
    (AutoGen re-raises an agent's error with it) and with secrets redacted: the exception itself is re-raised whole."""
    message, name = str(_retried_error(exc) or exc), type(exc).__name__
    text = message if message.startswith(f"{name}: ") else f"{name}: {message}"  # (AutoGen's are ``Type: message``)
    cut = min((i for i in (text.find(mark) for mark in _TRACEBACK_MARKS) if i >= 0), default=len(text))
    text = Redactor().text(text[:cut].rstrip())  # (a 401 or a judge's message may quote the key: never kept or shown)
    return text if len(text) <= limit else text[:limit] + "…"


def _retried_error(exc: BaseException) -> str | None:
    """The last attempt's error of a retry library's give-up (tenacity's ``RetryError`` shows only a Future)."""
    attempt = getattr(exc, "last_attempt", None)
    try:
        inner = attempt.exception() if attempt is not None else None
    except Exception:  # an attempt that holds no error
        return None
    return f"{type(inner).__name__}: {inner}" if isinstance(inner, BaseException) else None


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def _answer_value(answer: Any) -> Any:
    """A team's answer as the outcome keeps it: JSON as it is, a pydantic model or a dataclass as its fields (a
    structured output's fields stay readable to Ω), anything else as its text."""
    if _jsonable(answer):
        return answer
    dump = getattr(answer, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:  # (not a pydantic model after all, or one that cannot dump): its text
            return str(answer)
    if dataclasses.is_dataclass(answer) and not isinstance(answer, type):
        try:
            return json.loads(json.dumps(dataclasses.asdict(answer), default=str))
        except (TypeError, ValueError):
            return str(answer)
    return str(answer)


def trace(target: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Trace a team factory or a team: ``@agentracer.trace`` or ``agentracer.trace(team_or_factory, ...)``.

    Keyword options: ``evaluator`` (Ω over the trajectory), ``store`` (a store or its path: append each run),
    ``raise_on_error``, ``name``. Other positional and keyword arguments are passed to the factory on every build.
    """
    if target is None:
        return lambda t: TracedTeam(t, *args, **kwargs)
    return TracedTeam(target, *args, **kwargs)
