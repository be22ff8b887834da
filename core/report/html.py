"""A self-contained HTML page for one or several trajectories: lanes per agent, steps as a timeline.

No network at all: the CSS and the little JavaScript are inline. Every piece of trajectory text goes
through ``html.escape``, so a step that contains markup shows it as text. Long content is cut to a
preview with the whole text in a collapsed ``<details>``. The step a verdict names carries the class
``is-verdict`` (and ``data-verdict-step`` on its section), the human label's step ``is-human``, and
counterfactual / injection labels' steps ``is-counterfactual``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from ..redact import redact
from ..schema import Step, ToolResult, Trajectory, Verdict

#: Characters of a step shown before the rest is folded into a collapsed ``<details>``.
PREVIEW_CHARS = 400
#: Characters of a single step embedded in the page at most (Who&When steps reach 100k+; the rest is cut).
MAX_STEP_CHARS = 200_000

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f4f6fa}
header.page{padding:16px 24px;background:#1d2330;color:#fff}
header.page h1{margin:0;font-size:20px}
header.page nav a{color:#9cc3ff;margin-right:14px}
section.trajectory{margin:18px 24px 36px;background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;padding:16px}
section.trajectory h2{margin:0 0 6px;font-size:17px}
.meta{color:#536079;font-size:13px;margin-bottom:10px}
.meta b{color:#1d2330}
.task{white-space:pre-wrap;background:#f7f8fb;border-left:3px solid #aab4c8;padding:6px 10px;margin:8px 0}
.labels{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0 14px}
.label{border-radius:8px;padding:8px 12px;min-width:240px;max-width:520px;border:1px solid #ccd3e0;background:#fafbfd}
.label h3{margin:0 0 4px;font-size:13px;text-transform:uppercase;letter-spacing:.04em}
.label.verdict{border-color:#e0563b;background:#fff4f1}
.label.human{border-color:#2f7d4f;background:#f1faf4}
.label.counterfactual,.label.injection{border-color:#6b4fc4;background:#f5f2ff}
.label .why{white-space:pre-wrap;color:#3b4456;font-size:13px}
.agree{font-weight:600}
.agree.yes{color:#2f7d4f}.agree.no{color:#b3402a}
.outcome.ok{color:#2f7d4f}.outcome.fail{color:#b3402a}
.toolbar{margin:6px 0 10px}
.toolbar button{font:inherit;font-size:12px;padding:3px 10px;border-radius:6px;border:1px solid #aab4c8;background:#fff;cursor:pointer}
.timeline{display:grid;gap:6px 10px;align-items:start;overflow-x:auto}
.lane-head{position:sticky;top:0;z-index:2;padding:6px 8px;border-radius:6px;font-weight:600;color:#fff;font-size:13px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.lane-head.blamed{outline:3px solid #e0563b;outline-offset:1px}
.idx{font:12px ui-monospace,Menlo,monospace;color:#7a859b;text-align:right;padding-top:8px}
.step{border:1px solid #d5dbe6;border-left:4px solid var(--c);border-radius:6px;padding:6px 8px;background:#fff;min-width:0}
.step .head{display:flex;flex-wrap:wrap;gap:4px 6px;align-items:center;font-size:12px;color:#536079;margin-bottom:3px}
.badge{display:inline-block;white-space:nowrap;border-radius:10px;padding:0 7px;font-size:11px;background:#e8ecf3;color:#3b4456}
.badge.v{background:#e0563b;color:#fff}.badge.h{background:#2f7d4f;color:#fff}.badge.cf{background:#6b4fc4;color:#fff}
.badge.r{background:#c98a00;color:#fff}
.content{white-space:pre-wrap;word-break:break-word;font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace;margin:0}
details.more summary{cursor:pointer;color:#2a5db0;font-size:12px}
.step.is-verdict{background:#fff4f1;border-color:#e0563b;box-shadow:0 0 0 2px #e0563b}
.step.is-human{box-shadow:0 0 0 2px #2f7d4f}
.step.is-verdict.is-human{box-shadow:0 0 0 2px #e0563b,0 0 0 5px #2f7d4f}
.step.is-counterfactual{outline:2px dashed #6b4fc4;outline-offset:2px}
.step.replaced{background:#fffaf0}
.callout{margin-top:6px;padding:6px 8px;border-radius:6px;font-size:12.5px;white-space:pre-wrap}
.callout.v{background:#ffe3dc;color:#6d1f0f}.callout.h{background:#dff3e6;color:#17422a}.callout.cf{background:#ebe5ff;color:#2e1f66}
ul.tools{list-style:none;margin:6px 0 0;padding:0 0 0 10px;border-left:2px solid #e0e5ee}
ul.tools li{margin:4px 0;font-size:12px}
ul.tools .tname{font-weight:600;color:#2a5db0}
ul.tools .err{color:#b3402a}
"""

