"""The MetaGPT example runs offline, as a user would run it, and says only what it means to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "metagpt_mbpp.py"


def test_the_mbpp_example_records_a_failure_and_its_replay_fixes_it_without_tracebacks(tmp_path: Path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "outcome: False 2/3 tests passed" in out.stdout
    assert "replay from the Coder's step: True {'live': 1, 'cassette': 0, 'replacement': 1" in out.stdout
    # each run has an event loop of its own: the first run's HTTP clients closing later are not reported as errors
    assert "Traceback" not in out.stderr and "never retrieved" not in out.stderr
    assert list(tmp_path.iterdir()) == []  # its MetaGPT home and workspace are gone
