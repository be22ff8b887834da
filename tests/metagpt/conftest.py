"""MetaGPT tests: MetaGPT reads ~/.metagpt/config2.yaml at import, so point it at a private home first."""

from agentracer_plugins.metagpt.offline import prepare_temporary_home

prepare_temporary_home("agentracer-metagpt-home-")  # before any test module imports metagpt
