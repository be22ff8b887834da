"""What a run did, as a digest: equal for two recordings of one deterministic run (ids and times aside)."""

from __future__ import annotations

import hashlib
import json

from .schema import Trajectory, tool_calls_content


def run_content_key(trajectory: Trajectory) -> str:
    """A digest of what a run did: its task and each step's agent, kind, text, tool calls and tool results (not its
    id, times, usage or tool-call ids, which differ between two recordings of one deterministic run)."""
    steps = [[s.agent, s.kind, s.text, tool_calls_content(s.tool_calls),
              [(r.name, r.content, r.is_error) for r in s.tool_results]] for s in trajectory.steps]
    text = json.dumps([trajectory.task, steps], ensure_ascii=False, default=str, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
