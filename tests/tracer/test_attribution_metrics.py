"""Metrics over results rows: accuracy, exact match, ±k, unparsed, and the Who&When substring scoring."""

from __future__ import annotations

from agentracer.evaluate.attribution import format_table, summarize


def row(subset, pred_agent, pred_step, gold_agent, gold_step, *, error=None, kind=None, with_gt=True):
    return {"id": f"{subset}/{pred_agent}{pred_step}", "subset": subset, "with_gt": with_gt,
            "predicted_agent": pred_agent, "predicted_step": pred_step, "mistake_agent": gold_agent,
            "mistake_step": gold_step, "error": error, "error_kind": kind}


ROWS = [
    row("Hand-Crafted", "WebSurfer", 3, "WebSurfer", 3),                   # exact
    row("Hand-Crafted", "websurfer", 4, "WebSurfer", 3),                   # agent (case-insensitive), step ±1
    row("Hand-Crafted", "Orchestrator", 12, "WebSurfer", 1),               # substring step hit: "1" in "12"
    row("Hand-Crafted", None, None, "WebSurfer", 5, error="no agent", kind="answer"),
    row("Algorithm-Generated", "Coder", 6, "Coder", 3),                    # agent, step within ±3
    row("Algorithm-Generated", None, None, "Coder", 2, error="down", kind="model"),
]


def test_scores_per_subset_and_overall() -> None:
    scores = {s.subset: s for s in summarize(ROWS)}
    hand = scores["Hand-Crafted"]
    assert (hand.files, hand.labelled, hand.agent, hand.step, hand.exact) == (4, 4, 2, 1, 1)
    assert (hand.within1, hand.within3, hand.unparsed, hand.errors) == (2, 2, 1, 1)
    assert hand.pct(hand.agent) == 50.0
    # Who&When's scorer: gold text contained in the prediction, case-sensitive ("websurfer" misses)
    assert (hand.substring_agent, hand.substring_step) == (1, 2)
    algo = scores["Algorithm-Generated"]
    assert (algo.agent, algo.step, algo.within3, algo.errors, algo.unparsed) == (1, 0, 1, 1, 0)
    total = scores["All"]
    assert (total.labelled, total.agent, total.errors) == (6, 3, 2)


def test_settings_are_kept_apart_and_printed() -> None:
    rows = ROWS + [row("Hand-Crafted", "WebSurfer", 3, "WebSurfer", 3, with_gt=False)]
    scores = summarize(rows)
    assert {(s.subset, s.with_gt) for s in scores} >= {("Hand-Crafted", True), ("Hand-Crafted", False)}
    table = format_table(scores, title="t")
    assert "w/ G" in table and "w/o G" in table and "substr step%" in table
    assert "Hand-Crafted w/o G: agent 100.00  step 100.00" in table


def test_unlabelled_rows_do_not_count_in_accuracy() -> None:
    scores = summarize([row("x", "A", 1, None, None), row("x", "A", 1, "A", 1)])
    assert scores[0].labelled == 1 and scores[0].pct(scores[0].exact) == 100.0


def test_answers_naming_no_agent_or_step_of_the_run_are_counted_as_invalid_and_wrong() -> None:
    ghost = {**row("Hand-Crafted", "GhostAgent", 9999, "WebSurfer", 3), "flags": ["unknown_agent", "step_out_of_range"]}
    late = {**row("Hand-Crafted", "WebSurfer", 40, "WebSurfer", 3), "flags": ["step_out_of_range"]}
    near = {**row("Hand-Crafted", "websurfer", 3, "WebSurfer", 3), "flags": ["agent_normalised"]}
    [hand] = summarize([ghost, late, near])
    assert (hand.invalid, hand.unparsed, hand.errors, hand.agent, hand.step) == (2, 0, 0, 2, 1)
    table = format_table([hand])
    header, _, line = table.splitlines()[:3]
    assert "invalid" in header and line.split()[header.split().index("invalid") + 1] == "2"


def test_a_step_past_the_run_misses_the_near_step_columns_too() -> None:
    """A run of 10 steps whose gold step is the last: an answer of step 10 or 12 (invalid) hit ±1 and ±3."""
    past = [{**row("Hand-Crafted", "WebSurfer", step, "WebSurfer", 9), "flags": ["step_out_of_range"]}
            for step in (10, 12)]
    [hand] = summarize(past)
    assert (hand.invalid, hand.agent, hand.step, hand.exact, hand.within1, hand.within3) == (2, 2, 0, 0, 0, 0)
