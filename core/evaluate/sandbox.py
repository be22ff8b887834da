"""Run untrusted Python and its asserts in a child process: time limit, memory limit, no network.

The child runs in its own process group (killed whole on timeout), under ``RLIMIT_AS`` (memory),
``RLIMIT_CPU`` and ``RLIMIT_FSIZE`` (output size); its network is cut by a fresh network namespace
(``unshare -rn``) where the kernel allows it, and always by a socket guard installed before the code runs.
An infinite loop, a fork bomb of output, a segfault or ``sys.exit`` in generated code ends as a failed
result, never as a hang or an exception in the caller.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_HARNESS = r'''
import json, socket, sys, traceback, types
result_path, payload_path = sys.argv[1], sys.argv[2]
with open(payload_path) as fh:
    payload = json.load(fh)
out = {"stage": "start", "results": []}
def _save():
    with open(result_path, "w") as fh:
        json.dump(out, fh)
def _blocked(*args, **kwargs):
    raise OSError("network access is disabled in the agentracer sandbox")
class _NoSocket(socket.socket):
    def connect(self, *a, **k): _blocked()
    def connect_ex(self, *a, **k): _blocked()
    def bind(self, *a, **k): _blocked()
    def sendto(self, *a, **k): _blocked()
socket.socket = _NoSocket
socket.create_connection = _blocked
socket.getaddrinfo = _blocked
# the code runs as an imported module, as graders run it: a demo under `if __name__ == "__main__":` (unittest.main(),
# input()) stays out, and its functions and classes are importable by their module's name (pickle, dataclasses)
solution = types.ModuleType("solution")
sys.modules["solution"] = solution
namespace = solution.__dict__
_save()
try:
    out["stage"] = "setup"
    exec(compile(payload["setup"], "<setup>", "exec"), namespace)
    out["stage"] = "code"
    exec(compile(payload["code"], "<solution>", "exec"), namespace)
except BaseException as exc:
    out["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    _save()
    sys.exit(0)
out["stage"] = "tests"
namespace["__name__"] = "__main__"  # the tests are the script: asserts under their own main block still run
for test in payload["tests"]:
    entry = {"test": test, "passed": False}
    out["results"].append(entry)
    _save()
    try:
        exec(compile(test, "<test>", "exec"), namespace)
        entry["passed"] = True
    except BaseException as exc:
        entry["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip() or type(exc).__name__
    _save()
out["stage"] = "done"
_save()
'''


@dataclass
class TestRun:
    """What happened when code ran against its tests."""

    passed: bool
    total: int
    passed_count: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    network_isolated: bool = False

    @property
    def feedback(self) -> str:
        """A short human-readable account, fit to show an agent or an analyzer."""
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s (infinite loop or too slow); {self.passed_count}/{self.total} tests passed before"
        if self.error:
            return f"the code failed before the tests ran: {self.error}"
        if self.passed:
            return f"all {self.total} tests passed"
        lines = [f"{self.passed_count}/{self.total} tests passed"] + [f"FAILED {f}" for f in self.failures[:5]]
        if self.returncode not in (0, None):
            lines.append(f"the process ended with code {self.returncode}")
        return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def _unshare_prefix() -> tuple[str, ...]:
    """``unshare -rn`` when this kernel lets an unprivileged process make a network namespace."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    try:
        probe = subprocess.run([exe, "-rn", sys.executable, "-c", "pass"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ()
    return (exe, "-rn") if probe.returncode == 0 else ()


def _limits(memory_mb: int, cpu_s: int, output_bytes: int) -> None:  # runs in the child before exec
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def run_python_tests(
    code: str,
    tests: Sequence[str],
    *,
    setup: str = "",
    timeout: float = 10.0,
    memory_mb: int = 512,
    output_bytes: int = 1_000_000,
    isolate_network: bool = True,
) -> TestRun:
    """Run ``code`` (as an imported module: its ``__main__`` block does not run) then each assert in ``tests`` in a
    sandboxed child; never raises for bad code."""
    tests = [t for t in tests if t.strip()]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentracer-sandbox-") as tmp:
        root = Path(tmp)
        (root / "payload.json").write_text(json.dumps({"code": code, "tests": tests, "setup": setup}))
        (root / "harness.py").write_text(_HARNESS)
        result_path = root / "result.json"
        prefix = _unshare_prefix() if isolate_network else ()
        argv = [*prefix, sys.executable, "-I", str(root / "harness.py"), str(result_path),
                str(root / "payload.json")]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "HOME": tmp,
               "PYTHONDONTWRITEBYTECODE": "1"}
        cpu = max(1, int(timeout) + 1)
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            proc = subprocess.Popen(
                argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True, preexec_fn=functools.partial(_limits, memory_mb, cpu, output_bytes),
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        try:
            data = json.loads(result_path.read_text())
        except (OSError, json.JSONDecodeError):
            data = {"stage": "start", "results": []}
        results = data.get("results", [])
        passed_count = sum(1 for r in results if r.get("passed"))
        failures = [f"{r['test']}: {r.get('error', 'did not finish')}" for r in results if not r.get("passed")]
        error = data.get("error")
        returncode = proc.returncode
        if error is None and not timed_out and data.get("stage") != "done":
            error = _crash_reason(returncode, data.get("stage", "start"))
        passed = (not timed_out and error is None and data.get("stage") == "done"
                  and passed_count == len(tests) and len(tests) > 0)
        return TestRun(
            passed=passed, total=len(tests), passed_count=passed_count, failures=failures, error=error,
            timed_out=timed_out, returncode=returncode, stdout=_tail(root / "stdout"),
            stderr=_tail(root / "stderr"), duration_s=time.perf_counter() - started,
            network_isolated=bool(prefix),
        )


def _crash_reason(returncode: int | None, stage: str) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (output size limit)", "SIGKILL": " (killed)"}.get(name, "")
        return f"the process was killed by {name}{hint} during {stage}"
    return f"the process exited with code {returncode} during {stage} (sys.exit or memory limit)"


async def arun_python_tests(code: str, tests: Sequence[str], **options: object) -> TestRun:
    """``run_python_tests`` without blocking the event loop."""
    return await asyncio.to_thread(run_python_tests, code, tests, **options)  # type: ignore[arg-type]
