"""The event loops that sync entry points (``run``, ``replay``, ``refine``, ``locate`` ...) run their coroutines in.

Each thread keeps one loop for all of them: frameworks and model clients bind what they make to the loop it is made
in (an HTTP client's connections, a team's queues), so a client made once and shared by a factory's teams, or by the
models of several calls, serves every later call of the thread instead of meeting 'Event loop is closed' in the
next call's new loop. Each call runs in a copy of its caller's context, and what it leaves in the loop (a
framework's background tasks, open async generators) is cancelled or closed when it ends, as a loop of its own would
have done. Timers are left: a client shared by the calls keeps its own, and re-arms one only when it is gone. A call
that Ctrl-C (or any ``BaseException`` but an ``Exception``) ended has its loop shut down (briefly: a second Ctrl-C
abandons it), and the thread's next call gets a new one. A thread's loop is shut down when the thread ends, or at
exit. Threads do not share loops: a client shared by calls made at once in several threads is bound to one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import weakref
from collections.abc import Iterator
from typing import Any

_LOCAL = threading.local()
LEFT_OVER_ROUNDS = 10  # cancellation rounds at a call's end (a task cancelled may start another while it stops)
SHUTDOWN_WAIT_S = 1.0  # how long a loop Ctrl-C left waits for its tasks to stop before it is closed


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
        weakref.finalize(runner, shut_down, runner.get_loop())  # (the thread ended, or the process exits)
        _LOCAL.runner = runner
    return runner


def run_in_kept_loop(coro: Any) -> Any:
    """Run ``coro`` to its end in this thread's kept loop, in a copy of the caller's context (as ``asyncio.run``
    does: what the caller set is seen, what the call sets stays in it). The thread must not be running a loop."""
    with kept_loop() as runner:
        return run_returning(runner, coro, contextvars.copy_context())


def run_returning(runner: asyncio.Runner, coro: Any, context: contextvars.Context) -> Any:
    """``runner.run(coro, context=context)``, its value handed back past the task rather than as the task's result:
    in the main thread, ``asyncio.Runner.run`` reprs its finished task, result and all, twice as it puts back the
    SIGINT handler (Python 3.11's ``signal`` module formats the handler it cannot name), and the repr of a built
    MetaGPT team or of a trajectory runs to hundreds of kilobytes (8 ms a run)."""
    held: list[Any] = []
    runner.run(_kept_in(held, coro), context=context)
    return held[0]


async def _kept_in(held: list[Any], coro: Any) -> None:
    held.append(await coro)


@contextlib.contextmanager
def kept_loop() -> Iterator[asyncio.Runner]:
    """This thread's kept runner for one sync call (``run_returning(runner, coro, context)`` in the block, each with a
    context of its own; ``runner.run`` only for a coroutine whose value is short, as its task's result is repr'd);
    what the call leaves in the loop is cancelled or closed when the block ends. The thread must not be running an
    event loop."""
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
        loop = runner.get_loop()
        cancel_left_over_tasks(loop)
        _close_left_over_generators(loop)
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


def _close_left_over_generators(loop: asyncio.AbstractEventLoop) -> None:
    """Close the async generators a call left open (a stream it kept): a loop of its own would have closed them at its
    end (``shutdown_asyncgens`` cannot: the loop would take no new generator afterwards). A loop that keeps no record
    of them (uvloop) skips this."""
    generators = list(getattr(loop, "_asyncgens", ()))  # (asyncio's own record of them)
    if generators:
        loop.run_until_complete(_close_all(loop, generators))


async def _close_all(loop: asyncio.AbstractEventLoop, generators: list[Any]) -> None:
    """Close ``generators``; one whose closing raises is reported as ``shutdown_asyncgens`` reports it."""
    results = await asyncio.gather(*(generator.aclose() for generator in generators), return_exceptions=True)
    for generator, result in zip(generators, results, strict=True):
        if isinstance(result, Exception):
            loop.call_exception_handler({"message": f"an error occurred during closing of asynchronous generator "
                                                    f"{generator!r}", "exception": result, "asyncgen": generator})


def _discard(runner: asyncio.Runner) -> None:
    """Forget this thread's runner and shut its loop down (a call Ctrl-C stopped)."""
    if getattr(_LOCAL, "runner", None) is runner:
        _LOCAL.runner = None
    shut_down(runner.get_loop())


def shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """Let ``loop``'s tasks stop (for ``SHUTDOWN_WAIT_S`` at most: a second Ctrl-C abandons the wait), close its async
    generators and close it; a loop that runs (in a daemon thread at exit, say) is left as it is."""
    if loop.is_running() or loop.is_closed():
        return
    try:
        left = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=SHUTDOWN_WAIT_S))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except BaseException:  # (a second Ctrl-C, or a loop that cannot run here: closed as it is)
        pass
    finally:
        close_loop(loop)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close ``loop`` unless it runs (in a daemon thread at exit, say) or is closed already."""
    if not loop.is_running() and not loop.is_closed():
        loop.close()
