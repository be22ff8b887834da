"""Per-run and per-agent context the AutoGen hooks read: who is calling the model, and whether a call is ours.

Every value lives in a ContextVar, so concurrent runs (asyncio tasks or threads) never see each other's.
AutoGen's runtime starts each message handler in a task copied from the run's context, so a value set
around ``team.run_stream`` (the manager's identity, the run state) reaches every handler, and a value set
inside an agent's handler (its name) reaches every model call that agent makes.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Actor:
    """Who makes a model call: an agent (its output is a step) or a manager (speaker selection: no step)."""

    name: str
    produces_step: bool = True


@dataclass
class RunState:
    """What the step recorder needs to know from the model-call hooks during one run."""

    # the Magentic-One orchestrators of this run (the traced team's, and those of teams run inside it), by name
    orchestrators: set[str] = field(default_factory=set)
    last_ledgers: dict[str, dict[str, Any]] = field(default_factory=dict)  # orchestrator -> its last progress ledger
    messages: Any = field(default=None)  # codec.MessageCache of this run, created on first use
    tools: Any = field(default=None)  # codec.ToolSchemas of this run, created on first use
    thoughts: dict[str, str] = field(default_factory=dict)  # agent -> thought waiting for its output step
    # the messages recorded so far, by id (held, so that no id is reused): a message reaches the recorder again when
    # an agent that ran it in a tool or an inner team streams it on as its own (AgentTool, TeamTool, SocietyOfMind)
    recorded: dict[int, Any] = field(default_factory=dict)
    # a group chat manager's actor, by the manager's id (kept here, not on the manager: in CPython 3.11 reading an
    # object's ``__dict__`` makes every later attribute access of that object slower, and a manager reads its own
    # attributes all through a run)
    manager_actors: dict[int, tuple[Any, Actor]] = field(default_factory=dict)  # (held, so that no id is reused)


ACTOR: ContextVar[Actor | None] = ContextVar("agentracer_autogen_actor", default=None)
IN_MODEL_CALL: ContextVar[bool] = ContextVar("agentracer_autogen_in_model_call", default=False)
RUN_STATE: ContextVar[RunState | None] = ContextVar("agentracer_autogen_run_state", default=None)

UNKNOWN_ACTOR = Actor("model", produces_step=False)
# on a group chat object whose run (traced, or as a tool's crew) raised inside it: why (set with setattr, read with
# getattr: see ``RunState.manager_actors`` on ``__dict__``)
FAILED_RUN = "_agentracer_failed_run"


def current_actor() -> Actor:
    """The actor of the current context (a call outside any known agent produces no step)."""
    return ACTOR.get() or UNKNOWN_ACTOR
