"""Replay: a plan (step t, replacement action) and a cassette of recorded model calls and tool results.

The cassette is keyed the way concurrent frameworks stay deterministic: by agent and that agent's call
index, with the request hash checked on every served call (vcrpy's matcher idea, kept strict).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ReplayError
from .schema import ModelCall, ToolResult, Trajectory


@dataclass(frozen=True)
class ReplayPlan:
    """Replay a run from ``step`` with ``action`` in place of what was done there.

    Steps before ``step`` are served from the recording (no live model call), step ``step`` carries
    ``action`` (a text, or a dict such as ``{"tool_calls": [{"name": ..., "arguments": {...}}]}``),
    later steps run live. ``serve_tools`` also serves recorded tool results before ``step``;
    ``strict`` turns a changed request or step before ``step`` into a ``ReplayDivergence``.
    """

    step: int
    action: Any
    serve_tools: bool = False
    strict: bool = True


class ResponseCodec(Protocol):
    """How a plugin turns its framework's model responses into JSON and back."""

    def encode(self, response: Any) -> Any:
        """The response as a JSON value made for this call (the recorder keeps it without copying)."""

    def decode(self, data: Any) -> Any: ...

    # Optional: ``encode_screened(response, text)``, the encoding as redaction would leave it, its strings passed
    # through ``text`` (the recorder's string redaction), or None to have the recorder redact ``encode``'s result.

    def replacement(self, action: Any, recorded: ModelCall | None) -> Any: ...


def json_copy(value: Any) -> Any:
    """A JSON-only copy of ``value`` (what JSON cannot hold becomes a string); a ``str`` is returned as it is."""
    if type(value) is str:
        return value
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


class Cassette:
    """Recorded model calls and tool results of one trajectory, indexed for replay."""

    def __init__(self, trajectory: Trajectory) -> None:
        self.trajectory = trajectory
        self._calls: dict[tuple[str, int], ModelCall] = {}
        self._last_output: dict[int, tuple[str, int]] = {}  # step -> its agent's last call that produced it
        for call in trajectory.model_calls():
            self._calls[(call.agent, call.call_index)] = call
            if call.produces_step and call.step is not None and trajectory.steps[call.step].agent == call.agent:
                last = self._last_output.get(call.step)
                if last is None or last[1] < call.call_index:
                    self._last_output[call.step] = (call.agent, call.call_index)
        self._tools: dict[tuple[str, int], tuple[int, ToolResult]] = {}
        self._tool_by_call: dict[tuple[str, str], list[int]] = {}  # (agent, tool call id) -> its results' numbers
        counts: dict[str, int] = {}
        for step in trajectory.steps:
            for result in step.tool_results:
                k = counts.get(step.agent, 0)
                counts[step.agent] = k + 1
                self._tools[(step.agent, k)] = (step.index, result)
                if result.call_id:  # (servers reuse ids across turns: call_0 in each)
                    self._tool_by_call.setdefault((step.agent, result.call_id), []).append(k)

    def call(self, agent: str, index: int) -> ModelCall | None:
        """The recorded call number ``index`` of ``agent``, if any."""
        return self._calls.get((agent, index))

    def replaced_call(self, step: int) -> tuple[str, int] | None:
        """(agent, call index) of the call whose output a replacement of ``step`` takes the place of: the step's
        agent's last call that produced it (earlier ones, as a Magentic-One ledger's fact sheet before its plan or a
        call that failed and was retried, are served as recorded)."""
        return self._last_output.get(step)

    def tool_result(self, agent: str, index: int) -> tuple[int, ToolResult] | None:
        """The recorded tool result number ``index`` of ``agent`` with the step it belongs to."""
        return self._tools.get((agent, index))

    def tool_result_number(self, agent: str, call_id: str, taken: set[int] | frozenset[int] = frozenset()
                           ) -> int | None:
        """The number of ``agent``'s recorded result of the tool call ``call_id`` (see ``tool_result``) that is not
        ``taken`` (a server that reuses ids has one per turn), if any."""
        return next((k for k in self._tool_by_call.get((agent, call_id), ()) if k not in taken), None)

    def __len__(self) -> int:
        return len(self._calls)


_VOLATILE = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"  # a UUID
    r"|\b[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}\b"  # a random UUID's hex (uuid4().hex)
    r"|\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"  # an ISO date and time
    # a file named by its compact date-time, 20261129061458.json (not any 14-digit number: a balance stays itself)
    r"|\b(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:[01]\d|2[0-3])[0-5]\d[0-5]\d(?=\.[A-Za-z]\w{0,5}\b)"
    # an object's address in Python's default repr, <Helper object at 0x7f3a…> (a tool description or a prompt that
    # shows an object: another address in every process)
    r"|(?<= at )0x[0-9a-fA-F]{6,16}(?=>)"
)


