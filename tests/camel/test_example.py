"""examples/camel_roleplay.py runs offline, end to end, in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentracer import open_store

ROOT = Path(__file__).resolve().parents[2]


def test_roleplay_example_runs_offline(tmp_path: Path) -> None:
    out = tmp_path / "trajectories.jsonl"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "camel_roleplay.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "recorded: 8 steps, success=False" in done.stdout
    assert "replayed from step 3: 8 steps, success=True" in done.stdout
    assert "3 calls served from the recording, 4 live" in done.stdout
    recorded, fixed = list(open_store(out))
    assert fixed.replay.parent_id == recorded.id and fixed.steps[3].replaced
    assert "$16.00" in recorded.outcome.answer and "$15.00" in fixed.outcome.answer
