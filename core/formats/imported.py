"""What every importer does to a run it read from another tool's format: the secrets that tool kept come out."""

from __future__ import annotations

from ..redact import Redactor
from ..schema import Trajectory


def redacted(trajectory: Trajectory) -> Trajectory:
    """``trajectory`` with the secrets another tool kept (this environment's keys, key-shaped values, fields named
    like secrets) redacted, as agentracer's recorder redacts its own runs; itself when there were none. The ground
    truth is kept as given, as the recorder keeps it (Ω and a tracer's prompt with G need it whole)."""
    redactor = Redactor()
    if not redactor.may_hold_secret(trajectory.model_dump_json(exclude={"ground_truth"})):
        return trajectory  # (the fast screen: most runs hold nothing like a secret)
    data = trajectory.model_dump(mode="json", exclude={"ground_truth"})
    clean = redactor(data)
    if clean == data:
        return trajectory
    return Trajectory.model_validate({**clean, "ground_truth": trajectory.ground_truth})
