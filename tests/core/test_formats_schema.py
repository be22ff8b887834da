"""The published JSON Schema file matches the models, and records validate against it."""

from __future__ import annotations

import json
from pathlib import Path

import agentracer.schema as schema
import jsonschema
import pytest
from agentracer.schema import ModelCall, Step, ToolCall, ToolResult, Trajectory, Verdict

SHIPPED = Path(schema.__file__).with_name("trajectory.schema.json")
REGENERATE = ('.venv/bin/python -c "import json, agentracer.schema as s; '
              "open('core/schema/trajectory.schema.json', 'w').write("
              "json.dumps(s.json_schema(), indent=2, sort_keys=True) + '\\n')\"")


def test_shipped_schema_equals_the_models() -> None:
    assert json.loads(SHIPPED.read_text()) == schema.json_schema(), f"regenerate it: {REGENERATE}"


def _sample() -> dict:
    call = ModelCall(agent="a", call_index=0, step=0, request={"messages": [{"role": "user", "content": "hi"}]},
                     response="hello", request_hash="abc")
    step = Step(index=0, agent="a", content="hello", model_calls=[call],
                tool_calls=[ToolCall(id="1", name="add", arguments={"x": 1})],
                tool_results=[ToolResult(call_id="1", name="add", content=2)])
    trajectory = Trajectory(task="t", steps=[step], labels=[Verdict(agent="a", step=0, source="tracer")])
    return json.loads(trajectory.to_json())


def test_a_record_validates_against_the_shipped_schema() -> None:
    jsonschema.validate(_sample(), json.loads(SHIPPED.read_text()))


def test_the_shipped_schema_rejects_what_the_models_reject() -> None:
    record = _sample()
    record["steps"][0]["index"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, json.loads(SHIPPED.read_text()))
    record = _sample()
    record["labels"][0]["source"] = "guess"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, json.loads(SHIPPED.read_text()))


def test_the_shipped_schema_pins_the_versions_this_release_reads() -> None:
    record = _sample()
    record["schema_version"] = "9.9"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, json.loads(SHIPPED.read_text()))


@pytest.mark.parametrize("where", ["steps", "unattached"])
@pytest.mark.parametrize("step", [5, -1])
def test_a_model_call_on_no_step_is_refused_on_load(where: str, step: int) -> None:
    """A replay indexes the steps by its calls' `step`: a hand-edited one past the end made a bare IndexError (and a
    negative one silently named the last step's agent)."""
    record = _sample()
    call = record["steps"][0]["model_calls"][0]
    if where == "unattached":
        record["unattached_calls"] = [dict(call, step=step if step < 0 else 2)]
    else:
        call["step"] = step
    with pytest.raises(ValueError, match=r"model_calls\[0\].step|unattached_calls\[0\].step"):
        Trajectory.model_validate(record)
    record = _sample()
    record["unattached_calls"] = [dict(record["steps"][0]["model_calls"][0], step=1)]  # the step to come: fine
    Trajectory.model_validate(record)


def test_str_is_short_and_from_json_takes_a_byte_order_mark() -> None:
    record = _sample()
    trajectory = Trajectory.model_validate(record)
    assert str(trajectory) == repr(trajectory) and len(str(trajectory)) < 200
    assert str(trajectory.steps[0]) == repr(trajectory.steps[0])
    text = json.dumps(record)
    assert Trajectory.from_json("\ufeff" + text) == trajectory == Trajectory.from_json(b"\xef\xbb\xbf" + text.encode())