def differs_only_in_ids_and_times(recorded: Any, actual: Any) -> bool:
    """Whether two requests (or step contents) differ, and only in UUIDs and date-times (ISO, or compact as
    ``%Y%m%d%H%M%S`` naming a file): what a framework writes fresh into a prompt on every run (CAMEL's retry prompt names the worker
    clones it made, by uuid, and the time of each attempt; MetaGPT names each document it saves by the second) says
    nothing about what the agent was asked. Equal values do not qualify (a recorded request
    equal to the replay's, with another hash, was edited or hashed another way)."""
    def masked(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
        return _VOLATILE.sub("\x00", text)

    return recorded != actual and masked(recorded) == masked(actual)


_SCHEMA_SETS = ("enum", "required")
"""A JSON schema's lists whose order says nothing: a ``Literal`` of a set's members (or a list built from a set)
lists them in another order in every process (hash randomisation)."""
_SCHEMA_VALUES = frozenset({"default", "const", "examples"})  # values, not schemas: an "enum" key in one is data
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


def _schema_in_order(node: Any) -> Any:
    """A tool's schema with its ``enum`` and ``required`` lists sorted (by their items' JSON), all else as it is."""
    if isinstance(node, list):
        return [_schema_in_order(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[Any, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_SETS and isinstance(value, list):
            out[key] = sorted(value, key=lambda item: json.dumps(item, sort_keys=True, default=str))
        elif key in _SCHEMA_VALUES:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):  # (names, each holding a schema: a parameter "default")
            out[key] = {name: _schema_in_order(schema) for name, schema in value.items()}
        else:
            out[key] = _schema_in_order(value)
    return out


def differs_only_in_schema_order(recorded: Any, actual: Any) -> bool:
    """Whether two requests differ, and only in the order of the ``enum`` and ``required`` lists of the tools they
    offer (``"tools"``): the same offer made by another process. Equal requests do not qualify (see
    ``differs_only_in_ids_and_times``)."""
    if not (isinstance(recorded, dict) and isinstance(actual, dict)) or recorded.keys() != actual.keys():
        return False
    tools, offered = recorded.get("tools"), actual.get("tools")
    return tools != offered and all(recorded[key] == actual[key] for key in recorded if key != "tools") and (
        _schema_in_order(tools) == _schema_in_order(offered))


def request_diff(recorded: Any, actual: Any, *, context: int = 2, limit: int = 40, width: int = 160) -> str:
    """A readable unified diff between a recorded and an actual request (or step content); a long line (a system
    prompt is one line of JSON) is cut to ``width`` characters around its first difference from its counterpart."""

    def lines(obj: Any) -> list[str]:
        text = obj if isinstance(obj, str) else json.dumps(obj, indent=1, sort_keys=True, default=str, ensure_ascii=False)
        return text.splitlines()

    diff = list(difflib.unified_diff(lines(recorded), lines(actual), "recorded", "replay", n=context, lineterm=""))
    if len(diff) > limit:
        diff = diff[:limit] + [f"... ({len(diff) - limit} more diff lines)"]
    return "\n".join(_clipped(diff, width))


def _clipped(diff: list[str], width: int) -> list[str]:
    """Diff lines cut to ``width``: a removed line and the added line after it around where they first differ."""
    out = list(diff)
    for i, line in enumerate(diff):
        if len(line) <= width or line.startswith(("---", "+++", "@@")):
            continue
        partner = diff[i + 1] if line.startswith("-") and i + 1 < len(diff) else (
            diff[i - 1] if line.startswith("+") and i > 0 else "")
        if partner[:1] not in ("-", "+") or partner[:1] == line[:1]:
            partner = ""
        first = _first_real_difference(line[1:], partner[1:]) if partner else 0
        start = max(0, first - width // 2)
        body = line[1 + start:1 + start + width]
        out[i] = f"{line[0]}{'…' if start else ''}{body}{'…' if 1 + start + width < len(line) else ''}"
    return out


def _first_real_difference(line: str, partner: str) -> int:
    """Where ``line`` first differs from ``partner``, passing over the UUIDs and date-times of the same length at the
    same place in both (a replay diverges on what else differs: the diff shows that)."""
    at = 0
    while True:
        mine, theirs = _VOLATILE.search(line, at), _VOLATILE.search(partner, at)
        end = min(mine.start() if mine else len(line), theirs.start() if theirs else len(partner))
        differs = next((k for k in range(at, end) if line[k] != partner[k]), None)
        if differs is not None:
            return differs
        if not (mine and theirs and mine.start() == theirs.start() == end and mine.end() == theirs.end()):
            return max(0, min(end, len(line) - 1))
        at = mine.end()


_TOOL_CALLS_TYPOS = frozenset({"toolcall", "toolcalls", "functioncall", "functioncalls"})


def check_plan(trajectory: Trajectory, plan: ReplayPlan) -> None:
    """Raise ``ReplayError`` when the plan cannot apply to the trajectory."""
    n = len(trajectory.steps)
    if n == 0:
        raise ReplayError(f"trajectory {trajectory.id} has no steps to replay")
    if type(plan.step) is not int:
        raise ReplayError(f"the replayed step must be a step index (an int), got {plan.step!r}")
    if not 0 <= plan.step < n:
        raise ReplayError(f"step {plan.step} is out of range: trajectory {trajectory.id} has steps 0..{n - 1}")
    check_action(plan.action)
    if isinstance(plan.action, dict) and TOOL_RESULTS in plan.action:
        check_tool_results_action(trajectory, plan)
    if trajectory.steps[plan.step].kind == "tool_result" and isinstance(plan.action, dict) and "tool_calls" in plan.action:
        raise ReplayError(f"step {plan.step} is a tool result: its replacement is what the tool returned (a text or a "
                          f"JSON value), not tool calls; the call that asked for it is an earlier step")
    if plan.step > 0 and not trajectory.model_calls():
        why = ("its team made none before it ended" if "team" in trajectory.metadata and trajectory.framework
               else "a run imported from another format, not recorded by agentracer.trace")
        raise ReplayError(
            f"trajectory {trajectory.id} has no recorded model calls ({why}): a replay serves the steps before "
            f"{plan.step} from its recorded model calls, so only a recorded run that asked its models can be replayed "
            "from a later step (replace step 0 to run it again on another task)")


TOOL_RESULTS = "tool_results"  # an action that replaces some results of a step holding several: {call id: result}


def replaced_tool_result(action: Any, recorded: ToolResult | None) -> tuple[bool, Any]:
    """(True, what the tool returns instead) for a tool result of the replaced step: the whole action, or under a
    ``{"tool_results": {call id or tool name: result}}`` action the entry for this result; (False, None) for a
    result that action leaves alone (its tool runs, or is served with ``serve_tools``)."""
    if not (isinstance(action, dict) and set(action) == {TOOL_RESULTS}):
        return True, action
    given = action[TOOL_RESULTS]
    for key in (recorded.call_id, recorded.name) if recorded is not None else ():
        if key and key in given:
            return True, given[key]
    return False, None


def tool_results_example(call_id: str) -> str:
    """A ``tool_results`` action naming ``call_id``, as JSON (what ``--action-json`` takes)."""
    return json.dumps({TOOL_RESULTS: {call_id: "..."}})


def check_tool_results_action(trajectory: Trajectory, plan: ReplayPlan) -> None:
    """A ``{"tool_results": {...}}`` action replaces results of a tool-result step, each named once, by its tool
    call's id (or its tool's name, when one call of that tool is in the step), with a text or a JSON object (as an
    action is), and holds nothing else."""
    step = trajectory.steps[plan.step]
    given = plan.action[TOOL_RESULTS]
    if set(plan.action) != {TOOL_RESULTS}:
        raise ReplayError(f"a {TOOL_RESULTS!r} action holds nothing else, got keys {sorted(map(str, plan.action))}")
    if step.kind != "tool_result" or not step.tool_results:
        raise ReplayError(f"a {TOOL_RESULTS!r} action replaces results of a tool-result step; step {plan.step} is a "
                          f"{step.kind} step of {step.agent!r}")
    if not isinstance(given, dict) or not given:
        raise ReplayError(f"{TOOL_RESULTS!r} maps tool call ids to the results that replace theirs, e.g. "
                          f"{tool_results_example(step.tool_results[0].call_id)}")
    ids = [r.call_id for r in step.tool_results]
    names = [r.name for r in step.tool_results]
    named: dict[str, str] = {}  # call id -> the key that named it
    for key, value in given.items():
        if key in ids:
            call_id = key
        elif key in names and names.count(key) > 1:
            raise ReplayError(f"step {plan.step} holds {names.count(key)} results of tool {key!r}: name the one to "
                              f"replace by its call id ({', '.join(i for i, n in zip(ids, names, strict=True) if n == key)})")
        elif key in names:
            call_id = ids[names.index(key)]
        else:
            raise ReplayError(f"step {plan.step} holds no result of a tool call {key!r}; its results: "
                              + ", ".join(f"{i} ({n})" for i, n in zip(ids, names, strict=True)))
        if call_id in named:
            raise ReplayError(f"{TOOL_RESULTS!r} names the result of call {call_id} twice ({named[call_id]!r} and "
                              f"{key!r}): give it once")
        named[call_id] = key
        if not isinstance(value, str | dict):
            raise ReplayError(f"the result for {key!r} is a text or a JSON object (as an action is), got "
                              f"{type(value).__name__} {value!r:.60}")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ReplayError(f"the result for {key!r} is not JSON: {exc}") from None


def check_action(action: Any) -> None:
    """Raise ``ReplayError`` unless ``action`` is a replacement every plugin reads: a text, a tool-call action
    ``{"tool_calls": [{"name": ..., "arguments": {...}}]}``, or another JSON object (a structured output)."""
    if action is None:
        raise ReplayError("a replay needs an action for the replaced step")
    if isinstance(action, str):
        return
    if not isinstance(action, dict):
        raise ReplayError(f"an action is a text or a JSON object (e.g. {{\"tool_calls\": [...]}}), got "
                          f"{type(action).__name__} {action!r:.80}")
    for key in action:
        if key != "tool_calls" and isinstance(key, str) and \
                key.lower().replace("_", "").replace("-", "") in _TOOL_CALLS_TYPOS:
            raise ReplayError(f"the action has {key!r}: a tool-call action is {{\"tool_calls\": [...]}}")
    if "tool_calls" in action:
        _check_tool_calls(action["tool_calls"])


def _check_tool_calls(calls: Any) -> None:
    if not isinstance(calls, list) or not calls:
        raise ReplayError("a tool-call action needs a non-empty list under 'tool_calls'")
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
            raise ReplayError(f"tool_calls[{i}] of a tool-call action needs a 'name' (a non-empty string), "
                              f"got {call!r:.80}")
        if not isinstance(call.get("arguments", {}), dict | str):
            raise ReplayError(f"tool_calls[{i}] of a tool-call action: 'arguments' must be a JSON object (or its "
                              "JSON text)")


def _tool_name(tool: Any) -> str:
    """A tool's name as a request lists it: a name, or an OpenAI tool schema."""
    if isinstance(tool, dict):
        function = tool.get("function")
        return str((function if isinstance(function, dict) else tool).get("name"))
    return str(tool)


def check_described_tools(parent: Trajectory, fresh: Trajectory, plan: ReplayPlan) -> None:
    """A tool-call replacement names tools its agent has (as the fresh team describes them; an agent that lists none
    is not judged here): a typo is refused before anything runs; it would run as the team's own tool error."""
    calls = plan.action.get("tool_calls") if isinstance(plan.action, dict) else None
    if not isinstance(calls, list):
        return
    agent = parent.steps[plan.step].agent
    tools = next((set(a.tools) for a in fresh.agents if a.name == agent), set())
    unknown = [c["name"] for c in calls if isinstance(c, dict) and c.get("name") not in tools]
    if tools and unknown:
        raise ReplayError(f"the action for step {plan.step} calls {', '.join(map(repr, unknown))}, which "
                          f"{agent!r} does not have (its tools: {', '.join(sorted(tools))})")


def check_offered_tools(cassette: Cassette, plan: ReplayPlan) -> None:
    """A tool-call replacement calls only tools the model call it replaces was offered (its recorded request's
    ``tools``; none there, none offered: a reflection on tool results, a tool-less agent). For plugins whose recorded
    requests list the tools they offer; anything else would fail inside the team."""
    calls = plan.action.get("tool_calls") if isinstance(plan.action, dict) else None
    replaced = cassette.replaced_call(plan.step)
    recorded = cassette.call(*replaced) if replaced is not None else None
    if recorded is None or not isinstance(calls, list):
        return
    offered = [_tool_name(tool) for tool in recorded.request.get("tools") or []]
    unknown = [str(c.get("name")) for c in calls if isinstance(c, dict) and c.get("name") not in offered]
    if unknown:
        raise ReplayError(
            f"the action for step {plan.step} calls {', '.join(map(repr, unknown))}, but the model call it replaces "
            f"({recorded.agent!r}) was offered " + (f"only {', '.join(offered)}" if offered else
                                                      "no tools: its replacement must be a text"))
