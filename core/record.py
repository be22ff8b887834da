"""The recorder: the active run lives in a ContextVar; plugins append steps and route model calls here.

A plugin never decides replay on its own: it hands each model call to ``Run.call_model``/``acall_model``
with a function that makes the live call and a codec for its framework's responses, and the run decides
whether to serve the recording, substitute the replacement, or call live.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import Context, ContextVar
from typing import Any, Literal

from .errors import RecordedModelError, ReplayDivergence, ReplayError
from .redact import HASH_SCHEME, REPAIRED_KEY, Redactor, hash_scheme, mend_value, repaired_note
from .replay import (
    TOOL_RESULTS,
    Cassette,
    ReplayPlan,
    ResponseCodec,
    differs_only_in_ids_and_times,
    differs_only_in_schema_order,
    replaced_tool_result,
    request_diff,
)
from .schema import (
    STEP_KINDS,
    ModelCall,
    Step,
    StepKind,
    ToolCall,
    ToolResult,
    Trajectory,
    Usage,
    built,
    next_call_id,
)

_ACTIVE: ContextVar[Run | None] = ContextVar("agentracer_active_run", default=None)
_TOOL_OF: ContextVar[str | None] = ContextVar("agentracer_tool_of", default=None)  # whose tool is running here
INSIDE_TOOL_OF = "inside_tool_of"  # a step's metadata key: the agent whose tool made it (an agent the tool runs)
_TOOL_CALL: ContextVar[str | None] = ContextVar("agentracer_tool_call", default=None)  # which call of it, if known
_INVOCATION: ContextVar[object | None] = ContextVar("agentracer_invocation", default=None)  # see ``Run.invocation``
# set by a caller that pairs each run with the task it gives (``annotate``: a dataset row and its ground truth): a team
# that would run a task of its own instead is stopped before it runs (see ``Run.needs_given_task``)
NEEDS_GIVEN_TASK: ContextVar[bool] = ContextVar("agentracer_needs_given_task", default=False)
INSIDE_TOOL_CALL = "inside_tool_call"  # a step's metadata key: the id of the tool call that made it, if known
TOOL_SCOPES = "tool_scopes"  # a trajectory's metadata key: its steps made inside tools say so

ORDER_STALL_S = 5.0  # how long a replayed call waits for its recorded turn while no step comes
CallMode = Literal["live", "cassette", "replacement"]
ToolPlan = Literal["live", "served", "failed", "replaced"]
CallFields = dict[str, Any]  # a model call in flight: its ModelCall fields so far


def _usage(prompt_tokens: int = 0, completion_tokens: int = 0) -> Usage:
    return built(Usage, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens})


_NO_USAGE = _usage()


def _total_usage(calls: list[ModelCall]) -> Usage:
    if len(calls) == 1:  # the common case: one call made the step (usage is immutable: shared)
        return calls[0].usage
    if not calls:
        return _NO_USAGE
    return _usage(sum(c.usage.prompt_tokens for c in calls), sum(c.usage.completion_tokens for c in calls))


def _check_step_fields(agent: Any, kind: Any, role: Any, tool_calls: Sequence[Any], tool_results: Sequence[Any],
                       metadata: Any) -> None:
    """What pydantic would check of a step a plugin describes (the recorder builds steps unvalidated)."""
    if type(agent) is not str or type(role) is not str:
        raise TypeError(f"a step's agent and role must be strings, got {agent!r} and {role!r}")
    if kind not in STEP_KINDS:
        raise ValueError(f"unknown step kind {kind!r}; one of {sorted(STEP_KINDS)}")
    if (tool_calls and not all(type(c) is ToolCall for c in tool_calls)) or (
            tool_results and not all(type(r) is ToolResult for r in tool_results)):
        raise TypeError("a step's tool_calls and tool_results must be ToolCall and ToolResult objects")
    if metadata is not None and type(metadata) is not dict:
        raise TypeError(f"a step's metadata must be a dict, got {type(metadata).__name__}")


def _in_event_loop_thread() -> bool:
    """Whether this thread runs an event loop (a sync call made there cannot wait for another task's step)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _hash_scheme_of(cassette: Cassette | None) -> int:
    if cassette is not None:
        for call in cassette.trajectory.model_calls():
            if call.request_hash:
                return hash_scheme(call.request_hash)
    return HASH_SCHEME


_IN_PROGRESS: weakref.WeakSet[Run] = weakref.WeakSet()  # runs begun and not yet released


def runs_in_progress() -> int:
    """How many runs have begun and not yet ended (in every thread)."""
    return len(_IN_PROGRESS)


UNHOOKED = "unhooked"
"""The metadata field of a run that ``agentracer.uninstrument()`` cut short: it records nothing after that moment."""


def mark_runs_unhooked() -> int:
    """Mark every run in progress as cut short by ``uninstrument`` (``metadata["unhooked"]``: what it holds is the
    run up to then, not the whole run); how many there were."""
    runs = list(_IN_PROGRESS)
    for run in runs:
        trajectory = run._trajectory
        if trajectory is not None:
            trajectory.metadata[UNHOOKED] = (f"agentracer.uninstrument() ran during this run, after its first "
                                             f"{len(trajectory.steps)} step(s): later steps were not recorded")
    return len(runs)


current_run: Callable[[], Run | None] = _ACTIVE.get
"""The run being recorded in this context (thread or asyncio task), if any: the context variable's own ``get``,
which the hooks call on every framework call they wrap, without a Python frame of ours."""


class Run:
    """Recording (and, under a plan, replay) state of one team run."""

    def __init__(
        self,
        trajectory: Trajectory,
        *,
        plan: ReplayPlan | None = None,
        cassette: Cassette | None = None,
    ) -> None:
        if (plan is None) != (cassette is None):
            raise ValueError("a replay needs both a plan and a cassette")
        self._trajectory: Trajectory | None = trajectory
        self._steps = trajectory.steps  # (the hot paths' handle on it)
        self.plan = plan
        self.cassette = cassette
        self._lock = threading.RLock()
        self._step_added = threading.Condition(self._lock)  # a replay's calls wait on it for their recorded turn
        self._last_progress = time.monotonic()  # when a replay last added a step
        self._ended = False
        self._order_lost = False  # a call waited for its turn in vain: the others wait no more
        # A replay's place in its recording: the recorded indices its steps took, the first not yet taken, whether a
        # step came out of its turn, how many steps after the replaced one it made, the recorded step of each
        # agent's last tool result claimed (see ``_place``).
        self._placed: set[int] = set()
        self._position = 0
        self._reordered = False
        self._later = 0
        self._tool_result_steps: dict[str, int | None] = {}
        self._call_counts: dict[str, int] = {}
        self._tool_counts: dict[str, int] = {}
        self._pending: dict[str, list[CallFields]] = {}
        self._pending_any: list[CallFields] = []
        self._invocation_of: dict[str, object] = {}  # a waiting call's id -> the invocation it was made in, if any
        self._last_step_end: float | None = None
        self._redact = Redactor(scheme=_hash_scheme_of(cassette))  # a replay hashes requests as its recording did
        self._legacy: Redactor | None = None  # hashes as recordings made before parameter names were kept
        self._unsettled: list[CallFields] = []  # recorded calls whose request is not yet redacted and hashed
        self.team_built_for_task = False  # the team's factory was given this run's task (``TracedTeam`` says)
        self.needs_given_task = NEEDS_GIVEN_TASK.get()  # a plugin stops a team that runs a task of its own
        self._tools_taken: dict[str, set[int]] = {}  # agent -> numbers of its recorded tool results claimed
        self.divergence: ReplayError | None = None  # the replay's first own error (a divergence, mostly)
        self.plugin_state: dict[str, Any] = {}  # what a plugin keeps for one run (caches); never recorded
        self.stats = {"live": 0, "cassette": 0, "replacement": 0, "tools_served": 0}
        _IN_PROGRESS.add(self)

    @property
    def trajectory(self) -> Trajectory:
        """The trajectory this run records (``release`` lets go of it once the run has ended)."""
        trajectory = self._trajectory
        if trajectory is None:
            raise RuntimeError("this run was released after it ended: use the trajectory its team run returned")
        return trajectory

    # ------------------------------------------------------------------ context
    @contextlib.contextmanager
    def activate(self) -> Iterator[Run]:
        """Make this the active run in the current context (use inside worker threads too)."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def activate_in(self, context: Context) -> None:
        """Make this the active run in ``context``: a copied context that is dropped when the run is over."""
        context.run(_ACTIVE.set, self)

    @contextlib.contextmanager
    def tool_scope(self, agent: str, call_id: str | None = None) -> Iterator[None]:
        """Mark the running of one of ``agent``'s tools (answering the tool call ``call_id``, where the framework says):
        steps other agents make inside it (an agent the tool runs) are marked as the tool's, and the call's, so that a
        replay that does not run the tool copies exactly those (not those of a tool that ran beside it)."""
        self.trajectory.metadata[TOOL_SCOPES] = True
        token, call_token = _TOOL_OF.set(agent), _TOOL_CALL.set(call_id)
        try:
            yield
        finally:
            _TOOL_CALL.reset(call_token)
            _TOOL_OF.reset(token)

    @contextlib.contextmanager
    def invocation(self) -> Iterator[None]:
        """Mark one invocation of an agent (a MaAS operator's ``__call__``): the model calls made inside it go to the
        step added inside it. Without it an agent's calls go to its next step, so that of two invocations of one agent
        running at the same time, the first to add its step would take the calls of both."""
        token = _INVOCATION.set(object())
        try:
            yield
        finally:
            _INVOCATION.reset(token)

    @property
    def replaying(self) -> bool:
        return self.plan is not None

    @property
    def next_index(self) -> int:
        """The index the next recorded step will get: in a replay, the first step of the recording the replay has
        not made yet (a step that came before its turn holds its recorded index, see ``_place``)."""
        return len(self._steps) if self.plan is None else self._position

    # ------------------------------------------------------------------ steps
    def replacement_for_next_step(self) -> Any | None:
        """The plan's action when the next step is the replaced one (for plugins that substitute events)."""
        if self.plan is not None and self.next_index == self.plan.step:
            return self.plan.action
        return None

    def replacement_for_step_of(self, agent: str) -> Any | None:
        """The plan's action when the step ``agent`` adds next is the replaced one, by the place that step will take
        (``_place``): a step whose model calls a replay served goes to their recorded step, which need not be the next
        index where agents run at the same time (served calls return at once: a MaAS operator gathered with others
        that finished last in the recording finishes first)."""
        if self.plan is None:
            return None
        with self._lock:
            index, _ = self._placing(agent, False)
        return self.plan.action if index == self.plan.step else None

    def count_substitution(self) -> None:
        """Count the plan's action as used where a plugin put it into its framework's event (an operator's output, a
        published message, a tool's result) rather than into a model call's answer: ``replay_stats["replacement"]``."""
        with self._lock:
            self.stats["replacement"] += 1

    def add_step(
        self,
        agent: str,
        content: Any,
        *,
        role: str = "assistant",
        kind: StepKind = "message",
        tool_calls: Sequence[ToolCall] = (),
        tool_results: Sequence[ToolResult] = (),
        usage: Usage | None = None,
        metadata: dict[str, Any] | None = None,
        started_at: float | None = None,
    ) -> Step:
        """Append a step, attaching the model calls that produced it; check it against the recording."""
        _check_step_fields(agent, kind, role, tool_calls, tool_results, metadata)
        inside = _TOOL_OF.get()
        if inside is not None and inside != agent:
            call_id = _TOOL_CALL.get()
            metadata = {**(metadata or {}), INSIDE_TOOL_OF: inside, **({INSIDE_TOOL_CALL: call_id} if call_id else {})}
        now = time.time()
        with self._lock:
            index = len(self._steps) if self.plan is None else self._place(agent, bool(tool_results))
            waiting = self._take_waiting(agent)
            if self._pending_any:  # calls no step came from (a speaker's selection) go in the order they began
                waiting = sorted([*(waiting or ()), *self._pending_any], key=lambda call: call["started_at"])
                self._pending_any = []
            calls = self._model_calls(waiting, index) if waiting else []
            step = built(Step, {
                "index": index, "agent": agent, "role": role, "kind": kind, "content": self._redact(content),
                "tool_calls": self._values_redacted(tool_calls, "arguments") if tool_calls else [],
                "tool_results": self._values_redacted(tool_results, "content") if tool_results else [],
                "model_calls": calls,
                "started_at": started_at if started_at is not None else self._last_step_end, "ended_at": now,
                "usage": usage if usage is not None else _total_usage(calls), "replaced": False,
                "metadata": metadata if metadata is not None else {},
            })
            if self.plan is not None:
                self._check_against_recording(step)
            self._last_step_end = now
            self._steps.append(step)
            if self.plan is not None:
                self._progressed()
            return step

    def _values_redacted(self, items: Sequence[Any], field: str) -> list[Any]:
        """Tool calls (``arguments``) or tool results (``content``) with secrets out of that field, by value: a key
        handed to a tool is a key all the same, and the next request carries the field as text, whose redaction sees
        no field names (a replay serving a result must rebuild the recorded request)."""
        own = self._redact.own_values
        out = []
        for item in items:
            value = getattr(item, field)
            clean = own(value)
            out.append(item if clean is value else item.model_copy(update={field: clean}))
        return out

    def _place(self, agent: str, tool_result: bool) -> int:
        """The index a replay's next step of ``agent`` takes: where the recording has the step its model call (or
        its tool result) made, when that differs from the first step of the recording the replay has not made; a
        step the recording made after the replaced one is the replay's next such step. Such a step came out of its
        turn (a sync call on an event loop's thread cannot wait for it, a tool's result has none) and ``finish``
        puts it in its place; its content is checked there, and later calls check that each agent saw what it saw
        in the recording. Any other step takes the first index not taken, and is checked against it."""
        assert self.plan is not None
        index, out_of_turn = self._placing(agent, tool_result)
        if out_of_turn:
            self._reordered = True
        if index > self.plan.step:
            self._later += 1
        self._take(index)
        return index

    def _placing(self, agent: str, tool_result: bool) -> tuple[int, bool]:
        """The index ``_place`` gives the agent's next step now, and whether that is out of its turn (nothing is
        taken)."""
        assert self.plan is not None
        t, index = self.plan.step, self._position
        if index <= t:
            expected = self._recorded_index(agent, tool_result)
            if expected is not None and expected != index and expected not in self._placed:
                return (expected if expected <= t else t + 1 + self._later), True
        if index > t:
            return t + 1 + self._later, False  # (the first index not taken, once steps 0..t are made)
        return index, False

    def _recorded_index(self, agent: str, tool_result: bool) -> int | None:
        """The recorded step of the agent's last model call waiting for its step, else of its last tool result when
        this step is a tool result; None when the recording has neither."""
        assert self.cassette is not None
        waiting = self._waiting(agent)
        if waiting:
            if self.plan is not None and any(call.get("source") == "replacement" for call in waiting):
                return self.plan.step  # the step the action went into, whatever its agent called after it
            recorded = self.cassette.call(agent, waiting[-1]["call_index"])
            return recorded.step if recorded is not None else None
        return self._tool_result_steps.get(agent) if tool_result else None

    def _waiting(self, agent: str) -> list[CallFields]:
        """The agent's calls waiting for its next step: inside an ``invocation``, those made in it (or in none)."""
        waiting = self._pending.get(agent)
        invocation = _INVOCATION.get()
        if not waiting or invocation is None or not self._invocation_of:
            return waiting or []
        owner = self._invocation_of.get
        return [call for call in waiting if owner(call["id"], invocation) is invocation]

    def _take_waiting(self, agent: str) -> list[CallFields] | None:
        """Take the agent's calls its step now added gets (``_waiting``)."""
        if not self._invocation_of:
            return self._pending.pop(agent, None)
        waiting = self._waiting(agent)
        if waiting:
            taken = {id(call) for call in waiting}
            rest = [call for call in self._pending[agent] if id(call) not in taken]
            if rest:
                self._pending[agent] = rest
            else:
                del self._pending[agent]
            for call in waiting:
                self._invocation_of.pop(call["id"], None)
        return waiting or None

    def _take(self, index: int) -> None:
        """Note the recorded index ``index`` as made by the replay."""
        self._placed.add(index)
        while self._position in self._placed:
            self._position += 1

    @staticmethod
    def _model_calls(waiting: list[CallFields], step: int | None) -> list[ModelCall]:
        """The calls in flight that ``waiting`` lists, as the ModelCalls of ``step``."""
        calls = []
        for fields in waiting:
            fields["step"] = step
            if fields["usage"] is None:
                fields["usage"] = _NO_USAGE
            calls.append(built(ModelCall, fields))
        return calls

    def _check_against_recording(self, step: Step) -> None:
        assert self.plan is not None and self.cassette is not None
        if step.index == self.plan.step:
            agent = self.cassette.trajectory.steps[step.index].agent
            if self.plan.strict and step.agent != agent:
                raise self._diverge(step=step.index, agent=step.agent, out_of_turn=True,
                                    reason=f"the replaced step is {agent!r}'s, and this agent's step came first")
            self._check_action_taken(step)
            step.replaced = True
            action = self.plan.action
            if isinstance(action, dict) and TOOL_RESULTS in action:  # which of its results the action replaced
                step.metadata = {**step.metadata, "replaced_tool_results": [
                    r.call_id for r in step.tool_results if replaced_tool_result(action, r)[0]]}
            return
        if step.index > self.plan.step or not self.plan.strict:
            return
        recorded = self.cassette.trajectory.steps[step.index]
        if recorded.agent != step.agent:
            raise self._diverge(
                step=step.index, agent=step.agent, out_of_turn=True,
                reason=f"the recording has agent {recorded.agent!r} at this step",
            )
        if recorded.content != step.content and not differs_only_in_ids_and_times(recorded.content, step.content) and (
                self._redact(recorded.content) != step.content):  # (a recording made before secret keys were redacted)
            raise self._diverge(
                step=step.index, agent=step.agent, reason="the step's content differs from the recording",
                diff=request_diff(recorded.content, step.content),
            )

    def _check_action_taken(self, step: Step) -> None:
        """The step at t must hold the action: a live call of its agent after the replaced one means the framework
        asked its model again (an answer it could not parse: MetaGPT's action nodes retry) and the step is that
        live answer, not the action. (A served call after it is one the recording made after the step's answer,
        as a role's choice of its next action.)"""
        calls = step.model_calls
        replaced = next((i for i, call in enumerate(calls) if call.source == "replacement"), None)
        if replaced is None:
            return
        again = [call for call in calls[replaced + 1:]
                 if call.agent == step.agent and call.produces_step and call.source == "live"]
        if again:
            key = self.cassette.replaced_call(step.index) if self.cassette is not None else None
            recorded = self.cassette.call(*key) if self.cassette is not None and key is not None else None
            shape = f"; the recorded answer began {str(recorded.response)[:120]!r}" if recorded is not None else ""
            raise self._failed_replay(ReplayError(
                f"the action for step {step.index} was not taken: {step.agent!r} asked its model again after it "
                f"(call #{again[0].call_index}, live), as a framework does with an answer it cannot parse; write "
                f"the action in the form of the answer it replaces{shape}"))

    def _diverge(self, *, out_of_turn: bool = False, **details: Any) -> ReplayDivergence:
        """Build a divergence and remember it (see ``_failed_replay``). ``out_of_turn``: what differs may be the order
        concurrent agents took their turns in, which a recording before schema 1.1 cannot say: a note says so."""
        if out_of_turn and self.cassette is not None and all(
                c.suspended is None for c in self.cassette.trajectory.model_calls()):
            details["reason"] += (" (the recording is older than schema 1.1 and does not say whether its model calls "
                                  "let the team's other tasks run: they are served as a network client's are, with a "
                                  "wait; one recorded with a scripted client that never waits can replay out of turn: "
                                  "record it again)")
        exc = ReplayDivergence(**details)
        self._failed_replay(exc)
        return exc

    def _failed_replay(self, exc: ReplayError) -> ReplayError:
        """Remember the first error of the replay itself, so that a framework that wraps or swallows the exceptions
        of a model call cannot hide it: the run raises it when it ends."""
        if self.divergence is None:
            self.divergence = exc
            with self._step_added:  # calls waiting for their turn wait no more
                self._step_added.notify_all()
        return exc

    def add_failed_call_steps(self, agent: str | None = None) -> None:
        """The team raised: each agent whose model call raised with no step after it gets an ``event`` step holding
        its waiting calls, so the failure shows at its agent and step (a tracer, ``show``, a replay that replaces
        that call) rather than among the calls no step followed. Given ``agent``: that agent's only, where the
        framework caught its failed turn and goes on (the step keeps the failure's place in the order of steps: a
        replay serves the failed call in that turn)."""
        with self._lock:
            failed = {name: next(c["error"] for c in reversed(calls) if c["error"])
                      for name, calls in self._pending.items()
                      if (agent is None or name == agent) and any(c["error"] for c in calls)}
        for name, error in failed.items():
            self.add_step(name, f"(its model call failed: {error})", kind="event",
                          metadata={"failed_model_call": True})

    def next_call_index(self, agent: str) -> int:
        """The index ``agent``'s next model call gets (an agent's calls are numbered from 0 as they begin)."""
        with self._lock:
            return self._call_counts.get(agent, 0)

    def add_failed_turn_step(self, agent: str, error: str) -> None:
        """A turn of ``agent`` raised outside its model calls (its action failed on a good answer, or before asking):
        an ``event`` step holds the calls it made, so the failure shows at its agent and step rather than among the
        calls no step followed. A turn whose model call raised is left to ``add_failed_call_steps``."""
        with self._lock:
            if any(call["error"] for call in self._waiting(agent)):
                return
        self.add_step(agent, f"(its turn failed: {error})", kind="event", metadata={"failed_turn": True})

    # ------------------------------------------------------------------ model calls
    # A call in flight is a dict of its ModelCall fields; it becomes a ModelCall when its step is known.
    def _begin_call(self, agent: str, request: dict[str, Any], produces_step: bool,
                    model: str | None) -> tuple[CallFields, CallMode]:
        if type(agent) is not str or type(request) is not dict or not (model is None or type(model) is str):
            raise TypeError("a model call needs an agent name, a request dict and a model name (or None)")
        if self._ended and self.plan is not None:
            raise ReplayError(
                f"{agent!r} asked its model after this replay ended (it was cancelled, or its team left tasks "
                f"running): a replay's leftover work makes no model call")
        with self._lock:
            index = self._call_counts.get(agent, 0)
            self._call_counts[agent] = index + 1
            call = {"id": next_call_id(), "agent": agent, "call_index": index, "step": None,
                    "produces_step": produces_step, "model": model, "request": request, "response": None,
                    "request_hash": "", "latency_s": 0.0, "usage": None, "started_at": time.time(),
                    "source": "live", "error": None, "suspended": None}
            if self.plan is None:  # a recording: requests are redacted and hashed together when it finishes
                self._unsettled.append(call)
                return call, "live"
            call["request"], call["request_hash"] = self._redact.request(request)
            return call, self._decide(call)

    def _asks_as_recorded(self, call: CallFields, recorded: ModelCall) -> bool:
        """Whether a request whose hash is not the recorded one still asks what the recording holds: it differs only
        in ids and times, or in the order of its tools' schemas' ``enum`` and ``required`` lists (another process
        lists a set's members in another order); or, redacted as recordings made before JSON schemas' parameter names
        were kept were (a tool's parameter named "password": its whole schema redacted), it hashes as recorded or
        differs only in that order. Asked on a mismatch only: the hashes stay as they are."""
        if differs_only_in_ids_and_times(recorded.request, call["request"]) or differs_only_in_schema_order(
                recorded.request, call["request"]):
            return True
        if self._legacy is None:  # (one per run: its conversations are hashed on from call to call)
            self._legacy = Redactor(self._redact.secrets, scheme=hash_scheme(recorded.request_hash),
                                    parameter_names_secret=True)
        legacy, hashed = self._legacy.request(call["request"])
        return hashed == recorded.request_hash or differs_only_in_schema_order(recorded.request, legacy)

    def _decide(self, call: CallFields) -> CallMode:
        if self.plan is None or self.cassette is None:
            return "live"
        t, agent, index = self.plan.step, call["agent"], call["call_index"]
        recorded = self.cassette.call(agent, index)
        if recorded is not None and recorded.step is not None and recorded.step <= t:
            replaces = recorded.step == t and call["produces_step"] and self.cassette.replaced_call(t) == (agent, index)
            if not replaces and self.plan.strict and recorded.request_hash != call["request_hash"] and (
                    not self._asks_as_recorded(call, recorded)):
                diff = request_diff(recorded.request, call["request"])
                reason = (f"model call #{index} of this agent asks something the recording never saw "
                          f"(recorded for step {recorded.step})") if diff else (
                    f"model call #{index} of this agent (recorded for step {recorded.step}) asks what the recording "
                    f"holds, but its hash is not the recorded request_hash: the recording was edited, or hashed "
                    f"another way (replay with strict=False to go on)")
                # the call's own step when the recording too asked it before the replay's next step was made
                # (concurrent agents ask ahead of the others' steps); else it asks out of turn, at the next step
                made = self.cassette.trajectory.steps[self.next_index].ended_at if self.next_index < t else None
                early = made is not None and recorded.started_at is not None and recorded.started_at < made
                step = recorded.step if early and self.next_index < recorded.step else self.next_index
                raise self._diverge(step=step, agent=agent, reason=reason, diff=diff, out_of_turn=bool(diff))
            return "replacement" if replaces else "cassette"
        if self.next_index < t and (recorded is None or recorded.step is None or not call["produces_step"]):
            raise self._diverge(
                step=self.next_index, agent=agent,
                reason=f"the recording has no model call #{index} for this agent before step {t}",
            )
        return "live"  # (a call the recording made after step t waits for it: see ``_turn``)

    # ------------------------------------------------------------------ recorded order
    def _progressed(self) -> None:
        """A replay added a step: wake the calls waiting for their turn (the lock is held)."""
        self._last_progress = time.monotonic()
        self._step_added.notify_all()

    def _turn(self, call: CallFields, mode: CallMode) -> int:
        """How far into the recording a replay must be (``next_index``) before this call returns: a served call that
        produced recorded step i, i (the steps before it are made); the replacement, t; a live call the recording made
        for a step after t, t + 1 (the replaced step is made). Served calls return at once, so the agents of a team
        that runs them concurrently (Workforce workers, MetaGPT roles) would otherwise add their steps in whatever order their calls come back,
        not the recorded one; a sequential team's calls are always on time. 0: no wait."""
        plan = self.plan
        if plan is None or not call["produces_step"]:
            return 0
        if mode == "replacement":
            return plan.step
        assert self.cassette is not None
        recorded = self.cassette.call(call["agent"], call["call_index"])
        # (a call that did not make its recorded step waits for none: a MaAS operator's call, made before the steps
        # of the operators it runs inside, would wait for a step that comes only after it)
        if recorded is None or recorded.step is None or not recorded.produces_step:
            return 0
        if mode == "cassette":
            return recorded.step
        if self.stats["replacement"] and self._position <= plan.step and (
                call["agent"] == self.cassette.trajectory.steps[plan.step].agent):
            return 0  # step t's agent asking again before its step: the action was not taken (``_check_action_taken``)
        return plan.step + 1 if recorded.step > plan.step else 0

    def _stalled(self, since: float) -> bool:
        """Whether a call waiting since ``since`` should stop waiting: the run ended or failed, or no step came for
        ``ORDER_STALL_S``; then the recorded order is lost and no call waits any more (N waiters, one stall)."""
        if self._ended or self._order_lost or self.divergence is not None:
            return True
        if time.monotonic() - max(since, self._last_progress) >= ORDER_STALL_S:
            self._order_lost = True
            return True
        return False

    def _block_until(self, steps: int) -> None:
        """Block this thread until the replay has made the recording's first ``steps`` steps, or no step has come for
        ``ORDER_STALL_S``."""
        since = time.monotonic()
        with self._step_added:
            while self._position < steps and not self._stalled(since):
                self._step_added.wait(max(since, self._last_progress) + ORDER_STALL_S - time.monotonic())

    async def reach(self, index: int) -> None:
        """Wait until this replay has made the recording's steps before ``index`` (its turn for recorded step
        ``index``), or waiting has stopped: the replay diverged or ended, or no step came for ``ORDER_STALL_S``. For a
        plugin whose framework makes a step without a model call or tool result the replay could hold back."""
        await self._poll_until(index)

    async def _poll_until(self, steps: int) -> None:
        """``_block_until`` in an event loop: poll, letting the other tasks add their steps."""
        since = time.monotonic()
        while self._position < steps and not self._stalled(since):
            await asyncio.sleep(0.001)

    def _wait_turn(self, call: CallFields, mode: CallMode) -> None:
        """Block this thread until the call's turn (``_turn``); a call made in a thread that runs an event loop
        does not wait (it would block the steps it waits for)."""
        target = self._turn(call, mode)
        if self._position < target and not _in_event_loop_thread():  # (else its step comes early: see ``_place``)
            self._block_until(target)
            self._check_turn(call, mode, target)

    async def _await_turn(self, call: CallFields, mode: CallMode) -> None:
        """``_wait_turn`` for a call made in an event loop."""
        target = self._turn(call, mode)
        if self._position < target:
            await self._poll_until(target)
            self._check_turn(call, mode, target)

    def _check_turn(self, call: CallFields, mode: CallMode, target: int) -> None:
        """A live call the recording made after step t that waited for it in vain does not run."""
        if mode == "live" and self._position < target:
            assert self.plan is not None
            raise self._diverge(
                step=self.next_index, agent=call["agent"],
                reason=(f"model call #{call['call_index']} of this agent was recorded after step {self.plan.step}, "
                        f"and no step came for {ORDER_STALL_S:g} s while it waited for the replay to get there"),
            )

    def _served(self, call: CallFields, mode: CallMode, codec: ResponseCodec) -> Any:
        assert self.cassette is not None and self.plan is not None
        recorded = self.cassette.call(call["agent"], call["call_index"])
        call["suspended"] = recorded.suspended if recorded is not None else None  # (served as it was recorded)
        if mode == "cassette":
            assert recorded is not None
            if recorded.error:
                call["error"] = recorded.error
                raise RecordedModelError(f"recorded model call failed: {recorded.error}")
            call.update(response=recorded.response, usage=recorded.usage, model=recorded.model)
            try:
                return codec.decode(recorded.response)
            except Exception as exc:  # a recording edited or damaged by hand: not the team's error
                raise self._failed_replay(ReplayError(
                    f"the recorded response of model call #{recorded.call_index} of {recorded.agent!r} (step "
                    f"{recorded.step}) cannot be served: {type(exc).__name__}: {str(exc)[:300]}")) from exc
        response = codec.replacement(self.plan.action, recorded)
        call["response"] = self._redact.own(codec.encode(response))  # (the action may quote a key: never stored)
        return response

    def _finish_call(self, call: CallFields, mode: CallMode, started: float) -> None:
        call["source"] = mode
        call["latency_s"] = time.perf_counter() - started
        with self._lock:
            self.stats[mode] += 1
            if call["produces_step"]:
                self._pending.setdefault(call["agent"], []).append(call)
                invocation = _INVOCATION.get()
                if invocation is not None:
                    self._invocation_of[call["id"]] = invocation
            else:
                self._pending_any.append(call)

    def call_model(
        self,
        agent: str,
        request: dict[str, Any],
        live: Callable[[], Any],
        codec: ResponseCodec,
        *,
        produces_step: bool = True,
        model: str | None = None,
        usage_of: Callable[[Any], Usage | None] | None = None,
    ) -> Any:
        """Route one synchronous model call: serve it, substitute the replacement, or call ``live``.

        ``request`` must be a fresh JSON-like dict built for this call (it is stored, not copied).
        """
        call, mode = self._begin_call(agent, request, produces_step, model)
        if self.plan is not None:
            self._wait_turn(call, mode)
        started = time.perf_counter()
        if mode != "live":
            return self._serve_call(call, mode, codec, started)
        call["suspended"] = False  # (a sync call never lets its caller's event loop run other tasks)
        try:
            response = live()
        except BaseException as exc:
            self._fail_call(call, started, exc)
            raise
        return self._close_live_call(call, response, codec, usage_of, started)

    async def acall_model(
        self,
        agent: str,
        request: dict[str, Any],
        live: Callable[[], Awaitable[Any]],
        codec: ResponseCodec,
        *,
        produces_step: bool = True,
        model: str | None = None,
        usage_of: Callable[[Any], Usage | None] | None = None,
    ) -> Any:
        """Route one asynchronous model call: serve it, substitute the replacement, or await ``live``."""
        call, mode = self._begin_call(agent, request, produces_step, model)
        if self.plan is not None:
            await self._await_turn(call, mode)
        started = time.perf_counter()
        if mode != "live":
            if self._suspends(call):  # as the recorded call did: the team's other tasks go on meanwhile
                await asyncio.sleep(0)
            return self._serve_call(call, mode, codec, started)
        went_on: list[bool] = []  # the loop runs this callback only if the call gives it control
        asyncio.get_running_loop().call_soon(went_on.append, True)
        try:
            response = await live()
        except BaseException as exc:
            call["suspended"] = bool(went_on)
            self._fail_call(call, started, exc)
            raise
        call["suspended"] = bool(went_on)
        return self._close_live_call(call, response, codec, usage_of, started)

    def _suspends(self, call: CallFields) -> bool:
        """Whether a served (or replaced) call lets the event loop run other tasks, as its recording did: a
        MetaGPT role whose answer came back at once would publish before its siblings of one round had read
        theirs, and an agent run as a tool whose recorded client never waited would let its sibling start
        before it ended. A recording that does not say (before schema 1.1): as network clients do."""
        assert self.cassette is not None
        recorded = self.cassette.call(call["agent"], call["call_index"])
        return recorded is None or recorded.suspended is not False

    def _serve_call(self, call: CallFields, mode: CallMode, codec: ResponseCodec, started: float) -> Any:
        try:
            return self._served(call, mode, codec)
        finally:
            self._finish_call(call, mode, started)

    def _fail_call(self, call: CallFields, started: float, exc: BaseException) -> None:
        call["error"] = self._redact.text(f"{type(exc).__name__}: {exc}")  # (a 401 may echo the key it was sent)
        self._finish_call(call, "live", started)

    def _close_live_call(self, call: CallFields, response: Any, codec: ResponseCodec, usage_of: Any,
                         started: float) -> Any:
        screened = getattr(codec, "encode_screened", None)  # a codec that knows which of its values are text
        data = screened(response, self._redact.text) if screened is not None else None
        call["response"] = data if data is not None else self._redact.own(codec.encode(response))
        if usage_of is not None:
            call["usage"] = usage_of(response)
        self._finish_call(call, "live", started)
        return response

    # ------------------------------------------------------------------ tools
    def tool_plan(self, agent: str, call_id: str | None = None) -> tuple[ToolPlan, Any]:
        """Claim the agent's next tool-result slot and say what its tool does now: ``("live", None)`` run it;
        ``("served", result)`` do not, return its recorded result (``serve_tools``, before the replaced step);
        ``("failed", text)`` the same for a recorded result that was an error: report ``text`` as the tool's error
        (raise it where the framework turns a tool's exception into its error result);
        ``("replaced", action)`` do not, its result is the plan's action.

        A tool that does not run skips whatever the recording has between its call and its result (the steps of an
        agent the tool runs itself, as OWL's browser toolkit does): those steps are copied from the recording here,
        their model calls counted as served, so the replay's later steps line up with the recording's. A result
        that is not run comes in its recorded turn, as a served model call does (a thread that runs an event loop
        does not wait: call ``atool_plan`` there)."""
        how, value, result_step = self._claim_tool(agent, call_id)
        if how != "live":
            waits = not _in_event_loop_thread()
            for index in self._steps_made_by_tool(agent, result_step, call_id):
                if waits:
                    self._block_until(index)
                self._copy_recorded_step(index)
            if waits:
                self._block_until(result_step)
            self._count_given_tool(how)
        return how, value

    async def atool_plan(self, agent: str, call_id: str | None = None) -> tuple[ToolPlan, Any]:
        """``tool_plan`` for a tool run in an event loop: a result that is not run waits for its turn there."""
        how, value, result_step = self._claim_tool(agent, call_id)
        if how != "live":
            for index in self._steps_made_by_tool(agent, result_step, call_id):
                await self._poll_until(index)
                self._copy_recorded_step(index)
            await self._poll_until(result_step)
            self._count_given_tool(how)
        return how, value

    def _claim_tool(self, agent: str, call_id: str | None = None) -> tuple[ToolPlan, Any, int]:
        """What the agent's next tool does (see ``tool_plan``) and, for a result not run, its recorded step. A tool
        that says which call it answers (``call_id``) gets that call's recorded result: parallel tools reach the hook in
        an order of their own (an agent run as a tool streams, and comes before a plain tool listed ahead of it)."""
        with self._lock:
            if self.plan is None or self.cassette is None:
                return "live", None, 0
            taken = self._tools_taken.setdefault(agent, set())
            index = self.cassette.tool_result_number(agent, call_id, taken) if call_id else None
            if index is None:
                index = self._tool_counts.get(agent, 0)
                while index in taken:
                    index += 1
                self._tool_counts[agent] = index + 1
            taken.add(index)
            found = self.cassette.tool_result(agent, index)
            result_step = found[0] if found is not None else self.next_index
            self._tool_result_steps[agent] = found[0] if found is not None else None
            if result_step == self.plan.step:
                replaced, given = replaced_tool_result(self.plan.action, found[1] if found is not None else None)
                if replaced:
                    return "replaced", given, result_step
            # served before t when asked, and always where the recording's own replay put a result in place of its
            # tool (a replay of a replay: running the tool would give what that replay replaced)
            if found is not None and found[0] <= self.plan.step and (  # (at t: one left alone)
                    self.plan.serve_tools or (found[0] < self.plan.step and self.cassette.trajectory.steps[found[0]].replaced)):
                return ("failed" if found[1].is_error else "served"), found[1].content, result_step
            return "live", None, 0

    def _count_given_tool(self, how: ToolPlan) -> None:
        if how == "replaced":
            self.count_substitution()
        else:
            with self._lock:
                self.stats["tools_served"] += 1

    def _steps_made_by_tool(self, agent: str, result_step: int, call_id: str | None = None) -> list[int]:
        """The recorded steps the agent's tool made, which a replay that does not run it copies: in a recording whose
        tools mark their steps, the marked ones between the agent's step that called it and its result (a
        concurrent agent's steps in between are its own), only those of the call ``call_id`` where the steps name
        their call (parallel tools: the others run, or are copied, themselves); in an older one, every step from
        the replay's place up to the tool's result when all are other agents'."""
        assert self.cassette is not None
        recording = self.cassette.trajectory
        steps = recording.steps
        if recording.metadata.get(TOOL_SCOPES):
            caller = next((i for i in range(min(result_step, len(steps)) - 1, -1, -1) if steps[i].agent == agent), -1)
            span = range(caller + 1, result_step)
            made = [i for i in span if steps[i].metadata.get(INSIDE_TOOL_OF) == agent]
            if call_id and any(INSIDE_TOOL_CALL in steps[i].metadata for i in made):
                made = [i for i in made if steps[i].metadata.get(INSIDE_TOOL_CALL) == call_id]
            # and what the tools of the agents it ran made (an agent run as a tool that runs another as its tool)
            runners, found = {steps[i].agent for i in made} - {agent}, set(made)
            while runners:
                nested = [i for i in span if i not in found and steps[i].metadata.get(INSIDE_TOOL_OF) in runners]
                found.update(nested)
                runners = {steps[i].agent for i in nested} - {agent}
            return sorted(found)
        start = self.next_index
        if result_step >= start and all(s.agent != agent for s in steps[start:result_step]):
            return list(range(start, result_step))
        return []

    def _copy_recorded_step(self, index: int) -> None:
        """Append a copy of recorded step ``index`` (its model calls as served) in its place, and move the call and
        tool-result counters of its agent past it."""
        assert self.cassette is not None
        with self._lock:
            if index in self._placed:
                return
            recorded = self.cassette.trajectory.steps[index]
            calls = [call.model_copy(update={"id": next_call_id(), "source": "cassette"}, deep=True)
                     for call in recorded.model_calls]
            for call in calls:
                self._call_counts[call.agent] = max(self._call_counts.get(call.agent, 0), call.call_index + 1)
            if recorded.tool_results:
                self._tool_counts[recorded.agent] = self._tool_counts.get(recorded.agent, 0) + len(
                    recorded.tool_results)
                taken = self._tools_taken.setdefault(recorded.agent, set())
                for result in recorded.tool_results:  # (a parallel tool's claim by its call id skips them)
                    number = (self.cassette.tool_result_number(recorded.agent, result.call_id, taken)
                              if result.call_id else None)
                    if number is not None:
                        taken.add(number)
            self.stats["cassette"] += len(calls)
            if index != self._position:
                self._reordered = True
            self._take(index)
            self._steps.append(recorded.model_copy(update={"model_calls": calls, "replaced": False}, deep=True))
            self._last_step_end = time.time()
            self._progressed()

    # ------------------------------------------------------------------ end
    def _check_prefix_made(self) -> None:
        """A replay some of whose steps came early must have made every step before theirs (the lock is held)."""
        assert self.plan is not None and self.cassette is not None
        missing = self._position
        if missing <= self.plan.step and self.divergence is None:
            early = sorted(i for i in self._placed if i > missing)
            self._diverge(step=missing, agent=self.cassette.trajectory.steps[missing].agent,
                          reason=f"the replay never made this step of the recording, and made later ones ({early}) "
                                 f"before their turn")

    def _redact_run_fields(self) -> None:
        trajectory, redact = self.trajectory, self._redact
        if trajectory.task is not None:
            trajectory.task = redact(trajectory.task)
        for agent in trajectory.agents:  # (what the framework was told of it: a prompt or description may quote a key)
            if agent.system_prompt:
                agent.system_prompt = redact(agent.system_prompt)
            if agent.description:
                agent.description = redact(agent.description)
            if agent.model:
                agent.model = redact(agent.model)
        clean: set[tuple[Any, ...]] = set()  # (most steps' notes are alike, {"type": "TextMessage"}: checked once)
        for step in trajectory.steps:  # (a plugin's notes on a step: a model's thought may quote a key)
            notes = step.metadata
            if not notes:
                continue
            try:
                alike: tuple[Any, ...] | None = tuple(notes.items())
                if alike in clean:
                    continue
            except TypeError:  # (a note that is a list or a dict)
                alike = None
            step.metadata = redact.own(notes)
            if alike is not None and step.metadata is notes:
                clean.add(alike)
        outcome = trajectory.outcome
        outcome.answer = redact(outcome.answer)
        if outcome.error:
            outcome.error = redact(outcome.error)
        if outcome.feedback:  # (a plugin's: an evaluator's is redacted as Ω's result is applied)
            outcome.feedback = redact(outcome.feedback)
        if outcome.stop_reason:
            outcome.stop_reason = redact(outcome.stop_reason)
        if trajectory.metadata:  # the caller's own fields (run(metadata=...)): secret keys and key-shaped values
            trajectory.metadata = redact(trajectory.metadata)
        if trajectory.replay is not None and trajectory.replay.action is not None:
            trajectory.replay.action = redact(trajectory.replay.action)  # (the team got it whole; the record does not)

    def _settle_requests(self) -> None:
        """Redact and hash the recorded requests in one pass: a conversation's messages repeat in every request,
        and one pass over them all costs far less than one per call in the middle of the framework's work.
        The calls' dicts are their ModelCalls' fields, so the steps see the result."""
        settle = self._redact.request
        for call in self._unsettled:
            call["request"], call["request_hash"] = settle(call["request"])
        self._unsettled = []

    def finish(self) -> Trajectory:
        """Attach calls no step followed, redact and hash the recorded requests, write replay statistics; return
        the trajectory (a recording is only complete, and free of secrets, once this has run)."""
        with self._lock:
            self._ended = True
            self._step_added.notify_all()
            if self._reordered:  # steps that came out of their turn go to their recorded places
                self._steps.sort(key=lambda step: step.index)
                self._check_prefix_made()
            leftover = self._model_calls([fields for calls in [*self._pending.values(), self._pending_any]
                                          for fields in calls], None)
            self._pending.clear()
            self._invocation_of.clear()
            self._pending_any = []
            self.trajectory.unattached_calls.extend(leftover)
            self._settle_requests()
            self._redact_run_fields()
            # the ground truth is kept whole, not redacted: its broken characters are mended here
            self.trajectory.ground_truth, broken = mend_value(self.trajectory.ground_truth)
            if self._redact.mended or broken:  # (the team saw them; no store could hold them)
                self.trajectory.metadata[REPAIRED_KEY] = repaired_note(self._redact.mended + broken)
            if self.plan is not None:
                self.trajectory.metadata["replay_stats"] = dict(self.stats)
            return self.trajectory

    def release(self) -> None:
        """Let go of everything the ended run holds: its trajectory, the recording it replayed, its caches.

        A framework's tasks copy the context the run was active in, and frameworks leave those tasks in reference
        cycles that only the garbage collector frees (AutoGen does, every run): a run they hold would hold its whole
        trajectory until then. Released, the trajectory goes as soon as its user drops it, and the collector has
        that much less to walk and promote. The run records nothing more afterwards."""
        _IN_PROGRESS.discard(self)
        with self._lock:
            self._ended = True
            self._step_added.notify_all()
            self._trajectory = None
            self._steps = []
            self.cassette = None
            self._redact.clear()  # (its caches hold every request's messages)
            self._legacy = None
            self._unsettled = []
            self._pending.clear()
            self._invocation_of.clear()
            self._pending_any = []
            self.plugin_state.clear()
