"""What every importer does to a run it read from another tool's format: the secrets that tool kept come out."""

from __future__ import annotations

from ..redact import Redactor
from ..schema import Trajectory


def redacted(trajectory: Trajectory) -> Trajectory:
    """``trajectory`` with the secrets another tool kept (this environment's keys, key-shaped values, fields named
    like secrets) redacted, as agentracer's recorder redacts its own runs; itself when there were none."""
    data = trajectory.model_dump(mode="json")
    clean = Redactor()(data)
    return trajectory if clean == data else Trajectory.model_validate(clean)
