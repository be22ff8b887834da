"""The shared trajectory schema: one shape for every framework's runs, labels and verdicts.

Everything is a pydantic v2 model; ``Trajectory.model_validate`` validates on load and rejects an unknown
``schema_version`` with a clear message. ``json_schema()`` returns the published JSON Schema (also shipped as
``agentracer/schema/trajectory.schema.json``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import compat
from .packing import packed_json, unpacked

_M = TypeVar("_M", bound="BaseModel")

SCHEMA_VERSION = "2.0"  # 1.1 added ModelCall.suspended; 2.0 packs the requests' messages (``schema.packing``)
SUPPORTED_SCHEMA_VERSIONS = frozenset({"1.0", "1.1", "2.0"})

LabelSource = Literal["human", "counterfactual", "injection", "tracer"]
StepKind = Literal[
    "message", "thought", "tool_call", "tool_result", "handoff", "summary", "instruction", "ledger", "event"
]


def new_id() -> str:
    """A fresh random identifier (hex uuid4)."""
    return uuid.uuid4().hex


_CALL_PREFIX = uuid.uuid4().hex[:12]
_call_counter = itertools.count()


def next_call_id() -> str:
    """A cheap identifier unique across processes (random per-process prefix and a counter)."""
    return f"{_CALL_PREFIX}{next(_call_counter):08x}"


def stable_hash(obj: Any) -> str:
    """A stable short hash of a JSON-able object (sorted keys, compact separators)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, protected_namespaces=())


STEP_KINDS = frozenset(StepKind.__args__)  # type: ignore[attr-defined]
_ALL_FIELDS: dict[type, set[str]] = {}
# pydantic keeps a model's state in these four slots; setting them through their descriptors skips the
# attribute lookup (and pydantic's own ``__setattr__``)
_SET_DICT, _SET_FIELDS_SET, _SET_EXTRA, _SET_PRIVATE = (
    BaseModel.__dict__[name].__set__
    for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"))
_new_object = object.__new__


def _all_fields(cls: type[BaseModel]) -> set[str]:
    names = _ALL_FIELDS[cls] = set(cls.model_fields)
    return names


def built(cls: type[_M], fields: dict[str, Any]) -> _M:
    """An instance of a schema model from *every* field's value, already checked by its maker.

    The recorder builds a step and its model calls on every turn of a team; pydantic's validation of values
    it made itself costs more than the rest of recording a step. The instance is the one ``cls(**fields)``
    would give (a test holds the two equal); loading a trajectory always validates.
    """
    obj = _new_object(cls)
    _SET_DICT(obj, fields)
    # every field is set, so instances of a class can share one set of all its names (adding one is a no-op)
    _SET_FIELDS_SET(obj, _ALL_FIELDS.get(cls) or _all_fields(cls))
    _SET_EXTRA(obj, None)
    _SET_PRIVATE(obj, None)
    return obj


class Usage(_Model):
    """Token usage of one model call or an aggregate of several (immutable: a step and the one model call that
    made it share theirs)."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ModelCall(_Model):
    """One request to a model and its response, as the framework saw them.

    ``request`` holds the messages and parameters (secrets removed); ``response`` is the plugin's JSON
    encoding of the framework's response object, enough to rebuild it on replay. ``request_hash`` is a stable
    hash of the normalised request (``agentracer.redact.request_hash``: ``v2:`` and 32 hex digits; 32 hex digits
    alone in recordings made with scheme 1), checked on replay with the scheme it was made with (a recording redacts and hashes its requests when the
    run finishes: until then they are the framework's own and the hash is empty). ``step`` is the index of
    the step this call belongs to (the step it produced, or for calls that produce no step, e.g. speaker
    selection, the next step). ``suspended``: whether a live call made in an event loop let the loop run other
    tasks before it returned (every network client does; a scripted one, or any sync call, does not), so that a replay
    serving it does the same and a team's concurrent agents take their recorded turns (None: not known, a recording
    made before schema 1.1).
    """

    id: str = Field(default_factory=next_call_id)
    agent: str
    call_index: int = Field(ge=0, description="0-based index of this call among the agent's calls in the run")
    step: int | None = None
    produces_step: bool = True
    model: str | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    response: Any = None
    request_hash: str = ""
    latency_s: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    started_at: float | None = None
    source: Literal["live", "cassette", "replacement"] = "live"
    error: str | None = None
    suspended: bool | None = None


class ToolCall(_Model):
    """A tool invocation requested by an agent."""

    id: str = ""
    name: str
    arguments: Any = None


def tool_calls_content(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """What a tool-call step shows of its calls: each one's name and arguments."""
    return [{"name": call.name, "arguments": call.arguments} for call in calls]


class ToolResult(_Model):
    """The result of executing a tool call."""

    call_id: str = ""
    name: str = ""
    content: Any = None
    is_error: bool = False


class Step(_Model):
    """One action in the conversation, numbered 0-based in the order a reader sees it."""

    index: int = Field(ge=0)
    agent: str
    role: str = "assistant"
    kind: StepKind = "message"
    content: Any = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)
    model_calls: list[ModelCall] = Field(default_factory=list)
    started_at: float | None = None
    ended_at: float | None = None
    usage: Usage = Field(default_factory=Usage)
    replaced: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    def __repr__(self) -> str:
        text = self.text
        short = text if len(text) <= 60 else text[:57] + "..."
        return f"Step(index={self.index}, agent={self.agent!r}, kind={self.kind!r}, content={short!r})"

    __str__ = __repr__

    @property
    def text(self) -> str:
        """The step's content as text (JSON for structured content)."""
        if isinstance(self.content, str):
            return self.content
        return json.dumps(self.content, ensure_ascii=False, default=str)


