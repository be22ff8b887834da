"""A look-alike of MaAS's interfaces, written for agentracer's tests (no MaAS code): same module names,
an LLM with ``aask``, ``ActionNode.fill`` calling it, operators with async ``__call__`` and a workflow
whose ``__call__`` returns (solution, cost, log-probability)."""
