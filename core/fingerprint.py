"""What a run did, as a digest: equal for two recordings of one deterministic run (ids and times aside)."""

from __future__ import annotations

import hashlib
import json
import re

from .schema import Trajectory, tool_calls_content

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _stable(value: object) -> object:
    """What JSON cannot hold, the same in every process: a set sorted, an object as its text without its address."""
    if isinstance(value, set | frozenset):
        return sorted((_stable(v) if not isinstance(v, str | int | float) else v for v in value), key=repr)
    return _ADDRESS.sub("", str(value))


def stable_json(value: object) -> str:
    """Canonical JSON of ``value`` for a digest: sorted keys, and what JSON cannot hold made stable across processes
    (a set's order follows the hash seed; an object's repr holds its memory address)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_stable)


def stable_digest(value: object, length: int = 64) -> str:
    """The SHA-256 of ``stable_json(value)``, its first ``length`` hex digits."""
    return hashlib.sha256(stable_json(value).encode("utf-8")).hexdigest()[:length]


def run_content_key(trajectory: Trajectory) -> str:
    """A digest of what a run did: its task and each step's agent, kind, text, tool calls and tool results (not its
    id, times, usage or tool-call ids, which differ between two recordings of one deterministic run)."""
    steps = [[s.agent, s.kind, s.text, tool_calls_content(s.tool_calls),
              [(r.name, r.content, r.is_error) for r in s.tool_results]] for s in trajectory.steps]
    return stable_digest([trajectory.task, steps])


def task_key(trajectory: Trajectory) -> str | int | None:
    """The task a run attempts, the same for every run of it whatever format carried it: the ``question_id`` it was
    read or traced with (a Who&When or TracerTraj number stays a number), else its ``task_id`` (refine's rounds add
    feedback to the task text), else a digest of its task text (``task:`` and 16 hex digits); None for a run with
    no task, which is a task of its own. Dataset splits go by it, and TracerTraj writes it as ``question_ID``, so that
    two runs of one task never land on both sides of a split."""
    for key in ("question_id", "task_id"):  # (a traced tasks file's row id; refine's rounds, whose text grows)
        named = trajectory.metadata.get(key)
        if named not in (None, "") and not isinstance(named, bool) and isinstance(named, int | str):
            return named
    if trajectory.task:
        return "task:" + hashlib.sha256(trajectory.task.encode("utf-8")).hexdigest()[:16]
    return None
