"""How the CAMEL plugin runs a team: role-playing turn limit, init prompt, done words, sync or async steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["auto", "sync", "async"]


@dataclass(frozen=True)
class CamelOptions:
    """Run settings.

    ``max_turns``: RolePlaying rounds before the run stops with ``stop_reason="max_turns"``.
    ``init_prompt``: the message ``init_chat`` opens a RolePlaying with (CAMEL's default when None).
    ``done_words``: a user-agent message containing one ends a RolePlaying (OWL's ``TASK_DONE`` and
    CAMEL's ``CAMEL_TASK_DONE`` both contain the default).
    ``mode``: ``"sync"`` calls ``step``, ``"async"`` ``astep``; ``"auto"`` picks ``astep`` unless a subclass
    overrides ``step`` below the class that defines ``astep`` (as OWL's society does).
    ``loop``: your own function of the team that runs it (sync or async), e.g. OWL's ``run_society``; it
    replaces the plugin's loop, and its result (the first item of a tuple) is the answer.
    """

    max_turns: int = 10
    init_prompt: str | None = None
    done_words: tuple[str, ...] = ("TASK_DONE",)
    mode: Mode = "auto"
    loop: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {self.max_turns}")
        if self.mode not in ("auto", "sync", "async"):
            raise ValueError(f"mode must be 'auto', 'sync' or 'async', got {self.mode!r}")


@dataclass
class Configured:
    """A CAMEL team (ChatAgent, RolePlaying or Workforce) with the options to run it under."""

    team: Any
    options: CamelOptions = field(default_factory=CamelOptions)


def with_options(team: Any, **options: Any) -> Configured:
    """Attach run options to a team: ``return with_options(RolePlaying(...), max_turns=20)`` in a factory."""
    if isinstance(team, Configured):
        merged = {**team.options.__dict__, **options}
        return Configured(team.team, CamelOptions(**merged))
    return Configured(team, CamelOptions(**options))