_JS = """
document.querySelectorAll('section.trajectory').forEach(function(sec){
  var v = sec.getAttribute('data-verdict-agent');
  if (v) sec.querySelectorAll('.lane-head').forEach(function(h){
    if (h.getAttribute('data-agent') === v) h.classList.add('blamed');
  });
  var target = sec.querySelector('.step.is-verdict');
  if (target) target.querySelectorAll('details.more').forEach(function(d){ d.open = true; });
  sec.querySelectorAll('button[data-toggle]').forEach(function(b){
    b.addEventListener('click', function(){
      var open = b.getAttribute('data-toggle') === 'open';
      sec.querySelectorAll('details.more').forEach(function(d){ d.open = open; });
    });
  });
});
document.body.setAttribute('data-ready', 'yes');
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _text(value: Any, *, compact: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=None if compact else 1, default=str)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (before escaping: a cut never splits an entity), "…" saying so."""
    return text if len(text) <= limit else text[:limit] + "…"


def _colour(agent: str) -> str:
    hue = int(hashlib.sha1(agent.encode("utf-8", "surrogatepass")).hexdigest()[:4], 16) % 360
    return f"hsl({hue},55%,40%)"


def _collapsible(text: str) -> str:
    """Escaped text; past ``PREVIEW_CHARS`` the rest sits in a collapsed ``<details>``."""
    cut = ""
    if len(text) > MAX_STEP_CHARS:
        cut = f"\n… ({len(text) - MAX_STEP_CHARS} more characters not shown)"
        text = text[:MAX_STEP_CHARS]
    if len(text) <= PREVIEW_CHARS:
        return f'<pre class="content">{_e(text + cut)}</pre>'
    return (f'<pre class="content">{_e(text[:PREVIEW_CHARS])}…</pre>'
            f'<details class="more"><summary>show all {len(text)} characters</summary>'
            f'<pre class="content">{_e(text + cut)}</pre></details>')


def _tools(step: Step) -> str:
    if not step.tool_calls and not step.tool_results:
        return ""
    results = {r.call_id: r for r in step.tool_results if r.call_id}
    unpaired: dict[str, list[ToolResult]] = {}  # results without a call id, by tool name, in order
    for r in step.tool_results:
        if not r.call_id:
            unpaired.setdefault(r.name, []).append(r)
    items: list[str] = []
    used: set[int] = set()
    for call in step.tool_calls:
        result = results.get(call.id) if call.id else None
        if result is None and unpaired.get(call.name):
            result = unpaired[call.name].pop(0)
        body = f'<span class="tname">{_e(call.name)}</span>{_collapsible(_text(call.arguments, compact=True))}'
        if result is not None:
            used.add(id(result))
            css = ' class="err"' if result.is_error else ""
            body += f'<div{css}>→ {"error: " if result.is_error else ""}{_collapsible(_text(result.content))}</div>'
        items.append(f'<li class="tool-call" data-tool="{_e(call.name)}">{body}</li>')
    for result in step.tool_results:
        if id(result) in used:
            continue
        css = ' class="err"' if result.is_error else ""
        items.append(f'<li class="tool-result"><span class="tname">{_e(result.name or "result")}</span>'
                     f'<div{css}>→ {_collapsible(_text(result.content))}</div></li>')
    return f'<ul class="tools">{"".join(items)}</ul>'


