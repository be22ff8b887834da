"""Errors agentracer raises, each specific enough to act on."""

from __future__ import annotations

import asyncio
import re


class AgentracerError(Exception):
    """Base class of every error agentracer raises on purpose."""


class InputError(AgentracerError):
    """Bad input: a malformed file, record or field. ``where`` names the file/record/field."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class UsageError(AgentracerError):
    """The team cannot run as it was asked to (a mode it cannot run in, a team object that cannot run again): the
    caller's to fix, not the team's failure, so it is raised as itself and no trajectory is recorded or stored, even
    where the team's own errors are reported as outcomes (``raise_on_error=False``)."""


class OwnTaskError(UsageError):
    """A team would run a task of its own, not the one its run was given, where the caller pairs the two
    (``agentracer.record.NEEDS_GIVEN_TASK``): raised before the team runs."""


class ServiceError(AgentracerError):
    """A model or server the command depends on failed for good (after its retries): not the input's fault (the CLI
    exits 1 for it, 2 for bad input)."""


class ReplayError(AgentracerError):
    """A replay cannot be made as asked (step out of range, other framework or team shape)."""


class ReplayDivergence(ReplayError):
    """The re-run asked something its recording never saw before the replaced step."""

    def __init__(self, *, step: int | None, agent: str, reason: str, diff: str = "") -> None:
        self.step = step
        self.agent = agent
        self.reason = reason
        self.diff = diff
        where = f"step {step}" if step is not None else "before any step"
        text = f"replay diverged at {where}, agent {agent!r}: {reason}"
        if diff:
            text += "\n" + diff
        super().__init__(text)


class RecordedModelError(AgentracerError):
    """A model call that raised in the recording raises again when its replay serves it."""


class PluginNotFound(AgentracerError):
    """No installed plugin recognises the team object."""


class TeamBuildError(AgentracerError):
    """The team factory raised, so no run began (the factory's exception is the cause)."""


class _WithTrajectory(AgentracerError):
    """An error that carries the run it ended as ``trajectory``."""

    def __init__(self, message: str, trajectory) -> None:  # noqa: ANN001 - avoid import cycle
        self.trajectory = trajectory
        super().__init__(message)


class TeamRunError(_WithTrajectory):
    """The team raised while running; the recorded trajectory is attached as ``trajectory``."""


class RunNotStoredError(_WithTrajectory):
    """The run ended but its store refused it (a full disk, a file made read-only since, a value the store cannot
    hold): nothing is lost, the trajectory is attached as ``trajectory`` (save it elsewhere, e.g. ``to_json``)."""


_SERVICE_FAILURES = frozenset({"APIConnectionError", "APITimeoutError", "RateLimitError", "InternalServerError",
                               "ServiceUnavailableError", "ConnectError", "ConnectTimeout", "ReadTimeout",
                               "WriteTimeout", "PoolTimeout", "RemoteProtocolError"})
"""Exception classes (by name: OpenAI's, httpx's, many clients') that say a service failed, not the team's work."""
_NAMED_FAILURE = re.compile(r"\b(" + "|".join(sorted(_SERVICE_FAILURES)) + r")\b")


def service_failure(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from (``raise ... from``), is a model server's or the network's
    failure (a timeout, a refused connection, a 5xx or 429 answer) rather than something the run itself did. A
    framework that re-raises an agent's error as text (AutoGen: ``RuntimeError: APIConnectionError: ...``) is read by
    the class names at the start of its message; an error raised while handling another is not taken for it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (isinstance(current, ConnectionError | TimeoutError | asyncio.TimeoutError | ServiceError)
                and not isinstance(current, BrokenPipeError)) or type(current).__name__ in _SERVICE_FAILURES:
            return True
        status = getattr(current, "status_code", None)
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
        if _NAMED_FAILURE.search(str(current).split("\n", 1)[0][:300]):
            return True
        current = current.__cause__
    return False
