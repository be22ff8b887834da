"""Running each CAMEL team shape under an active run: a ChatAgent, a RolePlaying society, a Workforce."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import warnings
from collections.abc import Awaitable, Iterator
from typing import Any

from agentracer import ReplayError, Run, UsageError
from agentracer.errors import OwnTaskError

from . import _context
from .codec import text
from .naming import stabilize_node_ids
from .options import CamelOptions, Mode
from .streams import streaming_agent

TASK_AUTHORS = ("user", "human", "task")


def task_author(agent_names: list[str]) -> str:
    """The name the task's own step is recorded under: ``user`` unless an agent already has that name."""
    return next((name for name in TASK_AUTHORS if name not in agent_names), "task input")


def prefers_async(obj: Any, sync_name: str, async_name: str, mode: Mode) -> bool:
    """Whether to call ``async_name``: yes unless a subclass overrides ``sync_name`` below it."""
    if mode != "auto":
        return mode == "async"
    mro = type(obj).__mro__
    sync_owner = next((c for c in mro if sync_name in vars(c)), None)
    async_owner = next((c for c in mro if async_name in vars(c)), None)
    if async_owner is None:
        return False
    return sync_owner is None or issubclass(async_owner, sync_owner)


def call(obj: Any, sync_name: str, async_name: str, *args: Any, mode: Mode) -> Awaitable[Any]:
    """The async method's coroutine, or the sync method in a worker thread that carries this context.

    Returned, not awaited here: CAMEL inspects the whole call stack on every agent step, so every frame
    between the caller and the agent costs time on each step.
    """
    if prefers_async(obj, sync_name, async_name, mode):
        return getattr(obj, async_name)(*args)
    return asyncio.to_thread(_read_whole, getattr(obj, sync_name), *args)


def _read_whole(method: Any, *args: Any) -> Any:
    """``method(*args)``; a streaming agent's response read to its end here, in the worker thread (a
    ``StreamingChatAgentResponse`` runs its step as it is read)."""
    from camel.agents.chat_agent import StreamingChatAgentResponse

    response = method(*args)
    if isinstance(response, StreamingChatAgentResponse):
        for _ in response:
            pass
    return response


async def final_response(response: Any) -> Any:
    """A step's response; an async streaming agent's, read to its end (``AsyncStreamingChatAgentResponse``
    is awaited for its final response)."""
    from camel.agents.chat_agent import AsyncStreamingChatAgentResponse

    if isinstance(response, AsyncStreamingChatAgentResponse):
        return await response
    return response


def _task_text(run: Run, task: str) -> str:
    """The task, or the replay's action when the task's step is the replaced one."""
    action = run.replacement_for_next_step()
    if action is None:
        return text(task)
    if not isinstance(action, str):
        raise ReplayError(f"step {run.next_index} is the task: its replacement must be a text")
    run.count_substitution()
    return action


@contextlib.contextmanager
def _names(names: dict[int, str]) -> Iterator[None]:
    """The names the plugin gave the team's agents, for the hooks to read while the team runs."""
    token = _context.NAMES.set(names)
    try:
        yield
    finally:
        _context.NAMES.reset(token)
        _context.forget_nested(names)


def _last_message(run: Run, agent: str) -> str | None:
    """The text of the agent's last message step: what a streaming agent answered, whose reply holds only its last
    part when the parts are increments (CAMEL's default ``stream_accumulate=False``)."""
    for step in reversed(run.trajectory.steps):
        if step.agent == agent and step.kind == "message" and isinstance(step.content, str):
            return step.content
    return None


def _first_text(response: Any) -> str | None:
    msgs = getattr(response, "msgs", None) or []
    return text(msgs[0].content) if msgs else None


async def run_chat_agent(agent: Any, task: str, run: Run, options: CamelOptions, names: dict[int, str],
                         author: str) -> Any:
    """One step of the agent on the task (its own tool loop included); the task is step 0."""
    message = _task_text(run, task)
    run.add_step(author, message, role="user")
    with _names(names):
        response = await final_response(await call(agent, "step", "astep", message, mode=options.mode))
    if response.terminated:
        run.trajectory.outcome.stop_reason = "terminated: " + ", ".join(
            map(str, response.info.get("termination_reasons", []))
        )
        run.trajectory.outcome.success = False
    if streaming_agent(agent) and id(agent) in names:  # its reply may hold only the last increment
        return _last_message(run, names[id(agent)]) or _first_text(response)
    return _first_text(response)


async def run_custom_loop(team: Any, task: str, run: Run, options: CamelOptions, names: dict[int, str]) -> Any:
    """The caller's own loop (e.g. OWL's ``run_society``): sync ones run in a thread carrying this context."""
    assert options.loop is not None
    record_society_task(team, task, run)
    with _names(names):
        if inspect.iscoroutinefunction(options.loop):
            result = await options.loop(team)
        else:
            result = await asyncio.to_thread(options.loop, team)
        if inspect.isawaitable(result):
            result = await result
    answer = result[0] if isinstance(result, tuple) and result else result
    return text(answer) if isinstance(answer, str) else answer


