"""What every importer does to a run it read from another tool's format: the secrets that tool kept come out, and
text no JSON file can hold is mended or refused by name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import InputError
from ..redact import REPAIRED_KEY, Redactor, mend_value, repaired_note
from ..schema import Trajectory

__all__ = ["REPAIRED_KEY", "redacted", "redacted_records"]


def redacted(trajectory: Trajectory, *, where: str | None = None, ground_truth_too: bool = False) -> Trajectory:
    """``trajectory`` with the secrets another tool kept (this environment's keys, key-shaped values, fields named
    like secrets) redacted, as agentracer's recorder redacts its own runs; itself when there were none. The ground
    truth is kept as given, as the recorder keeps it (Ω and a tracer's prompt with G need it whole), unless
    ``ground_truth_too`` (what leaves agentracer: an export).

    A run no JSON can hold (``InputError`` naming ``where``, else the run, if it cannot be mended): half an emoji
    (a lone surrogate, as a model cut mid-character writes it) becomes U+FFFD, counted under
    ``metadata["repaired_text"]``; a value nested too deep is refused."""
    kept = set() if ground_truth_too else {"ground_truth"}
    try:
        text = trajectory.model_dump_json(exclude=kept)
        if kept:  # (the ground truth must be writable too)
            trajectory.model_dump_json(include=kept)
    except ValueError as exc:  # (pydantic's serialization error)
        trajectory = _mended(trajectory, exc, where)
        text = trajectory.model_dump_json(exclude=kept)
    redactor = Redactor()
    if not redactor.may_hold_secret(text):
        return trajectory  # (the fast screen: most runs hold nothing like a secret)
    data = trajectory.model_dump(mode="json", exclude=kept)
    clean = redactor(data)
    if clean == data:
        return trajectory
    return Trajectory.model_validate(clean if ground_truth_too else {**clean, "ground_truth": trajectory.ground_truth})


def redacted_records(records: Iterable[tuple[str, Trajectory | InputError]]
                     ) -> Iterator[tuple[str, Trajectory | InputError]]:
    """(place, trajectory or its error) with each trajectory ``redacted`` (one no JSON can hold: its error)."""
    for where, item in records:
        if isinstance(item, Trajectory):
            try:
                item = redacted(item, where=where)
            except InputError as exc:
                item = exc
        yield where, item


def _mended(trajectory: Trajectory, problem: ValueError, where: str | None) -> Trajectory:
    """``trajectory`` with its lone surrogates replaced; ``InputError`` for any other reason it cannot be written."""
    refused = InputError(f"run {trajectory.id} cannot be written as JSON: {str(problem).splitlines()[0][:200]}",
                         where=where or trajectory.id)
    if "surrogates not allowed" not in str(problem):
        raise refused from None
    try:
        data = trajectory.model_dump()
    except (ValueError, RecursionError):
        raise refused from None
    data, broken = mend_value(data)
    data["metadata"][REPAIRED_KEY] = repaired_note(broken)
    mended = Trajectory.model_validate(data)
    try:
        mended.model_dump_json()
    except ValueError as exc:
        raise InputError(f"run {trajectory.id} cannot be written as JSON: {str(exc).splitlines()[0][:200]}",
                         where=where or trajectory.id) from None
    return mended
