"""Evaluation: outcome checks Ω for runs (``outcome``) and attribution metrics for tracers (``attribution``)."""