def record_society_task(society: Any, task: str, run: Run) -> None:
    """A role-playing society runs the task its agents were built with (``task_prompt``): when the task given to
    ``run`` is another one, the society's is the run's task (the given one kept as ``metadata.given_task``). A given
    task holding the society's and more (a note refine appends) is another one: the more never reaches the agents."""
    society_task = text(getattr(society, "task_prompt", "") or "")
    if run.team_built_for_task:  # its factory built it with this task (CAMEL may have specified it further)
        if society_task and task.strip() not in society_task:
            run.trajectory.metadata["society_task"] = society_task
        return
    if society_task and task.strip() not in society_task:
        run.trajectory.task = society_task
        run.trajectory.metadata["given_task"] = task
        if run.needs_given_task:  # (its run would be paired with the given task: not run at all)
            raise OwnTaskError(f"this role-playing society runs its own task_prompt ({society_task[:80]!r}), not the "
                               "task given to run(): give the factory a `task` parameter and build the society with "
                               "task_prompt=task")
        warnings.warn("this role-playing society runs its own task_prompt, not the task given to run(): the "
                      "trajectory records the task_prompt (give the factory a `task` parameter: each run then builds "
                      "the society with its task, as a tasks file or refine's feedback needs)", stacklevel=3)
    elif not society_task.strip() and task.strip():
        warnings.warn("this role-playing society has no task_prompt: its agents never see the task given to run(), "
                      "which the trajectory records (give the factory a `task` parameter and build the society with "
                      "task_prompt=task)", stacklevel=3)


class _RolePlayingRounds:
    """The rules of a role-play run: what each reply means and when to stop. They live here, not in the coroutine
    that awaits the society: CAMEL walks the call stack on every agent step and reads each frame's position by
    going through its code up to the current instruction, so the awaits sit near the start of a short function."""

    def __init__(self, society: Any, task: str, run: Run, options: CamelOptions, names: dict[int, str]) -> None:
        self.society, self.run, self.options, self.names = society, run, options, names
        # CAMEL's own RolePlaying.astep cannot read an async streaming reply (camel-ai 0.2.90): in "auto" mode a
        # society with a streaming agent steps with the sync ``step``
        streaming = streaming_agent(society.assistant_agent) or streaming_agent(society.user_agent)
        if streaming and options.mode == "async":
            raise UsageError("mode='async' cannot run a society with a streaming agent: CAMEL's RolePlaying.astep "
                             "cannot read async streaming replies; use mode='auto' (steps it with step) or 'sync'")
        self.mode: Mode = "sync" if options.mode == "auto" and streaming else options.mode
        self.message: Any = None
        self.answer: Any = None
        self.stop: str | None = None
        self.turns = 0
        record_society_task(society, task, run)

    def more(self) -> bool:
        """Whether another round runs (no stop yet, turns left); round 0 is ``init_chat``."""
        if self.stop is None and self.turns > self.options.max_turns:
            self.stop = "max_turns"
        return self.stop is None

    def next(self) -> Awaitable[Any]:
        """The next round's coroutine: ``init_chat``, then a ``step`` on the last assistant message."""
        self.turns += 1
        if self.turns == 1:
            return call(self.society, "init_chat", "ainit_chat", self.options.init_prompt, mode=self.mode)
        return call(self.society, "step", "astep", self.message, mode=self.mode)

    def took(self, reply: Any) -> None:
        """Note what a round gave: the opening message, or the agents' replies."""
        if self.turns == 1:
            self.message = reply
            self.run.trajectory.metadata["init_message"] = text(getattr(reply, "content", reply))
        else:
            self.stepped(reply)

    def reply_text(self, response: Any, agent: Any) -> str | None:
        """The text of an agent's reply. A streaming agent's reply holds only its last part when the parts are
        increments (CAMEL's default ``stream_accumulate=False``): its whole text is the message step just recorded."""
        found = _first_text(response)
        if streaming_agent(agent) and id(agent) in self.names:
            found = _last_message(self.run, self.names[id(agent)]) or found
        return found

    def stepped(self, reply: tuple[Any, Any]) -> None:
        assistant, user = reply
        answer = self.reply_text(assistant, self.society.assistant_agent)
        self.answer = answer or self.answer
        if assistant.terminated or user.terminated:
            info = (assistant.info or {}).get("termination_reasons") or (user.info or {}).get("termination_reasons")
            self.stop = "terminated" + (f": {', '.join(map(str, info))}" if info else "")
        elif any(word in (self.reply_text(user, self.society.user_agent) or "") for word in self.options.done_words):
            self.stop = "done"
        elif not assistant.msgs:
            self.stop = "no assistant message"
        else:
            message = assistant.msgs[0]
            self.message = message if answer is None or message.content == answer else \
                message.create_new_instance(answer)

    def finish(self) -> Any:
        outcome = self.run.trajectory.outcome
        outcome.stop_reason = self.stop
        if self.stop != "done":
            outcome.success = False
        return self.answer


async def run_role_playing(society: Any, task: str, run: Run, options: CamelOptions,
                           names: dict[int, str]) -> Any:
    """``init_chat`` then ``step`` rounds until an agent terminates, the user says a done word, or max turns."""
    rounds = _RolePlayingRounds(society, task, run, options, names)
    with _names(names):  # the rounds run inline: every frame here is walked by CAMEL on each agent step
        while rounds.more():
            rounds.took(await rounds.next())
    return rounds.finish()


async def run_workforce(workforce: Any, task: str, run: Run, options: CamelOptions, names: dict[int, str],
                        author: str) -> Any:
    """``process_task_async`` on a Task holding the text; the task is step 0."""
    from camel.tasks import Task
    from camel.tasks.task import TaskState

    stabilize_node_ids(workforce)
    message = _task_text(run, task)
    run.add_step(author, message, role="user")
    with _names(names):
        try:
            result = await workforce.process_task_async(Task(content=message, id="0"))
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # a cancel Python 3.11's wait_for let pass (its inner
                raise asyncio.CancelledError  # future had just finished): the run was cancelled all the same
        except asyncio.CancelledError:  # its workers run in tasks of their own: they stop with the run
            workforce.stop_immediately()
            raise
    state = getattr(result, "state", None)
    run.trajectory.outcome.stop_reason = f"task {getattr(state, 'value', state)}"
    if state == TaskState.FAILED:
        run.trajectory.outcome.success = False
    return result.result
