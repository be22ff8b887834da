"""Visual reports of trajectories: ``agentracer.report.html.render_html`` / ``render_report``."""

from .html import render_html, render_report

__all__ = ["render_html", "render_report"]
