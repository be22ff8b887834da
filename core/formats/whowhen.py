"""Who&When JSON ⇄ Trajectory, lossless: exporting an imported file gives back equal JSON.

Step ``i`` is ``history[i]`` (Who&When's ``mistake_step`` is already a 0-based index into ``history``).
The agent is ``name`` when present (Algorithm-Generated), else parsed from a Magentic-One role such as
``Orchestrator (-> WebSurfer)`` or ``Orchestrator (thought)`` (Hand-Crafted). Everything the schema has no
field for is kept under ``metadata["whowhen"]`` so the export can rebuild the file exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import InputError
from ..schema import (
    STEP_KINDS,
    AgentInfo,
    LabelSource,
    Step,
    StepKind,
    ToolCall,
    ToolResult,
    Trajectory,
    Verdict,
    new_id,
    outcome_fields,
    read_outcome,
)
from ..store import validation_message
from .imported import redacted

SUBSETS = ("Algorithm-Generated", "Hand-Crafted")
_ROLE = re.compile(r"^\s*(?P<agent>[^()]+?)\s*(?:\((?P<detail>[^)]*)\))?\s*$")
_LABEL_FIELDS = ("mistake_agent", "mistake_step", "mistake_reason")
_MAPPED_FIELDS = ("history", "question", "ground_truth", "ground_truth_json", "outcome", *_LABEL_FIELDS)
_STEP_KEYS = ("kind", "tool_calls", "tool_results")  # ours: Who&When readers ignore them
_AGENTS = "agents"  # ours too: each agent's description, model and tools, which Who&When's system_prompt has no room for
LABEL_SOURCES = ("human", "counterfactual", "injection", "tracer")


def agent_from_role(role: str) -> tuple[str, str | None]:
    """``'Orchestrator (-> WebSurfer)'`` → ``('Orchestrator', '-> WebSurfer')``; ``'WebSurfer'`` → (it, None)."""
    match = _ROLE.match(role or "")
    if not match:
        return role, None
    return match.group("agent").strip(), match.group("detail")


def role_kind(role: str) -> StepKind:
    """The kind of step a Who&When role names: ``Orchestrator (thought)`` a thought, ``Orchestrator (-> WebSurfer)``
    an instruction, any other a message."""
    return _kind(agent_from_role(role)[1], role)


def _kind(detail: str | None, role: str) -> StepKind:
    if detail is None:
        return "message"
    if detail.startswith("->"):
        return "instruction"
    if "thought" in detail:
        return "thought"
    return "message"


def _agent_and_kind(item: dict[str, Any]) -> tuple[str, str]:
    """The agent and kind a history item's ``name``/``role`` imply (before any ``kind`` key)."""
    if "name" in item:
        return str(item["name"]), "message"
    role = str(item.get("role") or "")
    agent, detail = agent_from_role(role)
    return agent, _kind(detail, role)


def _read_kind(value: Any, *, where: str) -> str:
    if not isinstance(value, str) or value not in STEP_KINDS:
        raise InputError(f"field 'kind' must be one of {sorted(STEP_KINDS)}, got {value!r}", where=where)
    return value


def _read_models(item: dict[str, Any], key: str, model: type[ToolCall] | type[ToolResult] | type[AgentInfo],
                 *, where: str) -> list[Any]:
    """``item[key]`` (a list of objects) as schema models; ``InputError`` names the entry that is wrong."""
    raw = item.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise InputError(f"field '{key}' must be a list of objects", where=where)
    try:
        return [model.model_validate(x) for x in raw]
    except ValidationError as exc:
        raise InputError(f"field '{key}': {validation_message(exc)}", where=where) from None


def _step_extras(step: Step, entry: dict[str, Any]) -> dict[str, Any]:
    """Our per-entry keys for a step: its kind when name/role don't imply it, its tool calls and results."""
    extras: dict[str, Any] = {}
    if step.kind != _agent_and_kind(entry)[1]:
        extras["kind"] = step.kind
    if step.tool_calls:
        extras["tool_calls"] = [c.model_dump(mode="json", exclude_defaults=True) for c in step.tool_calls]
    if step.tool_results:
        extras["tool_results"] = [r.model_dump(mode="json", exclude_defaults=True) for r in step.tool_results]
    return extras


