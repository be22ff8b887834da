"""``agentracer replay``: re-run a recorded trajectory from step T with a replaced action."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click

from ..compare import compare, outcome_text
from ..errors import TeamRunError
from ..loading import load_team
from ..store import open_store
from ._io import check_output_store, read_one


def _json_option(text: str, option: str) -> Any:
    """The value of an option given as JSON; bad JSON is a usage error naming the option."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=f"'{option}'") from None


@click.command()
@click.argument("trajectory_file", type=click.Path(dir_okay=False))
@click.option("--team", "team_spec", required=True, help="MODULE:FACTORY that builds the team (traced or not).")
@click.option("--step", type=int, required=True, help="0-based step to replace; earlier steps are served.")
@click.option("--action", help="The replacement action (text).")
@click.option("--action-json", help="The replacement as JSON, e.g. a tool call: "
              '\'{"tool_calls": [{"name": "add", "arguments": {"x": 1}}]}\'.')
@click.option("--id", "trajectory_id", help="Which trajectory of the file (default: the first).")
@click.option("--serve-tools", is_flag=True, help="Also serve recorded tool results before the step.")
@click.option("--evaluator", "evaluator_spec", help="Ω to judge the replay: mbpp, math, exact or MODULE:FUNCTION "
              "(default: the traced team's own, else the one the recording was judged with).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Store to append the replay to.")
def replay(trajectory_file: str, team_spec: str, step: int, action: str | None, action_json: str | None,
           trajectory_id: str | None, serve_tools: bool, evaluator_spec: str | None, output: str) -> None:
    """Replay TRAJECTORY_FILE from --step with --action; zero live model calls before the step."""
    if (action is None) == (action_json is None):
        raise click.UsageError("give exactly one of --action and --action-json")
    replacement = action if action_json is None else _json_option(action_json, "--action-json")
    check_output_store(output)
    parent = read_one(trajectory_file, trajectory_id)
    team = load_team(team_spec, evaluator_spec)
    recorded = parent.metadata.get("evaluator")
    judged_as_recorded = team.evaluator is None and isinstance(recorded, str)
    if judged_as_recorded:  # judge the replay as the recording was judged
        team = load_team(team_spec, recorded)
    raised = None
    try:
        new = team.replay(parent, step=step, action=replacement, serve_tools=serve_tools)
    except TeamRunError as exc:  # the replayed team raised after the step: an outcome, as in ``trace``
        new, raised = exc.trajectory, exc
    if judged_as_recorded and raised is None:  # (a refused replay, or one whose team raised, was judged by nothing)
        click.echo(f"judged the replay with the recording's evaluator {recorded!r} (--evaluator to choose another)",
                   err=True)
    open_store(output).append(new)
    if raised is not None:
        click.echo(f"the replayed team raised; its trajectory was saved with the error: {new.outcome.error}",
                   err=True)
    stats = new.metadata.get("replay_stats", {})
    click.echo(f"replayed {parent.id} from step {step}: {len(new.steps)} steps, "
               f"{stats.get('cassette', 0)} served, {stats.get('live', 0)} live model calls; "
               f"outcome {outcome_text(new)}; wrote {new.id} to {output}")
    diff = shlex.join(["agentracer", "diff", output, trajectory_file, "--id", new.id])  # (pasted, it runs)
    click.echo(f"against the recording: {compare(parent, new).summary()} ({diff})")
