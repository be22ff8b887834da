"""Framework plugins for agentracer: one sub-package per framework."""