def _ground_truth(trajectory: Trajectory, keys: list[str]) -> dict[str, Any]:
    """Who&When's string ``ground_truth``, plus ``ground_truth_json`` holding a structured one."""
    value = trajectory.ground_truth
    if value is None and "ground_truth" not in keys:
        return {}
    if value is None or isinstance(value, str) or ("ground_truth" in keys and "ground_truth_json" not in keys):
        return {"ground_truth": value}  # a file's own non-string value is written back as it was
    return {"ground_truth": json.dumps(value, ensure_ascii=False), "ground_truth_json": value}


def subset_of(path: Path) -> str | None:
    """The Who&When subset a file belongs to, judged by its folder names."""
    for part in reversed(path.parts):
        if part in SUBSETS:
            return part
    return None


def from_whowhen(data: Any, *, where: str, source_path: str | None = None) -> Trajectory:
    """A Trajectory from one parsed Who&When record; ``InputError`` names the field that is wrong."""
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, got {type(data).__name__}", where=where)
    history = data.get("history")
    if "history" not in data:
        raise InputError("missing field 'history'", where=where)
    if not isinstance(history, list):
        raise InputError(f"field 'history' must be a list, got {type(history).__name__}", where=where)
    steps: list[Step] = []
    for i, item in enumerate(history):
        if not isinstance(item, dict) or "content" not in item:
            raise InputError("each history item must be an object with 'content'", where=f"{where}: history[{i}]")
        role = item.get("role")
        agent, kind = _agent_and_kind(item)
        at = f"{where}: history[{i}]"
        kind = _read_kind(item["kind"], where=at) if "kind" in item else kind
        calls = _read_models(item, "tool_calls", ToolCall, where=at)
        results = _read_models(item, "tool_results", ToolResult, where=at)
        extra = {k: v for k, v in item.items() if k not in ("content", "role", "name", *_STEP_KEYS)}
        meta: dict[str, dict[str, Any]] = {"whowhen": {"keys": list(item), **({"extra": extra} if extra else {})}}
        if "role" in item:
            meta["whowhen"]["role"] = role
        if "name" in item:
            meta["whowhen"]["name"] = item["name"]
        steps.append(Step(index=i, agent=agent or "unknown", role=str(role or ""), kind=kind,  # type: ignore[arg-type]
                          content=item["content"], tool_calls=calls, tool_results=results,
                          metadata=meta))
    labels: list[Verdict] = []
    if any(f in data for f in _LABEL_FIELDS):
        raw_step = data.get("mistake_step")
        try:
            step = int(str(raw_step).strip())
        except ValueError:
            raise InputError(f"field 'mistake_step' must be an integer index, got {raw_step!r}", where=where) from None
        if not steps:
            raise InputError("field 'mistake_step' names a step of an empty history", where=where)
        if not 0 <= step < len(steps):
            raise InputError(f"field 'mistake_step' {step} is outside history (0..{len(steps) - 1})", where=where)
        if "mistake_agent" not in data:
            raise InputError("missing field 'mistake_agent'", where=where)
        if data["mistake_agent"] is None or isinstance(data["mistake_agent"], (dict, list, bool)):
            raise InputError(f"field 'mistake_agent' must be an agent's name, got {data['mistake_agent']!r}",
                             where=where)
        reason = data.get("mistake_reason")
        if reason is not None and not isinstance(reason, str):
            raise InputError(f"field 'mistake_reason' must be a string, got {type(reason).__name__}", where=where)
        source: LabelSource = data["label_source"] if data.get("label_source") in LABEL_SOURCES else "human"
        labels.append(Verdict(
            agent=str(data["mistake_agent"]), step=step, reason=data.get("mistake_reason"), source=source,
            metadata={"raw_step": raw_step, "raw_agent": data["mistake_agent"],
                      "fields": [f for f in _LABEL_FIELDS if f in data]},
        ))
    rest = {k: v for k, v in data.items() if k not in _MAPPED_FIELDS}
    subset = subset_of(Path(source_path)) if source_path else None
    trajectory_id = id_of(source_path) if source_path else str(data.get("question_ID") or "")
    metadata: dict[str, Any] = {
        "source_format": "whowhen",
        "whowhen": {"keys": list(data), "fields": rest},
    }
    if source_path:
        metadata["source_path"] = source_path
    if subset:
        metadata["subset"] = subset
    if "question_ID" in data:
        metadata["question_id"] = data["question_ID"]
    system_prompt = data.get("system_prompt")
    try:
        trajectory = Trajectory(
            id=trajectory_id or new_id(),
            task=data.get("question") if isinstance(data.get("question"), str) else None,
            ground_truth=data["ground_truth_json"] if "ground_truth_json" in data else data.get("ground_truth"),
            framework="magentic-one" if subset == "Hand-Crafted" else ("ag2" if subset else None),
            steps=steps,
            labels=labels,
            metadata=metadata,
        )
    except ValidationError as exc:
        raise InputError(validation_message(exc), where=where) from None
    if "outcome" in data:  # (a run recorded here: its feedback, error and answer, which the tracer's prompt shows)
        trajectory.outcome = read_outcome(data["outcome"], where=f"{where}: field 'outcome'")
    if isinstance(data.get("is_correct"), bool):
        trajectory.outcome.success = data["is_correct"]
    if _our_agents_key(data.get(_AGENTS)):
        trajectory.agents = _read_agents(data, where=where)
    elif isinstance(system_prompt, dict):
        trajectory.agents = [AgentInfo(name=str(k), system_prompt=str(v)) for k, v in system_prompt.items()]
    if "question" in data and not isinstance(data["question"], str):
        metadata["whowhen"]["question"] = data["question"]
    return redacted(trajectory, where=where)