def _same_agent(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


def _label_box(kind: str, title: str, label: Verdict, anchor: str, extra: str = "") -> str:
    confidence = f" · confidence {label.confidence:.0%}" if label.confidence is not None else ""
    flags = f" · flags: {_e(', '.join(label.flags))}" if label.flags else ""
    return (f'<div class="label {kind}" data-source="{_e(label.source)}" data-step="{label.step}" '
            f'data-agent="{_e(label.agent)}"><h3>{_e(title)}</h3>'
            f'<div><b>{_e(label.agent)}</b> at <a href="#{anchor}-step-{label.step}">step {label.step}</a>'
            f'{confidence}{flags}</div>'
            + (f'<div class="why">{_e(_cut(label.reason, MAX_STEP_CHARS))}</div>' if label.reason else "") + extra + "</div>")


def _section(trajectory: Trajectory, verdict: Verdict | None, human: Verdict | None, anchor: str,
             heading: str | None = None) -> str:
    others = [v for v in trajectory.labels if v.source in ("counterfactual", "injection")]
    agents = trajectory.agent_names or ["(none)"]
    lane = {name: i for i, name in enumerate(agents)}
    parts: list[str] = []
    attrs = f'id="{anchor}" class="trajectory" data-trajectory-id="{_e(trajectory.id)}"'
    if verdict is not None:
        attrs += f' data-verdict-step="{verdict.step}" data-verdict-agent="{_e(verdict.agent)}"'
    if human is not None:
        attrs += f' data-human-step="{human.step}" data-human-agent="{_e(human.agent)}"'
    parts.append(f"<section {attrs}>")
    parts.append(f"<h2>{_e(heading or trajectory.id)}</h2>")
    outcome = trajectory.outcome
    status = ('<span class="outcome ok">succeeded</span>' if outcome.success is True
              else '<span class="outcome fail">failed</span>' if outcome.success is False else "outcome unknown")
    meta = [f"<b>{len(trajectory.steps)}</b> steps", f"<b>{len(agents)}</b> agents", status]
    if trajectory.framework:
        meta.append(f"framework <b>{_e(trajectory.framework)}</b>")
    if trajectory.replay is not None:
        meta.append(f"replay of <b>{_e(trajectory.replay.parent_id)}</b> from step <b>{trajectory.replay.step}</b>")
    if outcome.answer is not None:
        meta.append(f"answer <b>{_e(_cut(_text(outcome.answer), 300))}</b>")
    if trajectory.ground_truth is not None:  # (kept whole in a run, for Ω; a page leaves agentracer, as an export)
        meta.append(f"ground truth <b>{_e(_cut(_text(redact(trajectory.ground_truth)), 300))}</b>")
    parts.append(f'<div class="meta">{" · ".join(meta)}</div>')
    if outcome.feedback or outcome.error:
        parts.append(f'<div class="meta">{_e(_cut(_text(outcome.feedback), MAX_STEP_CHARS))} '
                     f'{_e(_cut(outcome.error or "", MAX_STEP_CHARS))}</div>')
    if trajectory.task:
        parts.append(f'<div class="task">{_collapsible(trajectory.task)}</div>')
    boxes: list[str] = []
    if verdict is not None:
        boxes.append(_label_box("verdict", f"verdict ({verdict.source})", verdict, anchor))
    if human is not None:
        agree = ""
        if verdict is not None:
            hit = _same_agent(verdict.agent, human.agent)
            agree = (f'<div class="agree {"yes" if hit else "no"}">agent {"matches" if hit else "differs"}, '
                     f'step {"matches" if verdict.step == human.step else f"off by {verdict.step - human.step:+d}"}'
                     "</div>")
        boxes.append(_label_box("human", "human label", human, anchor, agree))
    for label in others:
        if label == verdict:  # the verdict is this label (the demo's counterfactual one): one box says it
            continue
        title = "counterfactual label" if label.source == "counterfactual" else "injected fault"
        boxes.append(_label_box(label.source, title, label, anchor))
    if boxes:
        parts.append(f'<div class="labels">{"".join(boxes)}</div>')
    parts.append('<div class="toolbar"><button data-toggle="open">expand all</button> '
                 '<button data-toggle="close">collapse all</button></div>')
    columns = f"3.5em repeat({len(agents)}, minmax(16em, 1fr))"
    parts.append(f'<div class="timeline" style="grid-template-columns:{columns}">')
    parts.append('<div class="idx">step</div>')
    for name in agents:
        parts.append(f'<div class="lane-head" data-agent="{_e(name)}" style="background:{_colour(name)}">'
                     f"{_e(name)}</div>")
    for row, step in enumerate(trajectory.steps, start=2):
        parts.append(f'<div class="idx" style="grid-row:{row};grid-column:1">{step.index}</div>')
        parts.append(_step_card(step, row, lane.get(step.agent, 0) + 2, verdict, human, others, anchor))
    parts.append("</div></section>")
    return "".join(parts)


def _step_card(step: Step, row: int, column: int, verdict: Verdict | None, human: Verdict | None,
               others: Sequence[Verdict], anchor: str) -> str:
    classes = ["step"]
    badges = [f'<span class="badge">{_e(step.kind)}</span>']
    callouts: list[str] = []
    if verdict is not None and verdict.step == step.index:
        classes.append("is-verdict")
        badges.append('<span class="badge v">verdict</span>')
        callouts.append(f'<div class="callout v"><b>Verdict:</b> {_e(verdict.agent)} at step {verdict.step}'
                        + (f" — {_e(_cut(verdict.reason, MAX_STEP_CHARS))}" if verdict.reason else "") + "</div>")
    if human is not None and human.step == step.index:
        classes.append("is-human")
        badges.append('<span class="badge h">human label</span>')
        callouts.append(f'<div class="callout h"><b>Human label:</b> {_e(human.agent)}'
                        + (f" — {_e(_cut(human.reason, MAX_STEP_CHARS))}" if human.reason else "") + "</div>")
    for label in others:
        if label.step == step.index:
            if "is-counterfactual" not in classes:
                classes.append("is-counterfactual")
            badges.append(f'<span class="badge cf">{_e(label.source)}</span>')
            if label == verdict:  # its callout says it already
                continue
            callouts.append(f'<div class="callout cf"><b>{_e(label.source.capitalize())}:</b> {_e(label.agent)}'
                            + (f" — {_e(_cut(label.reason, MAX_STEP_CHARS))}" if label.reason else "") + "</div>")
    if step.replaced:
        classes.append("replaced")
        badges.append('<span class="badge r">replaced action</span>')
    if step.role and step.role != step.agent:
        badges.append(f'<span title="role">{_e(step.role)}</span>')
    style = f"grid-row:{row};grid-column:{column};--c:{_colour(step.agent)}"
    return (f'<div id="{anchor}-step-{step.index}" class="{" ".join(classes)}" data-step="{step.index}" '
            f'data-agent="{_e(step.agent)}" style="{style}">'
            f'<div class="head"><b>#{step.index}</b> {"".join(badges)}</div>'
            f"{_collapsible(step.text)}{_tools(step)}{''.join(callouts)}</div>")


def _page(title: str, body: str, nav: str = "") -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f'<header class="page"><h1>{_e(title)}</h1>{nav}</header>{body}'
            f"<script>{_JS}</script></body></html>")


