"""The untraced baseline of the overhead benchmarks: a team's run with its result dropped.

``asyncio.run`` in the main thread installs its own SIGINT handler and puts Python's back when the run ends;
``signal.signal`` then tries to name the handler it replaced, and that name is the repr of the finished main task
with its result. For ``team.run(...)`` the result is the whole run (AutoGen's ``TaskResult`` repr is every
message of it, about 3 % of a scripted 50-message run), while a traced run's main task returns a short answer.
Dropping the result keeps that cost out of the baseline, so the ratio measures recording and nothing else (when
SIGINT is ignored, as in a background job, neither side pays it).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any


async def result_dropped(run: Awaitable[Any]) -> None:
    """Await a team's run and drop its result."""
    await run
