"""Replays as Ray tasks on a local Ray instance: the same labels as in-process replays."""

from __future__ import annotations

from pathlib import Path

import agentracer
import pytest
from agentracer.annotate import AnnotationPipeline, CounterfactualSearch, LocalReplayer, TaskRow
from agentracer.models import ScriptedModel
from annotate_teams import chain_analyzer, chain_evaluator, make_task_chain

TEAM = f"{Path(__file__).with_name('annotate_teams.py')}:make_task_chain"
EVAL = f"{Path(__file__).with_name('annotate_teams.py')}:chain_evaluator"


@pytest.fixture(scope="module")
def ray_replayer():
    from agentracer.annotate.ray_replayer import RayReplayer

    replayer = RayReplayer(TEAM, EVAL, address="local", max_in_flight=2)
    yield replayer
    replayer.shutdown()


def test_ray_replays_give_the_same_label(ray_replayer, tmp_path):
    team = agentracer.trace(make_task_chain)
    failed = team.run("Count from 0, one step per message. slip=3", ground_truth="5")
    agentracer.team.apply_evaluation(failed, chain_evaluator)
    local = CounterfactualSearch(LocalReplayer(team, chain_evaluator), ScriptedModel(chain_analyzer), k=2).search(failed)
    remote = CounterfactualSearch(ray_replayer, ScriptedModel(chain_analyzer), k=2).search(failed)
    assert (remote.verdict.agent, remote.verdict.step) == (local.verdict.agent, local.verdict.step) == ("agent2", 3)
    assert all("ray_node" in r.metadata for r in remote.replays)
    summary = AnnotationPipeline(team, chain_evaluator, tmp_path / "ds", analyzer=ScriptedModel(chain_analyzer),
                                 replayer=ray_replayer).run([TaskRow("x", failed.task, "5")], progress=False)
    assert summary.counterfactual_labels == 1 and summary.errors == []
