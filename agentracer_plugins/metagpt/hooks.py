"""The MetaGPT hooks: routed messages become steps, role turns name the actor, model calls are recorded.

- ``Environment.publish_message``: every routed message (the user's idea included) becomes a step; at the
  replayed step, when no model call produced the recorded step, the message's content is replaced here.
- ``Role.react``: the role whose turn runs becomes the actor of its model calls (roles run concurrently
  in their own asyncio tasks, so a ContextVar keeps them apart); an exception is recorded here, because
  ``Team.run`` swallows it.
- ``BaseLLM.aask`` (on the class, since every action holds its own LLM handle): see ``llm_hook``.

Installed through post-import hooks (import order never matters), idempotent, and removed exactly.
"""

from __future__ import annotations

import warnings
import weakref
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import wrapt
from agentracer import ReplayError, Run, current_run

from .llm_hook import ACTOR, CALL_ACTIONS, ROLE, THINKING, THINKING_CALLS, traced_aask, traced_update_costs
from .patching import PluginHooks

SUPPORTED = ((0, 8), (0, 9))  # [min, max) of metagpt's (major, minor)
USER = "user"
USER_REQUIREMENT = "metagpt.actions.add_requirement.UserRequirement"

_hooks = PluginHooks()
_authors: weakref.WeakKeyDictionary[Run, dict[str, str]] = weakref.WeakKeyDictionary()
_failures: weakref.WeakKeyDictionary[Run, list[dict[str, str]]] = weakref.WeakKeyDictionary()
# ids of messages no model call answered: a PLAN_AND_ACT role publishes its planner's summary of every task
_summaries: weakref.WeakKeyDictionary[Run, set[str]] = weakref.WeakKeyDictionary()


def role_name(role: Any) -> str:
    """A role's agent name: its profile (MetaGPT routes by it, so it is unique in a team), else its name."""
    return str(getattr(role, "profile", "") or getattr(role, "name", "") or type(role).__name__)


def failures(run: Run) -> list[dict[str, str]]:
    """Exceptions raised in role turns of ``run`` (MetaGPT's ``Team.run`` logs and swallows them)."""
    return list(_failures.get(run, []))