def _our_agents_key(value: Any) -> bool:
    """Whether a file's ``agents`` key is the one this exporter writes (a list of objects naming agents); another
    tool's key of that name (a list of names, say) is kept as the file's own, as any key Who&When does not have."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in value)


def _read_agents(data: dict[str, Any], *, where: str) -> list[AgentInfo]:
    """The agents of our ``agents`` key, each with its prompt from ``system_prompt`` where its entry has none."""
    agents = _read_models(data, _AGENTS, AgentInfo, where=where)
    prompts = data.get("system_prompt")
    for agent, entry in zip(agents, data[_AGENTS], strict=True):
        if "system_prompt" not in entry and isinstance(prompts, dict) and agent.name in prompts:
            agent.system_prompt = str(prompts[agent.name])
    return agents


def _agent_entries(agents: list[AgentInfo], prompts: dict[str, str]) -> list[dict[str, Any]]:
    """Our ``agents`` key for a run's agents: empty when ``system_prompt`` (``prompts``) alone gives them back, else
    each agent's fields but the prompt ``prompts`` already holds."""
    if agents == [AgentInfo(name=k, system_prompt=v) for k, v in prompts.items()]:
        return []
    entries = []
    for agent in agents:
        entry = agent.model_dump(mode="json", exclude_defaults=True, exclude={"system_prompt"})
        if agent.system_prompt != prompts.get(agent.name):  # (an empty one, or agents sharing a name)
            entry["system_prompt"] = agent.system_prompt
        entries.append(entry)
    return entries


