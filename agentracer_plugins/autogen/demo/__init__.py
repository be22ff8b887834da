"""``agentracer demo``: a real AutoGen team fails an MBPP task, counterfactual replay finds the decisive
step, the CPU tracer gives its verdict beside it, and one round of self-correction passes the asserts.

Everything runs offline in seconds: every model in it is scripted (see ``team.py``).
"""

from __future__ import annotations

from .run import DemoResult, run_demo

__all__ = ["DemoResult", "run_demo"]