# --------------------------------------------------------------------------- role turns
def _traced_react(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = current_run()
    if run is None:
        return wrapped(*args, **kwargs)
    return _react(run, wrapped, instance, args, kwargs)


async def _react(run: Run, wrapped: Any, role: Any, args: Any, kwargs: Any) -> Any:
    name = role_name(role)
    token, role_token = ACTOR.set(name), ROLE.set(role)
    try:
        message = await wrapped(*args, **kwargs)
    except Exception as exc:
        _note_failure(run, name, exc)
        raise
    finally:
        ROLE.reset(role_token)
        ACTOR.reset(token)
    message_id = getattr(message, "id", None)
    if message_id:
        _authors.setdefault(run, {})[str(message_id)] = name
        if _plans_and_acts(role):
            _summaries.setdefault(run, set()).add(str(message_id))
    if message is not None and run.replaying and run.next_index <= run.plan.step:
        await _wait_for_recorded_turn(run, name)
    return message


def _plans_and_acts(role: Any) -> bool:
    """Whether a role reacts by plan and act: what it publishes is its planner's summary of the plan and every task's
    result, which no one model call answered (the last task's call gave only its own result)."""
    mode = getattr(getattr(role, "rc", None), "react_mode", None)
    return str(getattr(mode, "value", mode)) == "plan_and_act"


def _traced_role_run(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A role's whole turn: its calls are its own even when its class overrides ``react`` without calling it (the
    ``react`` hook sits on ``Role`` only), and a failure there shows at the role as in ``react``."""
    run = current_run()
    if run is None:
        return wrapped(*args, **kwargs)
    return _role_run(run, wrapped, instance, args, kwargs)


async def _role_run(run: Run, wrapped: Any, role: Any, args: Any, kwargs: Any) -> Any:
    _hook_own_think(type(role))
    name = role_name(role)
    token, role_token = ACTOR.set(name), ROLE.set(role)
    before = len(_failures.get(run, ()))
    try:
        return await wrapped(*args, **kwargs)
    except Exception as exc:
        if not any(failure["agent"] == name for failure in _failures.get(run, [])[before:]):
            _note_failure(run, name, exc)  # (the react hook did not see it: MetaGPT re-raises it reworded)
        raise
    finally:
        ROLE.reset(role_token)
        ACTOR.reset(token)


def _note_failure(run: Run, name: str, exc: Exception) -> None:
    """A role's turn raised: note it (MetaGPT's ``Team.run`` swallows it) and give it a step where it happened."""
    error = f"{type(exc).__name__}: {exc}"
    _failures.setdefault(run, []).append({"agent": name, "error": error})
    if not isinstance(exc, ReplayError):
        run.add_failed_turn_step(name, error)


_THINK_CHECKED: set[type] = set()  # role classes whose own ``_think`` is hooked, or that have none (till removal)


def _hook_own_think(cls: type) -> None:
    """A role class with its own ``_think`` (DataInterpreter, Engineer…): its choice of the next action is hooked too
    (the hook on ``Role`` does not reach an override). Each class is looked at once (every role's turn asks)."""
    if cls in _THINK_CHECKED:
        return
    owner = next((c for c in cls.__mro__ if "_think" in c.__dict__), None)
    if owner is not None and not isinstance(owner.__dict__["_think"], wrapt.FunctionWrapper):
        _hooks.apply(owner, "_think", _traced_think)
    _THINK_CHECKED.add(cls)


def _traced_think(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A role choosing its next action (REACT mode asks its model which): those calls make no step, so a replay puts
    the action into the step even when the chosen action asks the model nothing."""
    if current_run() is None:
        return wrapped(*args, **kwargs)
    return _think(wrapped, args, kwargs)


async def _think(wrapped: Any, args: Any, kwargs: Any) -> Any:
    token = THINKING.set(True)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        THINKING.reset(token)


async def _wait_for_recorded_turn(run: Run, name: str) -> None:
    """Before the replayed step, publish in the recorded order: served calls return at once, so a role
    that answered later in the recording would otherwise overtake one that answered first."""
    assert run.plan is not None and run.cassette is not None
    recorded = run.cassette.trajectory.steps
    target = next((s.index for s in recorded[run.next_index:run.plan.step + 1] if s.agent == name), None)
    if target is not None:
        await run.reach(target)


# --------------------------------------------------------------------------- routed messages
def _author(run: Run, message: Any) -> tuple[str, str]:
    """(agent, role) of a published message."""
    actor = ACTOR.get()
    if actor:
        return actor, "assistant"
    found = _authors.get(run, {}).pop(str(getattr(message, "id", "")), None)
    if found:
        return found, "assistant"
    if str(getattr(message, "cause_by", "")) == USER_REQUIREMENT:
        return USER, "user"
    return str(getattr(message, "role", "") or getattr(message, "sent_from", "") or USER), "assistant"


def _action_name(action: type) -> str:
    """An action class as MetaGPT names a message's ``cause_by`` (``any_to_str``)."""
    return f"{action.__module__}.{action.__name__}"


def _replace_at_publish(run: Run, message: Any) -> bool:
    """At the replayed step, put the action into the message when no model call of this replay answered with it
    (what the recording marks as the step's maker may be an earlier action's call: see ``_check_replaced_call``)."""
    action = run.replacement_for_next_step()
    if action is None or run.cassette is None:
        return False
    if run.stats["replacement"]:
        _check_replaced_call(run, message)
        return False  # the model call that produces this step already returned the action
    message.content = action if isinstance(action, str) else str(action.get("content", action)) \
        if isinstance(action, dict) else str(action)
    if getattr(message, "instruct_content", None) is not None:
        message.instruct_content = None
    run.count_substitution()
    return True


def _check_replaced_call(run: Run, message: Any) -> None:
    """A ``ReplayError`` when the model call that took the action was live an earlier action's than the one whose
    output the message is (a recording made before a message's maker was its last action's call marks the turn's
    last call; the message was then made from the action, not the action itself)."""
    assert run.plan is not None and run.cassette is not None
    key = run.cassette.replaced_call(run.plan.step)
    doing = CALL_ACTIONS.get(run, {}).get(key) if key is not None else None
    cause = str(getattr(message, "cause_by", "") or "")
    if key is None or doing is None or not cause or cause == _action_name(doing):
        return
    error = ReplayError(
        f"step {run.plan.step}: the recording marks model call #{key[1]} of {key[0]!r} (its {doing.__name__} action's) "
        f"as making the message, so the action became that call's answer, but the message is the later action "
        f"{cause.rsplit('.', 1)[-1]}'s, which asked no model (a recording made before agentracer took a message's "
        f"maker from its last action): record the run again")
    if run.divergence is None:  # (MetaGPT rewords what a role's turn raises: the run raises this when it ends)
        run.divergence = error
    raise error


def _metadata(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cause_by": str(getattr(message, "cause_by", "") or ""),
        "sent_from": str(getattr(message, "sent_from", "") or ""),
        "send_to": sorted(str(x) for x in (getattr(message, "send_to", None) or ())),
        "message_role": str(getattr(message, "role", "") or ""),
    }
    instruct = getattr(message, "instruct_content", None)
    if instruct is not None and hasattr(instruct, "model_dump"):
        try:
            data["instruct_content"] = instruct.model_dump(mode="json")
        except Exception:  # a dynamic model that cannot dump is not worth failing a run for
            data["instruct_content"] = str(instruct)
    return data


def _traced_publish(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = current_run()
    message = args[0] if args else kwargs.get("message")
    if run is None or message is None:
        return wrapped(*args, **kwargs)
    agent, role = _author(run, message)
    _replace_at_publish(run, message)
    content = getattr(message, "content", _NO_CONTENT)  # (``str(message)`` may dump its structured content)
    step = run.add_step(agent, str(message) if content is _NO_CONTENT else content, role=role,
                        metadata=_metadata(message))
    # Only the turn's last call that was not a choice of the next action (``_think``) made the message (none made a
    # plan-and-act summary); the others are served, not replaced (with no such call, a replay puts the action into
    # the message itself).
    thinking = THINKING_CALLS.get(run, set())
    summary = str(getattr(message, "id", "")) in _summaries.get(run, set())
    producer = None if summary else next(
        (call for call in reversed(step.model_calls) if (call.agent, call.call_index) not in thinking), None)
    doing = CALL_ACTIONS.get(run, {}).get((producer.agent, producer.call_index)) if producer is not None else None
    cause = str(getattr(message, "cause_by", "") or "")
    if doing is not None and cause and cause != _action_name(doing):
        producer = None  # the call was an earlier action's: the message is the last one's, which asked nothing
    for call in step.model_calls:
        if call.produces_step is not (call is producer):  # (a pydantic model's ``__setattr__`` costs)
            call.produces_step = call is producer
    return wrapped(*args, **kwargs)


_NO_CONTENT = object()


# --------------------------------------------------------------------------- install / remove
def _check_version() -> None:
    try:
        found = version("metagpt")
    except PackageNotFoundError:
        return
    parts = tuple(int(p) for p in found.split(".")[:2] if p.isdigit())
    if not (SUPPORTED[0] <= parts < SUPPORTED[1]):
        warnings.warn(f"agentracer's MetaGPT hooks are tested with metagpt 0.8.x; found {found}", stacklevel=3)


def _patch_env(module: Any) -> None:
    _hooks.apply(module.Environment, "publish_message", _traced_publish)


def _patch_role(module: Any) -> None:
    _hooks.apply(module.Role, "react", _traced_react)
    _hooks.apply(module.Role, "_think", _traced_think)
    _hooks.apply(module.Role, "run", _traced_role_run)


def _patch_llm(module: Any) -> None:
    _hooks.apply(module.BaseLLM, "aask", traced_aask)
    if hasattr(module.BaseLLM, "_update_costs"):  # (where providers report each call's tokens)
        _hooks.apply(module.BaseLLM, "_update_costs", traced_update_costs)


HOOKS = {
    "metagpt.environment.base_env": _patch_env,
    "metagpt.roles.role": _patch_role,
    "metagpt.provider.base_llm": _patch_llm,
}


def install() -> None:
    """Install the hooks now for imported modules, and on import for the others (idempotent: every traced run asks,
    and reading MetaGPT's version parses its package metadata)."""
    if _hooks.enabled:
        return
    _check_version()
    _hooks.install(HOOKS)


def remove() -> None:
    """Restore MetaGPT's original functions (modules imported later stay unpatched)."""
    _hooks.remove()
    _THINK_CHECKED.clear()


def installed() -> list[str]:
    """Names of the wrapped functions, e.g. ``Role.react``."""
    return _hooks.names()
