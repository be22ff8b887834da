"""A comparison of two runs (``agentracer.compare``) as a self-contained HTML page: one row per step index,
both runs' steps side by side, coloured by how they relate, the first difference marked (anchor ``#first``). All
trajectory text is escaped, as in the single-run report."""

from __future__ import annotations

from ..compare import Comparison
from ..schema import Step
from .html import _collapsible, _colour, _e, _page, _text, _tools

_CSS = """
table.diff{border-collapse:separate;border-spacing:0 4px;width:100%;table-layout:fixed}
table.diff th{text-align:left;font-size:12px;color:#536079;padding:0 8px}
table.diff td{vertical-align:top;background:#fff;padding:6px 8px;border-top:1px solid #e3e7ef;border-bottom:1px solid #e3e7ef}
table.diff col.idx{width:44px}table.diff col.status{width:96px}
table.diff td.idx{text-align:right;color:#7a859b;font:12px ui-monospace,Menlo,monospace}
table.diff td.status{font-size:12px;font-weight:600}
tr.same td{opacity:.62}
tr.replaced td.status{color:#c98a00}tr.changed td.status{color:#b3402a}
tr.only-before td.status,tr.only-after td.status{color:#2a5db0}
tr.first td{box-shadow:inset 0 2px 0 #e0563b}
.who{font-size:12px;font-weight:600}
"""


def _side(step: Step | None) -> str:
    if step is None:
        return '<td class="side"><span class="badge">no step</span></td>'
    who = f'<div class="who" style="color:{_colour(step.agent)}">{_e(step.agent)} <span class="badge">' \
          f'{_e(step.kind)}</span></div>'
    return f'<td class="side">{who}{_collapsible(_text(step.content))}{_tools(step)}</td>'


def render_comparison_html(comparison: Comparison) -> str:
    """The page: both runs' ids and outcomes, the summary line, and the step table."""
    before, after = comparison.before, comparison.after
    rows = []
    first_difference = comparison.first_difference
    for row in comparison.rows:
        classes = [row.status.replace(" ", "-")] + (["first"] if row.index == first_difference else [])
        anchor = ' id="first"' if "first" in classes else ""
        rows.append(f'<tr class="{" ".join(classes)}"{anchor}><td class="idx">{row.index}</td>'
                    f'<td class="status">{_e(row.status)}</td>{_side(row.before)}{_side(row.after)}</tr>')
    head = (f'<section class="trajectory"><div class="meta">before <b>{_e(before.id)}</b> · after '
            f'<b>{_e(after.id)}</b></div><div class="task">{_e(comparison.summary())}</div>'
            '<table class="diff"><colgroup><col class="idx"><col class="status"><col><col></colgroup>'
            '<tr><th>#</th><th>status</th><th>before</th><th>after</th></tr>')
    body = head + "".join(rows) + "</table></section>"
    return _page(f"agentracer diff — {before.id} → {after.id}", f"<style>{_CSS}</style>{body}")
