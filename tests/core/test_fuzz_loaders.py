"""Property tests: random and truncated JSON fed to every loader and to the CLI never escapes as a traceback.

Each loader either returns a valid Trajectory or raises ``InputError`` naming where; the CLI's import and
validate commands exit 2 with one line naming the file (or 0 when the input happens to be valid).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from agentracer.errors import InputError
from agentracer.formats.tracertraj import from_row, iter_tracertraj
from agentracer.formats.whowhen import from_whowhen, load_whowhen
from agentracer.schema import Trajectory
from agentracer.store import JsonlStore, parse_record
from cli_invoke import run_cli
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"
SAMPLE_WW = (DATA / "Algorithm-Generated" / "1.json").read_text()
SAMPLE_TRAJ = json.loads(load_whowhen(DATA / "Algorithm-Generated" / "1.json", root=DATA).to_json())
SAMPLE_ROW = {"question_ID": "q", "question": "?", "ground_truth": "1", "mistake_agent": "a", "mistake_step": 1,
              "mistake_reason": "r", "history": [{"content": "c", "name": "a", "role": "assistant", "step": 0},
                                                 {"content": "d", "name": "b", "role": "assistant", "step": 1}]}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
field_names = st.sampled_from(["history", "question", "question_ID", "ground_truth", "mistake_agent",
                               "mistake_step", "mistake_reason", "system_prompt", "content", "role", "name",
                               "step", "id", "steps", "labels", "schema_version", "index", "agent", "mistake_source"])


def _mutate(base: object, path_and_value: tuple[list[str], object]) -> object:
    """``base`` with the value at a random key path replaced (creating dicts on the way)."""
    keys, value = path_and_value
    data = json.loads(json.dumps(base))
    node = data
    for key in keys[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and node:
            node = node[0]
    if isinstance(node, dict) and keys:
        node[keys[-1]] = value
    elif isinstance(node, list) and node:
        node[0] = value
    return data


mutations = st.tuples(st.lists(field_names, min_size=1, max_size=3), json_values)


def _expect_trajectory_or_input_error(call, *args, **kwargs) -> None:  # noqa: ANN001
    try:
        result = call(*args, **kwargs)
    except InputError as exc:
        assert str(exc).strip() and "\n" not in str(exc).split(": ", 1)[0]
        return
    assert isinstance(result, Trajectory)


@FAST
@given(json_values)
def test_whowhen_loader_on_random_json(value: object) -> None:
    _expect_trajectory_or_input_error(from_whowhen, value, where="fuzz.json")


@FAST
@given(mutations)
@example((["mistake_reason"], []))
@example((["history", "name"], {"a": 1}))
@example((["mistake_step"], 1e300))
def test_whowhen_loader_on_mutated_records(mutation: tuple[list[str], object]) -> None:
    _expect_trajectory_or_input_error(from_whowhen, _mutate(json.loads(SAMPLE_WW), mutation), where="fuzz.json")


@FAST
@given(st.integers(min_value=0, max_value=len(SAMPLE_WW) - 1))
def test_whowhen_file_truncated_anywhere(cut: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.json"
        path.write_text(SAMPLE_WW[:cut])
        try:
            load_whowhen(path)
        except InputError as exc:
            assert str(path) in str(exc)
        else:
            raise AssertionError("a truncated file loaded")


@FAST
@given(json_values | mutations.map(lambda m: _mutate(SAMPLE_TRAJ, m)))
def test_trajectory_record_parser_on_random_json(value: object) -> None:
    _expect_trajectory_or_input_error(parse_record, json.dumps(value), where="fuzz.jsonl:1")


@FAST
@given(st.binary(max_size=200) | st.integers(0, 2000).map(lambda n: json.dumps(SAMPLE_TRAJ).encode()[:n]))
def test_trajectory_record_parser_on_random_bytes(raw: bytes) -> None:
    _expect_trajectory_or_input_error(parse_record, raw, where="fuzz.jsonl:1")


@FAST
@given(json_values | mutations.map(lambda m: _mutate(SAMPLE_ROW, m)))
def test_tracertraj_row_loader_on_random_json(value: object) -> None:
    _expect_trajectory_or_input_error(from_row, value, where="fuzz.jsonl:1")


@SLOW
@given(st.lists(st.binary(max_size=80) | json_values.map(lambda v: json.dumps(v).encode()), max_size=5))
def test_jsonl_store_and_tracertraj_file_streams_on_random_lines(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.jsonl"
        path.write_bytes(b"\n".join(lines))
        errors: list[InputError] = []
        good = list(JsonlStore(path).iter(errors=errors))
        assert all(str(path) in str(e) for e in errors)
        assert all(isinstance(t, Trajectory) for t in good)
        len(JsonlStore(path))  # indexing never raises either
        for _where, item in iter_tracertraj(path):
            assert isinstance(item, Trajectory | InputError)


@SLOW
@given(st.binary(max_size=300))
def test_parquet_loader_on_random_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.parquet"
        path.write_bytes(b"PAR1" + raw + b"PAR1")
        try:
            list(iter_tracertraj(path))
        except InputError as exc:
            assert str(path) in str(exc)


def test_deeply_nested_json_is_an_input_error(tmp_path: Path) -> None:
    deep = "[" * 200_000
    _expect_trajectory_or_input_error(parse_record, deep, where="deep.jsonl:1")
    (tmp_path / "deep.json").write_text(deep)
    _expect_trajectory_or_input_error(load_whowhen, tmp_path / "deep.json")


def _truncated_or_random(sample: str) -> st.SearchStrategy[str]:
    return (st.integers(0, len(sample) - 1).map(lambda n: sample[:n])
            | json_values.map(json.dumps) | st.text(max_size=50))


@SLOW
@given(_truncated_or_random(SAMPLE_WW) | mutations.map(lambda m: json.dumps(_mutate(json.loads(SAMPLE_WW), m))))
def test_cli_import_whowhen_on_bad_files(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in"
        source.mkdir()
        bad = source / "fuzzed.json"
        bad.write_text(text)
        (source / "good.json").write_text(SAMPLE_WW)
        try:
            load_whowhen(bad, root=source)
            expected = 0
        except InputError:
            expected = 2
        code, _, err = run_cli("import", "whowhen", str(source), "-o", str(Path(folder) / "out.jsonl"))
        assert "Traceback" not in err
        assert code == expected, err
        if expected:
            problems = [line for line in err.splitlines() if line.startswith("error:")]
            assert len(problems) == 1 and "fuzzed.json" in problems[0]
        assert "good" in {t.id for t in JsonlStore(Path(folder) / "out.jsonl")}


@SLOW
@given(st.lists(_truncated_or_random(json.dumps(SAMPLE_TRAJ))
                | mutations.map(lambda m: json.dumps(_mutate(SAMPLE_TRAJ, m))), min_size=1, max_size=3))
def test_cli_validate_on_bad_records(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.jsonl"
        path.write_text("\n".join(line.replace("\n", " ") for line in lines) + "\n")
        errors: list[InputError] = []
        parsed = list(JsonlStore(path).iter(errors=errors))
        good = [t for t in parsed if {"id", "steps"} <= t.model_fields_set]  # validate needs both named
        duplicates = len(good) - len({t.id for t in good})
        code, _, err = run_cli("validate", str(path))
        assert "Traceback" not in err
        problems = [line for line in err.splitlines() if line.startswith("error:")]
        empty = not parsed and not errors  # a file with no record at all is a problem of its own
        assert len(problems) == len(errors) + len(parsed) - len(good) + duplicates + empty
        assert all(str(path) in p for p in problems)
        assert code == (2 if problems else 0)


@SLOW
@given(st.lists(json_values | mutations.map(lambda m: _mutate(SAMPLE_ROW, m)), min_size=1, max_size=3))
def test_cli_import_tracertraj_on_bad_rows(rows: list[object]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        items = list(iter_tracertraj(path))
        bad = sum(isinstance(item, InputError) for _, item in items)
        code, _, err = run_cli("import", "tracertraj", str(path), "-o", str(Path(folder) / "out.db"))
        assert "Traceback" not in err
        problems = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(problems) == bad and all("fuzzed.jsonl" in p for p in problems)
        assert code == (2 if bad else 0)


def _otlp_sample() -> dict:
    """One OTLP/JSON request holding a Who&When run's spans, shortened, and a foreign span beside it."""
    from agentracer.formats.openinference import otlp_json_request, trajectory_spans

    run = load_whowhen(DATA / "Algorithm-Generated" / "1.json", root=DATA)
    run.steps = run.steps[:2]
    run.labels = [label for label in run.labels if label.step < 2]
    request = otlp_json_request(trajectory_spans(run))
    request["resourceSpans"][0]["scopeSpans"][0]["spans"].append({
        "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "llm", "startTimeUnixNano": "1", "endTimeUnixNano": "2",
        "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                       {"key": "llm.output_messages.0.message.content", "value": {"stringValue": "hi"}}]})
    return request


SAMPLE_OTLP = _otlp_sample()
otlp_fields = st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "parentSpanId",
                               "attributes", "key", "value", "stringValue", "intValue", "arrayValue", "status",
                               "code", "startTimeUnixNano", "name"])