class AgentInfo(_Model):
    """An agent of the team: its name and what it was told."""

    name: str
    system_prompt: str | None = None
    description: str | None = None
    model: str | None = None
    tools: list[str] = Field(default_factory=list)


class Outcome(_Model):
    """The run's result: Ω (``success``), the environment's feedback and any error."""

    success: bool | None = None
    score: float | None = None
    answer: Any = None
    feedback: str | None = None
    error: str | None = None
    stop_reason: str | None = None


def outcome_fields(outcome: Outcome) -> dict[str, Any]:
    """An outcome's fields that say something (None left out), for formats that carry it as one JSON value."""
    return {k: v for k, v in outcome.model_dump().items() if v is not None}


def read_outcome(value: Any, *, where: str) -> Outcome:
    """An outcome from ``outcome_fields`` as a dict or its JSON text (None: an empty outcome); ``InputError`` naming
    ``where`` when it is neither."""
    from ..errors import InputError  # (the schema imports nothing of ours at module level)

    if value is None:
        return Outcome()
    try:
        data = json.loads(value) if isinstance(value, str) else value
        return Outcome.model_validate(data)
    except ValueError as exc:  # bad JSON, or fields of the wrong type (a ValidationError is a ValueError)
        raise InputError(f"not an outcome ({str(exc).splitlines()[0]})", where=where) from None


TRUTH_SOURCES = ("human", "counterfactual", "injection")
"""Label sources that say what went wrong, in order of trust (a tracer's verdict is a guess)."""


class Verdict(_Model):
    """Who caused the failure and at which step, with why and where the label came from."""

    agent: str
    step: int = Field(ge=0)
    reason: str | None = None
    source: LabelSource = "human"
    raw: str | None = None
    confidence: float | None = None
    flags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ReplayInfo(_Model):
    """How a replayed trajectory was made: its parent and the plan."""

    parent_id: str
    step: int = Field(ge=0)
    action: Any = None
    served_tools: bool = False


def _pin_versions(schema: dict[str, Any]) -> None:
    """The published schema names the versions this release reads (as loading checks them)."""
    schema["enum"] = sorted(SUPPORTED_SCHEMA_VERSIONS)


