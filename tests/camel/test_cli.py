"""``agentracer replay --team module:factory`` replays a recorded CAMEL trajectory from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import agentracer
import pytest
from agentracer import open_store
from agentracer.cli import main
from camel_teams import calculator_team


def test_cli_replay_of_a_camel_trajectory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = tmp_path / "recorded.jsonl"
    open_store(recorded).append(agentracer.trace(calculator_team).run("Please add 2 and 3"))
    out = tmp_path / "replayed.jsonl"

    action = json.dumps({"tool_calls": [{"name": "mul", "arguments": {"a": 2, "b": 3}}]})
    main(["replay", "--team", "camel_teams:calculator_team", str(recorded), "--step", "1",
          "--action-json", action, "-o", str(out)])

    (new,) = list(open_store(out))
    assert new.framework == "camel" and new.steps[1].tool_calls[0].name == "mul"
    assert new.steps[-1].content == "The sum is 6."
    assert "replayed" in capsys.readouterr().out


def test_cli_replay_step_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = tmp_path / "recorded.jsonl"
    open_store(recorded).append(agentracer.trace(calculator_team).run("Please add 2 and 3"))
    with pytest.raises(SystemExit) as info:
        main(["replay", "--team", "camel_teams:calculator_team", str(recorded), "--step", "9", "--action", "x",
              "-o", str(tmp_path / "out.jsonl")])
    assert info.value.code == 2
    assert "out of range" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()
