"""The visual report: self-contained, escaped, and it renders in a real headless Chromium.

The browser tests need the Debian package ``chromium`` (``apt-get install -y chromium``); without it they
fail with that message rather than skip.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from agentracer.formats.whowhen import iter_whowhen_dir
from agentracer.report.html import PREVIEW_CHARS, render_html, render_report
from agentracer.schema import Outcome, ReplayInfo, Step, ToolCall, ToolResult, Trajectory, Verdict

DATA = Path(__file__).resolve().parents[2] / "data" / "whowhen"
EVIL = '<script>document.title="pwned"</script><img src=x onerror="alert(1)">'


class Elements(HTMLParser):
    """Every start tag with its attributes, and the elements open at that point (for nesting checks)."""

    VOID = {"meta", "img", "br", "hr", "input", "link"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.items: list[tuple[str, dict[str, str], tuple[dict[str, str], ...]]] = []
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.items.append((tag, attributes, tuple(a for _, a in self.stack)))
        if tag not in self.VOID:
            self.stack.append((tag, attributes))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def with_class(self, name: str):
        return [(tag, a, parents) for tag, a, parents in self.items if name in a.get("class", "").split()]


def team_run() -> Trajectory:
    steps = [
        Step(index=0, agent="user", role="user", content="Compute the sum of the primes below 20."),
        Step(index=1, agent="Planner", content="Plan: list the primes, then add them."),
        Step(index=2, agent="Coder", content="Let me run code.", tool_calls=[
            ToolCall(id="c1", name="python", arguments={"code": "print(sum([2,3,5,7,11,13,17]))"})],
            tool_results=[ToolResult(call_id="c1", name="python", content="58")]),
        Step(index=3, agent="Coder", content=EVIL + "x" * (PREVIEW_CHARS * 3)),
        Step(index=4, agent="Checker", content="The answer is 58. TERMINATE"),
    ]
    return Trajectory(
        id="run-1", task="Compute the sum of the primes below 20.", ground_truth="77", steps=steps,
        outcome=Outcome(success=False, answer="58"),
        labels=[Verdict(agent="Coder", step=2, reason="left out 19", source="human"),
                Verdict(agent="Coder", step=2, reason="replacing step 2 fixes the run", source="counterfactual")],
    )


def test_page_is_self_contained_and_escaped() -> None:
    trajectory = team_run()
    page = render_html(trajectory, Verdict(agent="Planner", step=1, reason=EVIL, source="tracer"))
    assert page.count("<script>") == 1  # ours only: the step's and the reason's markup are text
    assert "onerror=\"alert" not in page and "&lt;script&gt;" in page
    parsed = Elements(page)
    assert not [a for tag, a, _ in parsed.items if tag in ("link", "iframe") or a.get("src")]
    assert "http://" not in page and "https://" not in page


def test_structure_lanes_tool_calls_labels_and_collapsing() -> None:
    parsed = Elements(render_html(team_run(), Verdict(agent="Planner", step=1, reason="bad plan", source="tracer")))
    lanes = [a["data-agent"] for _, a, _ in parsed.with_class("lane-head")]
    assert lanes == ["user", "Planner", "Coder", "Checker"]
    steps = parsed.with_class("step")
    assert [a["data-step"] for _, a, _ in steps] == ["0", "1", "2", "3", "4"]
    assert [a["data-step"] for _, a, _ in parsed.with_class("is-verdict")] == ["1"]
    assert [a["data-step"] for _, a, _ in parsed.with_class("is-human")] == ["2"]
    assert [a["data-step"] for _, a, _ in parsed.with_class("is-counterfactual")] == ["2"]
    (_, _, parents), = parsed.with_class("tool-call")
    assert any(p.get("data-step") == "2" for p in parents)  # nested under its step
    collapsed = [parents for tag, a, parents in parsed.items if tag == "details"]
    assert any(any(p.get("data-step") == "3" for p in ps) for ps in collapsed)
    assert not any(any(p.get("data-step") == "4" for p in ps) for ps in collapsed)
    sources = [a["data-source"] for _, a, _ in parsed.with_class("label")]
    assert sources == ["tracer", "human", "counterfactual"]


def test_a_long_answer_is_cut_before_it_is_escaped_and_says_so() -> None:
    page = render_html(Trajectory(id="t", outcome={"answer": "x" * 298 + "'s tail", "error": "e" * 300_000}))
    assert "x" * 298 + "&#x27;s…" in page and "&#…" not in page  # (no entity cut in half)
    assert "e" * 200_000 + "…" in page and "e" * 200_001 not in page  # (an error as long as a step, at most)


def test_results_without_call_ids_pair_with_their_calls_in_order() -> None:
    from agentracer import Step, ToolCall, ToolResult

    calls = [ToolCall(id="", name="f", arguments={"n": i}) for i in range(5000)]
    results = [ToolResult(call_id="", name="f", content=f"result {i}") for i in range(5000)]
    page = render_html(Trajectory(id="t", steps=[Step(index=0, agent="a", kind="tool_call", tool_calls=calls,
                                                      tool_results=results)]))
    assert page.index('{&quot;n&quot;: 4999}') < page.index("result 4999") and page.count("result 4999<") == 1


def test_a_verdict_that_is_one_of_the_runs_labels_is_shown_once() -> None:
    trajectory = team_run()
    counterfactual = trajectory.label("counterfactual")
    parsed = Elements(render_html(trajectory, counterfactual))
    assert [a["data-source"] for _, a, _ in parsed.with_class("label")] == ["counterfactual", "human"]
    assert [a["data-step"] for _, a, _ in parsed.with_class("is-verdict")] == ["2"]
    assert [a["data-step"] for _, a, _ in parsed.with_class("is-counterfactual")] == ["2"]
    assert len(parsed.with_class("callout")) == 2  # the verdict's and the human label's, not the same label twice


def test_verdict_defaults_to_the_tracer_label() -> None:
    trajectory = team_run()
    trajectory.labels.append(Verdict(agent="Checker", step=4, source="tracer"))
    parsed = Elements(render_html(trajectory))
    assert [a["data-step"] for _, a, _ in parsed.with_class("is-verdict")] == ["4"]
    assert not Elements(render_html(team_run())).with_class("is-verdict")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install -y chromium")
    return path


def _browser(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def test_chromium_renders_and_highlights_the_verdict_step(tmp_path) -> None:
    trajectory = next(t for rel, t in iter_whowhen_dir(DATA / "Hand-Crafted") if len(t.steps) > 20)
    verdict = Verdict(agent=trajectory.steps[7].agent, step=7, reason="took the wrong turn", source="tracer")
    page = tmp_path / "report.html"
    page.write_text(render_html(trajectory, verdict), encoding="utf-8")
    done = _browser(tmp_path, page, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Elements(done.stdout)
    (_, body, _), = [item for item in dom.items if item[0] == "body"]
    assert body.get("data-ready") == "yes"  # the inline script ran to its end
    highlighted = dom.with_class("is-verdict")
    assert [a["data-step"] for _, a, _ in highlighted] == ["7"]
    assert highlighted[0][1]["data-agent"] == verdict.agent
    blamed = [a["data-agent"] for _, a, _ in dom.with_class("blamed")]
    assert blamed == [verdict.agent]
    human = trajectory.human_label
    assert [a["data-step"] for _, a, _ in dom.with_class("is-human")] == [str(human.step)]
    shot = tmp_path / "shot.png"
    done = _browser(tmp_path, page, f"--screenshot={shot}", "--window-size=1400,1600")
    assert done.returncode == 0 and shot.stat().st_size > 20_000


def test_report_of_several_trajectories_in_chromium(tmp_path) -> None:
    failed = team_run()
    replay = team_run().model_copy(update={"id": "run-1-replay", "replay": ReplayInfo(parent_id="run-1", step=2)})
    replay.steps[2].replaced = True
    replay.labels = []
    corrected = team_run().model_copy(update={"id": "run-2", "outcome": Outcome(success=True, answer="77")})
    corrected.labels = []
    page = tmp_path / "report.html"
    page.write_text(render_report([(failed, Verdict(agent="Coder", step=2, source="tracer")),
                                   replay, corrected], title="demo"), encoding="utf-8")
    done = _browser(tmp_path, page, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Elements(done.stdout)
    sections = [a for tag, a, _ in dom.items if tag == "section"]
    assert [s["data-trajectory-id"] for s in sections] == ["run-1", "run-1-replay", "run-2"]
    assert sections[0]["data-verdict-step"] == "2" and "data-verdict-step" not in sections[1]
    ids = [a["id"] for _, a, _ in dom.items if "id" in a]
    assert len(ids) == len(set(ids))
    assert [a["data-step"] for _, a, _ in dom.with_class("replaced")] == ["2"]