class Trajectory(_Model):
    """A whole run of a multi-agent team, with its outcome and any labels."""

    schema_version: str = Field(default=SCHEMA_VERSION, json_schema_extra=_pin_versions)
    id: str = Field(default_factory=new_id)
    task: str | None = None
    ground_truth: Any = None
    framework: str | None = None
    agents: list[AgentInfo] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    outcome: Outcome = Field(default_factory=Outcome)
    labels: list[Verdict] = Field(default_factory=list)
    replay: ReplayInfo | None = None
    unattached_calls: list[ModelCall] = Field(
        default_factory=list, description="model calls that no step followed (e.g. a last speaker selection)"
    )
    created_at: float = Field(default_factory=time.time)
    metadata: dict[str, Any] = Field(default_factory=dict)
    request_messages: list[Any] | None = Field(
        default=None, exclude=True,
        description="packed records only (schema 2.0, ``agentracer.schema.packing``): each distinct message of the "
                    "run's model requests, once; every request's messages are then their positions in this list. "
                    "Reading a record puts the requests back whole: a loaded trajectory never holds it")

    @model_validator(mode="before")
    @classmethod
    def _unpack_requests(cls, data: Any) -> Any:
        return unpacked(data) if isinstance(data, dict) else data

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            if compat.is_later_minor(value, SCHEMA_VERSION):
                raise ValueError(f"schema_version {value!r} is a later release's: Trajectory.from_json and the stores "
                                 "read it without the fields this release does not know")
            raise ValueError(
                f"unsupported schema_version {value!r}; this agentracer reads {sorted(SUPPORTED_SCHEMA_VERSIONS)}"
            )
        return SCHEMA_VERSION  # (an earlier minor version's record is one of this version once read: written back so)

    @model_validator(mode="after")
    def _check_indices(self) -> Trajectory:
        for position, step in enumerate(self.steps):
            if step.index != position:
                raise ValueError(f"steps[{position}].index is {step.index}, expected {position}")
        for i, label in enumerate(self.labels):
            if label.step >= len(self.steps):  # (a run with no step has no step to blame)
                raise ValueError(f"labels[{i}].step {label.step} is outside the {len(self.steps)} steps")
        for step in self.steps:
            for k, call in enumerate(step.model_calls):
                if call.step is not None and not 0 <= call.step < len(self.steps):
                    raise ValueError(f"steps[{step.index}].model_calls[{k}].step {call.step} is outside the "
                                     f"{len(self.steps)} steps")
        for k, call in enumerate(self.unattached_calls):
            if call.step is not None and not 0 <= call.step <= len(self.steps):  # (at most: the step to come)
                raise ValueError(f"unattached_calls[{k}].step {call.step} is outside the {len(self.steps)} steps")
        return self

    def __repr__(self) -> str:  # the full dump can be megabytes; keep reprs (and asyncio's logs) short
        outcome = self.outcome.success
        return (f"Trajectory(id={self.id!r}, framework={self.framework!r}, steps={len(self.steps)}, "
                f"success={outcome!r}, labels={len(self.labels)})")

    @property
    def agent_names(self) -> list[str]:
        """Agents in order of first appearance (declared agents first)."""
        names: list[str] = [a.name for a in self.agents]
        for step in self.steps:
            if step.agent not in names:
                names.append(step.agent)
        return names

    @property
    def human_label(self) -> Verdict | None:
        return next((v for v in self.labels if v.source == "human"), None)

    def label(self, source: str | None = None) -> Verdict | None:
        """The first label, or the first from ``source``."""
        return next((v for v in self.labels if source is None or v.source == source), None)

    def training_label(self) -> Verdict | None:
        """The label to learn from or export as the truth: a human one, else a counterfactual one, else an injected
        one; never a tracer's own verdict (``agentracer locate -o`` keeps its verdict as the first label)."""
        return next((label for source in TRUTH_SOURCES if (label := self.label(source)) is not None), None)

    def model_calls(self) -> list[ModelCall]:
        """Every model call of the run, in step order, then the unattached ones."""
        return [call for step in self.steps for call in step.model_calls] + list(self.unattached_calls)

    __str__ = __repr__  # (pydantic's str is the whole dump)

    def to_json(self) -> str:
        """The trajectory's record, as stores write it: each distinct message of its requests written once
        (``agentracer.schema.packing``; ``model_dump_json`` writes every request whole)."""
        return packed_json(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> Trajectory:
        """A trajectory from its JSON (a byte-order mark, as some editors write, is no error); one a later 1.x
        release wrote reads without the fields it added (``agentracer.schema.compat``), with a warning."""
        if isinstance(text, bytes):
            text = text.removeprefix(b"\xef\xbb\xbf")
        text = text.removeprefix("\ufeff") if isinstance(text, str) else text
        try:
            return cls.model_validate_json(text)
        except ValueError as error:  # (a later 1.x release's record reads without the fields it added)
            try:
                data = json.loads(text)
            except ValueError:
                raise error from None
            if not isinstance(data, dict) or not compat.is_later_minor(data.get("schema_version"), SCHEMA_VERSION):
                raise
            return cls.model_validate(compat.readable(data, cls, SCHEMA_VERSION, where="trajectory"))


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a trajectory record."""
    schema = Trajectory.model_json_schema()
    schema["$id"] = f"https://agentracer.dev/schema/trajectory-{SCHEMA_VERSION}.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


__all__ = [
    "SCHEMA_VERSION",
    "AgentInfo",
    "LabelSource",
    "ModelCall",
    "Outcome",
    "ReplayInfo",
    "Step",
    "StepKind",
    "ToolCall",
    "tool_calls_content",
    "outcome_fields",
    "read_outcome",
    "ToolResult",
    "Trajectory",
    "Usage",
    "Verdict",
    "json_schema",
    "new_id",
    "stable_hash",
]
