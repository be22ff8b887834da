"""Packed records (schema 2.0): each distinct message of a run's requests is written once and read back whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from agentracer import trace
from agentracer.errors import InputError
from agentracer.schema import ModelCall, Step, Trajectory, json_schema
from agentracer.schema.packing import TABLE_KEY
from agentracer.simple import SimpleAgent, SimpleTeam
from agentracer.store import open_store, parse_record


def _team() -> SimpleTeam:
    def say(messages: list[dict[str, Any]]) -> str:
        return f"turn {len(messages)}: " + "words " * 40

    return SimpleTeam([SimpleAgent("planner", say, system_prompt="plan"), SimpleAgent("coder", say)],
                      max_turns=24, stop_word=None)


@pytest.fixture(scope="module")
def run() -> Trajectory:
    return trace(_team).run("write the thing")


def _requests(trajectory: Trajectory) -> list[dict[str, Any]]:
    return [call.request for call in trajectory.model_calls()]


def test_a_record_writes_each_message_of_its_requests_once_and_reads_back_the_same_run(run: Trajectory) -> None:
    whole, packed = run.model_dump_json(), run.to_json()
    record = json.loads(packed)
    sent = [message for request in _requests(run) for message in request["messages"]]
    assert len(sent) > 2 * len(record[TABLE_KEY])  # (the conversation is re-sent with every call)
    assert len(record[TABLE_KEY]) == len({json.dumps(m, sort_keys=True) for m in sent})
    assert len(packed) * 2 < len(whole)
    back = Trajectory.from_json(packed)
    assert back == run and back.model_dump_json() == whole and back.request_messages is None
    assert [c.request_hash for c in back.model_calls()] == [c.request_hash for c in run.model_calls()]


def test_stores_write_packed_records_and_read_them_whole(run: Trajectory, tmp_path: Path) -> None:
    for name in ("runs.jsonl", "runs.db"):
        store = open_store(tmp_path / name)
        store.append(run)
        assert open_store(tmp_path / name).get(run.id) == run
    line = (tmp_path / "runs.jsonl").read_text(encoding="utf-8")
    assert TABLE_KEY in json.loads(line) and len(line) < len(run.model_dump_json())


def test_a_record_written_whole_still_reads(run: Trajectory) -> None:
    older = json.loads(run.model_dump_json()) | {"schema_version": "1.1"}
    assert Trajectory.model_validate(older) == run


def test_a_packed_record_meets_the_published_json_schema(run: Trajectory) -> None:
    jsonschema.validate(json.loads(run.to_json()), json_schema())


def test_equal_messages_that_are_different_objects_are_written_once() -> None:
    def call(k: int, messages: list[dict[str, str]]) -> ModelCall:
        return ModelCall(agent="a", call_index=k, step=k, request={"messages": messages, "model": "m"})

    first = [{"role": "user", "content": "hi"}]
    steps = [Step(index=0, agent="a", model_calls=[call(0, first)]),
             Step(index=1, agent="a", model_calls=[call(1, [dict(first[0]), {"role": "assistant", "content": "yo"}])])]
    trajectory = Trajectory(steps=steps, unattached_calls=[call(2, [dict(first[0])]),
                                                           ModelCall(agent="a", call_index=3, request={"prompt": "x"})])
    record = json.loads(trajectory.to_json())
    assert record[TABLE_KEY] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert record["unattached_calls"][0]["request"] == {"messages": [0], "model": "m"}
    assert record["unattached_calls"][1]["request"] == {"prompt": "x"}  # (no list of messages: as it was)
    assert Trajectory.from_json(json.dumps(record)) == trajectory


def test_a_run_without_lists_of_messages_is_written_as_before() -> None:
    trajectory = Trajectory(steps=[Step(index=0, agent="a", model_calls=[
        ModelCall(agent="a", call_index=0, request={"prompt": "x"})])])
    assert trajectory.to_json() == trajectory.model_dump_json()


@pytest.mark.parametrize(("damage", "said"), [
    (lambda r: r["steps"][1]["model_calls"][0]["request"].update(messages=[0, 999]),
     r"steps\[1\]\.model_calls\[0\]\.request\.messages\[1\] is '999', not a position in request_messages"),
    (lambda r: r["steps"][1]["model_calls"][0]["request"].update(messages=[{"role": "user"}]),
     r"request\.messages\[0\] is .*not a position"),
    (lambda r: r["steps"][1]["model_calls"][0]["request"].update(messages=[True]), r"is 'True', not a position"),
    (lambda r: r.update({TABLE_KEY: {"0": "x"}}), r"request_messages is a dict, not a list of messages"),
    (lambda r: r.pop(TABLE_KEY), r"steps\[1\]\.model_calls\[0\]\.request\.messages are positions in a "
                                 r"request_messages table the record does not have"),
])
def test_a_damaged_packed_record_is_refused_naming_the_request(run: Trajectory, damage: Any, said: str) -> None:
    record = json.loads(run.to_json())
    damage(record)
    with pytest.raises(InputError, match=said) as caught:
        parse_record(json.dumps(record), where="runs.jsonl:3")
    assert caught.value.where.startswith("runs.jsonl:3")


def test_a_script_reading_plain_json_gets_the_requests_whole_from_unpacked(run: Trajectory) -> None:
    from agentracer.schema.packing import unpacked

    record = json.loads(run.to_json())
    assert unpacked(record) == json.loads(run.model_dump_json())
    assert TABLE_KEY in record  # (the record read is left as it was)


def test_nan_and_infinities_in_a_message_are_written_as_json_null_as_a_whole_record_writes_them() -> None:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is no JSON")

    message = {"role": "tool", "content": {"mean": float("nan"), "max": float("inf"), "min": float("-inf")}}
    trajectory = Trajectory(steps=[Step(index=0, agent="a", model_calls=[
        ModelCall(agent="a", call_index=0, request={"messages": [message]})])])
    record = json.loads(trajectory.to_json(), parse_constant=refuse)
    assert record[TABLE_KEY] == [{"role": "tool", "content": {"mean": None, "max": None, "min": None}}]
    assert Trajectory.from_json(trajectory.to_json()) == Trajectory.from_json(trajectory.model_dump_json())
