"""The AutoGen examples run offline, as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(name: str) -> str:
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_quickstart_records_and_replays():
    text = _run("autogen_quickstart.py")
    assert "== recorded (5 steps)" in text and "== replayed from step 2 (5 steps)" in text
    assert "340 + 51 = 391 <- replaced" in text
    assert "prefix served from the recording: 1 model calls, live: 2" in text


@pytest.mark.parametrize("name", ["autogen_tools_http.py"])
def test_tool_example_over_http(name):
    text = _run(name)
    assert "[2] banker tool_result: 85.00 GBP" in text
    assert "after replacing the tool call at step 1: That is 108.00 USD." in text
