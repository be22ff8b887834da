"""The event loops that sync entry points (``run``, ``replay``, ``refine``, ``locate`` ...) run their coroutines in.

Each thread keeps one loop for all of them: frameworks and model clients bind what they make to the loop it is made
in (an HTTP client's connections, a team's queues), so a client made once and shared by a factory's teams, or by the
models of several calls, serves every later call of the thread instead of meeting 'Event loop is closed' in the
next call's new loop. What a call leaves running there (a framework's background work) is cancelled when it ends, as
a loop of its own would have done; a call that Ctrl-C (or any ``BaseException`` but an ``Exception``) ended leaves
its loop behind, and the thread's next call gets a new one. A thread's loop is closed when the thread ends, or at
exit. Threads do not share loops: a client shared by calls made at once in several threads is bound to one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

_LOCAL = threading.local()
LEFT_OVER_ROUNDS = 10  # cancellation rounds at a call's end (a task cancelled may start another while it stops)


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop, quiet about the clean-up of a client whose own loop has closed (see ``_stale_cleanup``)."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_stale_cleanup)
    return loop


def _stale_cleanup(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A client made in another loop (openai's HTTP client, as MetaGPT and CAMEL make) closes itself when it is
    collected, in whatever loop runs then: its ``aclose`` fails on its own closed loop, and asyncio would print that
    task's traceback. Nothing is lost (the connections are gone with their loop), so only that is left unsaid; every
    other error is reported as usual."""
    error, task = context.get("exception"), context.get("future")
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    if (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"
            and getattr(coro, "__name__", None) in ("aclose", "close")):
        return
    loop.default_exception_handler(context)


def _thread_runner() -> asyncio.Runner:
    """This thread's kept runner, made on first use."""
    runner: asyncio.Runner | None = getattr(_LOCAL, "runner", None)
    if runner is None:
        runner = asyncio.Runner(loop_factory=new_loop)
        weakref.finalize(runner, close_loop, runner.get_loop())  # (the thread ended, or the process exits)
        _LOCAL.runner = runner
    return runner


@contextlib.contextmanager
def kept_loop() -> Iterator[asyncio.Runner]:
    """This thread's kept runner for one sync call (``runner.run(coro)`` in the block); what the call leaves running
    is cancelled when the block ends. The thread must not be running an event loop."""
    runner = _thread_runner()
    try:
        yield runner
    except Exception:
        _end_call(runner)
        raise
    except BaseException:  # Ctrl-C: the loop may hold what will not stop; the next call starts afresh
        _discard(runner)
        raise
    _end_call(runner)


def _end_call(runner: asyncio.Runner) -> None:
    try:
        cancel_left_over_tasks(runner.get_loop())
    except BaseException as exc:
        if not isinstance(exc, Exception):  # (Ctrl-C while a task would not stop)
            _discard(runner)
        raise


def cancel_left_over_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel, and let finish, the tasks a call left in ``loop``, and those they start as they stop."""
    for _ in range(LEFT_OVER_ROUNDS):
        left = [task for task in asyncio.all_tasks(loop) if not task.done()]
        if not left:
            return
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))


def _discard(runner: asyncio.Runner) -> None:
    """Forget this thread's runner and close its loop as it is."""
    if getattr(_LOCAL, "runner", None) is runner:
        _LOCAL.runner = None
    close_loop(runner.get_loop())


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close ``loop`` unless it runs (in a daemon thread at exit, say) or is closed already."""
    if not loop.is_running() and not loop.is_closed():
        loop.close()