def _mutate_otlp(mutation: tuple[list[str], object]) -> object:
    """A deep key of the sample (lists followed at their first item) replaced by a random value."""
    keys, value = mutation
    return _mutate(SAMPLE_OTLP, (keys, value))


def _mutate_span(mutation: tuple[int, str, object]) -> object:
    """One field of one span of the sample, or one of its attributes' values, replaced by a random value."""
    index, name, value = mutation
    data = json.loads(json.dumps(SAMPLE_OTLP))
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    span = spans[index % len(spans)]
    attributes = span.get("attributes", [])
    if name == "attribute" and attributes:
        attributes[hash(json.dumps(value)) % len(attributes)]["value"] = value
    else:
        span[name] = value
    return data


span_mutations = st.tuples(st.integers(0, 50), st.sampled_from(
    ["traceId", "spanId", "parentSpanId", "name", "startTimeUnixNano", "endTimeUnixNano", "attributes", "status",
     "attribute", "attribute", "attribute"]), json_values | st.dictionaries(
    st.sampled_from(["stringValue", "intValue", "boolValue", "doubleValue", "arrayValue"]), json_values, max_size=1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_values.map(json.dumps)
                | st.tuples(st.lists(otlp_fields, min_size=1, max_size=6), json_values).map(
                    lambda m: json.dumps(_mutate_otlp(m)))
                | span_mutations.map(lambda m: json.dumps(_mutate_span(m)))
                | st.integers(0, 3000).map(lambda n: json.dumps(SAMPLE_OTLP)[:n]), min_size=1, max_size=3))
def test_otlp_reader_on_random_and_mutated_requests(lines: list[str]) -> None:
    from agentracer.formats.otlp_import import iter_otlp

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.jsonl"
        path.write_text("\n".join(line.replace("\n", " ") for line in lines) + "\n")
        for where, item in iter_otlp(path):
            assert isinstance(item, Trajectory | InputError), item
            if isinstance(item, InputError):
                assert str(path) in str(item) and str(path) in where
        code, _, err = run_cli("import", "openinference", str(path), "-o", str(Path(folder) / "out.jsonl"))
        assert "Traceback" not in err and code in (0, 2)
