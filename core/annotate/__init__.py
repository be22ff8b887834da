"""Annotation: label failed runs by counterfactual replay and successful runs by fault injection."""

from __future__ import annotations

from .budget import Budget
from .counterfactual import Attempt, CounterfactualSearch, SearchResult, label_failed
from .injection import FaultInjector, InjectionResult, StepChooser
from .leakage import announces_itself, leaks_answer
from .pipeline import AnnotationPipeline, AnnotationStopped, export_dataset
from .replayer import LocalReplayer, Replayer
from .tasks import TaskRow, read_tasks

__all__ = [
    "AnnotationPipeline", "AnnotationStopped", "Attempt", "Budget", "CounterfactualSearch", "FaultInjector",
    "InjectionResult", "LocalReplayer", "Replayer", "SearchResult", "StepChooser", "TaskRow", "announces_itself",
    "export_dataset", "label_failed", "leaks_answer", "read_tasks",
]
