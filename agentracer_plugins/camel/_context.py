"""Which CAMEL agent is acting in this context: set by the ChatAgent and worker hooks, read by the model hook."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from .codec import text

# The agent acting here, as (id of the ChatAgent, the name it is recorded under); None outside any agent.
CURRENT_AGENT: contextvars.ContextVar[tuple[int, str] | None] = contextvars.ContextVar(
    "agentracer_camel_agent", default=None)
# A name a Workforce worker node gives to the agents that step directly under it (its pool clones the agent).
WORKER_NAME: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentracer_camel_worker", default=None)

# Names the plugin gave the team's own agents for this run (id(agent) -> name).
NAMES: contextvars.ContextVar[dict[int, str] | None] = contextvars.ContextVar("agentracer_camel_names", default=None)

# CAMEL names an agent built from a plain-string system message "System": a placeholder, not a role.
PLACEHOLDER_ROLES = frozenset({"", "System", "system"})


def role_name(agent: Any, fallback: str = "assistant") -> str:
    """The agent's role name, or ``fallback`` where CAMEL only put a placeholder."""
    role = text(getattr(agent, "role_name", "") or "")
    return fallback if role in PLACEHOLDER_ROLES else role


_names_lock = threading.Lock()


def agent_name(agent: Any) -> str:
    """The name a ChatAgent is recorded under: a pending worker node's name, the plugin's name for it, or, for an
    agent outside the team (a toolkit's own agent, CAMEL's context summariser), its role made unique in the run
    (``assistant #2`` beside the team's ``assistant``: a replay tells them apart by name), kept for the run."""
    worker = WORKER_NAME.get()
    if worker:
        return worker
    names = NAMES.get()
    if names is None:
        return role_name(agent)
    with _names_lock:
        known = names.get(id(agent))
        if known is not None:
            return known
        base, taken, n = role_name(agent), set(names.values()), 1
        name = base
        while name in taken:
            n += 1
            name = f"{base} #{n}"
        names[id(agent)] = name
        _held.setdefault(id(names), []).append(agent)  # (holding the agent keeps its id from being reused)
        return name


_held: dict[int, list[Any]] = {}  # per run's names: the nested agents named in it


def forget_nested(names: dict[int, str]) -> None:
    """Let go of the nested agents a run named (its names end with it)."""
    with _names_lock:
        _held.pop(id(names), None)


def current_agent() -> str | None:
    """The name of the agent acting in this context, if any."""
    acting = CURRENT_AGENT.get()
    return acting[1] if acting is not None else None


def enter_agent(agent: Any) -> tuple[contextvars.Token, contextvars.Token]:
    """Make ``agent`` the acting agent here (keeping the name it already acts under, when it is the one acting)
    and clear the worker name, so that agents nested in what it does (a tool that steps another agent, a
    context summary) are named as themselves. Undo with ``leave_agent``."""
    acting = CURRENT_AGENT.get()
    name = acting[1] if acting is not None and acting[0] == id(agent) else agent_name(agent)
    return CURRENT_AGENT.set((id(agent), name)), WORKER_NAME.set(None)


def acting_as(agent: Any) -> tuple[int, str] | None:
    """How ``agent`` acts here (its id and name) when it is the acting agent, else None."""
    acting = CURRENT_AGENT.get()
    return acting if acting is not None and acting[0] == id(agent) else None


def resume_agent(agent: Any, acting: tuple[int, str] | None) -> tuple[contextvars.Token, contextvars.Token]:
    """Make ``agent`` the acting agent again, under the name it acted under when ``acting_as`` was asked (a
    streaming step resumes later, wherever its caller reads it); with none known, as ``enter_agent`` does."""
    if acting is None:
        return enter_agent(agent)
    return CURRENT_AGENT.set(acting), WORKER_NAME.set(None)


def leave_agent(tokens: tuple[contextvars.Token, contextvars.Token]) -> None:
    WORKER_NAME.reset(tokens[1])
    CURRENT_AGENT.reset(tokens[0])

