"""agentracer: which agent, at which step, caused a multi-agent run to fail — and a replay to fix it."""

from __future__ import annotations

from .compare import Comparison, compare
from .errors import (
    AgentracerError,
    InputError,
    PluginNotFound,
    RecordedModelError,
    ReplayDivergence,
    ReplayError,
    RunNotStoredError,
    ServiceError,
    TeamBuildError,
    TeamRunError,
    UsageError,
)
from .plugins import plugin_for, register_plugin, registered_plugins, uninstrument
from .record import Run, current_run
from .refine import refine
from .replay import Cassette, ReplayPlan
from .schema import (
    SCHEMA_VERSION,
    AgentInfo,
    ModelCall,
    Outcome,
    Step,
    ToolCall,
    ToolResult,
    Trajectory,
    Usage,
    Verdict,
)
from .store import JsonlStore, SqliteStore, open_store
from .team import TracedTeam, trace

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "AgentInfo",
    "AgentracerError",
    "Cassette",
    "Comparison",
    "InputError",
    "JsonlStore",
    "ModelCall",
    "Outcome",
    "PluginNotFound",
    "RecordedModelError",
    "ReplayDivergence",
    "ReplayError",
    "ReplayPlan",
    "Run",
    "RunNotStoredError",
    "ServiceError",
    "SqliteStore",
    "Step",
    "TeamBuildError",
    "TeamRunError",
    "ToolCall",
    "ToolResult",
    "TracedTeam",
    "Trajectory",
    "Usage",
    "UsageError",
    "Verdict",
    "__version__",
    "compare",
    "current_run",
    "open_store",
    "refine",
    "plugin_for",
    "register_plugin",
    "registered_plugins",
    "trace",
    "uninstrument",
]