def render_html(trajectory: Trajectory, verdict: Verdict | None = None, *,
                human_label: Verdict | None = None) -> str:
    """One trajectory as a self-contained HTML page.

    ``verdict`` defaults to the trajectory's first ``tracer`` label; ``human_label`` to its human label.
    """
    verdict = verdict if verdict is not None else trajectory.label("tracer")
    human = human_label if human_label is not None else trajectory.human_label
    title = f"agentracer — {trajectory.id}"
    return _page(title, _section(trajectory, verdict, human, "t0"))


ReportItem = Trajectory | tuple[Trajectory, Verdict | None]


def render_report(trajectories: Iterable[ReportItem], title: str = "agentracer report") -> str:
    """Several trajectories on one page (e.g. a failed run, its replays and the corrected run).

    Each item is a Trajectory (its tracer label is the verdict) or a ``(trajectory, verdict)`` pair.
    """
    sections: list[str] = []
    links: list[str] = []
    for i, item in enumerate(trajectories):
        trajectory, verdict = item if isinstance(item, tuple) else (item, None)
        verdict = verdict if verdict is not None else trajectory.label("tracer")
        heading = _heading(trajectory)
        sections.append(_section(trajectory, verdict, trajectory.human_label, f"t{i}", heading))
        links.append(f'<a href="#t{i}">{_e(heading)}</a>')
    nav = f"<nav>{''.join(links)}</nav>" if len(links) > 1 else ""
    return _page(title, "".join(sections), nav)


def _heading(trajectory: Trajectory) -> str:
    name = trajectory.metadata.get("title") or trajectory.metadata.get("name")
    if name:
        return str(name)
    if trajectory.replay is not None:
        return f"{trajectory.id} (replay from step {trajectory.replay.step})"
    return trajectory.id