def load_whowhen(path: str | Path, *, root: str | Path | None = None) -> Trajectory:
    """Read one Who&When JSON file (``root`` makes the id and ``source_path`` relative to it)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # (a BOM, as some editors write, is no error)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, nesting too deep
        raise InputError(f"not valid JSON ({exc})", where=str(path)) from None
    relative = str(path.relative_to(root)) if root is not None else path.name
    if root is not None and subset_of(Path(relative)) is None and subset_of(path) is not None:
        relative = str(Path(subset_of(path) or "") / relative) if Path(root).name in SUBSETS else relative
    return from_whowhen(data, where=str(path), source_path=relative)


def iter_whowhen_dir(root: str | Path) -> Iterator[tuple[str, Trajectory | InputError]]:
    """(relative path, trajectory or the error that file gave) for every ``*.json`` under ``root``, but those in hidden
    folders (``.git``) and the temporary files of a writer killed mid-write (``.13.4242.1.tmp.json``)."""
    root = Path(root)
    if root.is_file():
        files = [root]
        root = root.parent
    else:
        files = sorted((p for p in root.rglob("*.json") if not _left_out(p.relative_to(root))),
                       key=lambda p: (str(p.parent), _natural(p.stem)))
    for file in files:
        relative = str(file.relative_to(root))
        try:
            yield relative, load_whowhen(file, root=root)
        except InputError as exc:
            yield relative, exc


_TEMPORARY = re.compile(r"\..*\.\d+\.\d+\.tmp\.json")  # (agentracer.atomic's name for a file being written)


def _left_out(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts[:-1]) or _TEMPORARY.fullmatch(relative.name) is not None


def _natural(stem: str) -> tuple[int, str]:
    return (int(stem), "") if stem.isdigit() else (1 << 30, stem)


def to_whowhen(trajectory: Trajectory) -> dict[str, Any]:
    """The Who&When record of a trajectory (equal to the original for imported ones)."""
    ww = trajectory.metadata.get("whowhen", {})
    history = []
    for step in trajectory.steps:
        info = step.metadata.get("whowhen", {})
        keys = info.get("keys") or (["content", "role", "name"] if trajectory.framework != "magentic-one"
                                    else ["content", "role"])
        values = {"content": step.content, "role": info.get("role", step.role),
                  "name": info.get("name", step.agent), **info.get("extra", {})}
        entry = {k: values[k] for k in keys if k in values}
        ours = _step_extras(step, entry)
        entry.update({k: ours.get(k, _empty(step, k)) for k in keys if k in _STEP_KEYS})
        history.append(entry | {k: v for k, v in ours.items() if k not in entry})
    record: dict[str, Any] = {"history": history}
    if "question" in ww:
        record["question"] = ww["question"]
    elif trajectory.task is not None:
        record["question"] = trajectory.task
    record.update(_ground_truth(trajectory, ww.get("keys", [])))
    # a run recorded here is written with its truth label only (a tracer's verdict written as mistake_* would be scored
    # against as the truth); a run read from a Who&When file goes back with the label it had (equal JSON)
    label = trajectory.training_label() or (trajectory.labels[0] if ww and trajectory.labels else None)
    if label is not None:
        raw_step = label.metadata.get("raw_step")
        step_value = raw_step if raw_step is not None and str(raw_step).strip() == str(label.step) else str(label.step)
        raw_agent = label.metadata.get("raw_agent")
        agent_value = raw_agent if raw_agent is not None and str(raw_agent) == label.agent else label.agent
        fields = label.metadata.get("fields", list(_LABEL_FIELDS))
        values = {"mistake_agent": agent_value, "mistake_step": step_value, "mistake_reason": label.reason}
        record.update({k: values[k] for k in fields})
    if label is not None and label.source != "human":  # Who&When's labels are people's: say where this one is from
        record["label_source"] = label.source
    if not ww:  # a run recorded here: what a Who&When record holds besides the history
        if trajectory.outcome.success is not None:
            record["is_correct"] = trajectory.outcome.success
        prompts = {agent.name: agent.system_prompt for agent in trajectory.agents if agent.system_prompt}
        if prompts:
            record["system_prompt"] = prompts
        agents = _agent_entries(trajectory.agents, prompts)
        if agents:
            record[_AGENTS] = agents
    if (not ww or "outcome" in ww.get("keys", ())) and outcome_fields(trajectory.outcome):
        record["outcome"] = outcome_fields(trajectory.outcome)  # (feedback, error: the tracer's prompt shows them)
    record.update(ww.get("fields", {}))
    if "question_ID" not in record and "question_id" in trajectory.metadata:
        record["question_ID"] = trajectory.metadata["question_id"]
    order = ww.get("keys")
    if order:
        record = {k: record[k] for k in order if k in record} | {k: v for k, v in record.items() if k not in order}
    return record


def _empty(step: Step, key: str) -> Any:
    """A key of ours the imported file had but that now carries nothing: its plain value."""
    return step.kind if key == "kind" else []


def export_path(trajectory: Trajectory) -> str:
    """Where a trajectory's Who&When file goes, relative to the export folder: its ``source_path`` if it was imported
    from one, else ``ID.json``, which imports as that id again. ``InputError`` naming the id if no file does."""
    source = trajectory.metadata.get("source_path")
    if source:
        return str(source)
    relative = f"{trajectory.id}.json"  # "team/run-1" -> team/run-1.json: importing the folder gives that id again
    why = _unexportable(trajectory.id, relative)
    if why:
        raise InputError(f"the id {trajectory.id!r} cannot be a Who&When file's path: {why}; nothing written for it")
    return relative


def id_of(relative: str) -> str:
    """The id of the run that the Who&When file at ``relative`` (to the folder imported) imports as."""
    return str(Path(relative).with_suffix(""))


def _unexportable(trajectory_id: str, relative: str) -> str | None:
    """Why the file ``relative`` would not import back as ``trajectory_id`` (None if it would)."""
    if "\\" in trajectory_id:
        return "a backslash is a folder separator on Windows"
    if any(part in ("", ".", "..") for part in trajectory_id.split("/")):
        return "an empty, '.' or '..' part is no file or folder name"
    if _left_out(Path(relative)):
        return ("import skips hidden folders" if any(p.startswith(".") for p in Path(relative).parts[:-1])
                else "import skips files named like a writer's temporary file")
    if id_of(relative) != trajectory_id:
        return f"it would import as {id_of(relative)!r}"
    return None
