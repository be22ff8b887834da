"""The MaAS hooks, found by module name so they apply to a real checkout (``maas.*`` on PYTHONPATH).

- ``maas.provider.base_llm.BaseLLM.aask``: model calls (``ActionNode.fill`` ends there), installed on import.
- each operator class a workflow holds (an object with ``llm`` and an async ``__call__``, defined in a
  ``maas.*`` module): one call is one step, the operator's name its agent, its inputs in the metadata.
  At the replayed step the operator's model calls are served from the recording and its output is the
  action. Operator modules differ per dataset in MaAS, so their classes are wrapped when a run meets them.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import wrapt
from agentracer import ReplayError, Run, current_run
from agentracer.team import error_summary

from agentracer_plugins.metagpt.llm_hook import ACTOR, traced_aask, traced_update_costs
from agentracer_plugins.metagpt.patching import PluginHooks

LLM_MODULE = "maas.provider.base_llm"
USER = "user"

_hooks = PluginHooks()


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(v) for v in value]
        return str(value)


def operator_name(operator: Any) -> str:
    return str(getattr(operator, "name", "") or type(operator).__name__)


def is_operator(obj: Any) -> bool:
    """An operator: defined in a ``maas.*`` module, holds an ``llm``, and its ``__call__`` is async."""
    cls = type(obj)
    call = getattr(cls, "__call__", None)  # noqa: B004 - the class attribute, not callable()
    while isinstance(call, wrapt.FunctionWrapper):
        call = call.__wrapped__
    return (cls.__module__.split(".")[0] == "maas" and hasattr(obj, "llm")
            and inspect.iscoroutinefunction(call))


def operators_of(workflow: Any) -> list[Any]:
    """Operators a workflow holds as attributes, or inside dicts/lists of its attributes."""
    found: list[Any] = []
    for value in vars(workflow).values():
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
        for item in items:
            if is_operator(item) and all(item is not f for f in found):
                found.append(item)
    return found


def output_for(action: Any, output: Any, *, step: int, name: str, failed: bool = False) -> Any:
    """What an operator returns in place of ``output`` at the replaced step: a dict action as it is; a text, when the
    output is an object, the JSON of one (as ``step.text`` shows an operator's output), else its ``response``;
    ``ReplayError`` for a text the operator's object output cannot take (MaAS's Programmer returns ``code`` and
    ``output``: the workflow would fail on a text, naming no step). Where the operator ``failed`` (no output), a text
    must be the JSON of an object: nothing says which fields its output has."""
    if not isinstance(action, str) or not (failed or isinstance(output, dict)):
        return action
    try:
        decoded = json.loads(action)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        return decoded
    if failed:
        raise ReplayError(f"step {step} is where operator {name!r} failed, so no output of it shows which fields it "
                          "has: give the action as the object the operator returns (a dict such as "
                          "{'response': ...}, or its JSON text)")
    if "response" in output:
        return {**output, "response": action}
    raise ReplayError(f"step {step} is the output of operator {name!r}, an object with {sorted(map(str, output))}: "
                      "give the action as such an object (a dict, or its JSON text)")


def _replace_output(run: Run, name: str, output: Any, *, failed: bool = False) -> Any:
    # (by the step this call's output takes, not the next index: operators gathered together finish in any order)
    action = run.replacement_for_step_of(name)
    if action is None:
        return output
    assert run.plan is not None
    replaced = output_for(action, output, step=run.plan.step, name=name, failed=failed)
    run.count_substitution()
    return replaced


def _traced_call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = current_run()
    if run is None:
        return wrapped(*args, **kwargs)
    return _operator_step(run, wrapped, instance, args, kwargs)


async def _operator_step(run: Run, wrapped: Any, operator: Any, args: Any, kwargs: Any) -> Any:
    # (one invocation: calls of operators of one name gathered together go to their own operator's step, even one that
    # awaits more after its model call, as MaAS's Programmer runs its code)
    with run.invocation():
        return await _invoked_operator_step(run, wrapped, operator, args, kwargs)


async def _invoked_operator_step(run: Run, wrapped: Any, operator: Any, args: Any, kwargs: Any) -> Any:
    name = operator_name(operator)
    try:
        bound = inspect.signature(wrapped).bind_partial(*args, **kwargs).arguments
    except TypeError:
        bound = {"args": list(args), **kwargs}
    token, failed = ACTOR.set(name), False
    try:
        output = await wrapped(*args, **kwargs)
    except Exception as exc:  # the operator failed on its model's answer (or before asking): a step says so there
        if run.replacement_for_step_of(name) is None:
            run.add_failed_turn_step(name, error_summary(exc))
            _not_its_output(run.trajectory.steps[-1] if run.trajectory.steps else None, name)
            raise
        output, failed = None, True  # (the replaced step: the action stands where the operator failed)
    finally:
        ACTOR.reset(token)
    output = _replace_output(run, name, output, failed=failed)
    step = run.add_step(name, _jsonable(output), metadata={"operator": type(operator).__name__,
                                                            "inputs": _jsonable(dict(bound))})
    _not_its_output(step, name)
    return output


def _not_its_output(step: Any, name: str) -> None:
    """The step is the operator's output (or failure), not its model's answer: a replay serves its calls, then puts
    the action in place of the output."""
    if step is not None and step.agent == name:
        for call in step.model_calls:
            call.produces_step = False


def wrap_operators(workflow: Any) -> list[str]:
    """Wrap the ``__call__`` of every operator class ``workflow`` holds (idempotent); their names."""
    names = []
    for operator in operators_of(workflow):
        owner = next(c for c in type(operator).__mro__ if "__call__" in c.__dict__)
        _hooks.apply(owner, "__call__", _traced_call)
        names.append(operator_name(operator))
    return names


def _patch_llm(module: Any) -> None:
    _hooks.apply(module.BaseLLM, "aask", traced_aask)
    if hasattr(module.BaseLLM, "_update_costs"):  # (where providers report each call's tokens)
        _hooks.apply(module.BaseLLM, "_update_costs", traced_update_costs)


def install() -> None:
    """Hook ``maas.provider.base_llm`` now or when it is imported (idempotent)."""
    _hooks.install({LLM_MODULE: _patch_llm})


def remove() -> None:
    """Restore every original (operator classes included)."""
    _hooks.remove()


def installed() -> list[str]:
    """Names of the wrapped functions, e.g. ``BaseLLM.aask``."""
    return _hooks.names()
