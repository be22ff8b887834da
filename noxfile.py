"""Test environments, one per framework (MetaGPT cannot share one with AutoGen or CAMEL).

``nox`` runs them all; ``nox -s autogen`` one. Environments are built with uv (fast, cached), except the
trainer's, which uses pip so that it takes this machine's CPU torch wheel instead of a CUDA download.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYTEST = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
RAY_TEST = "tests/annotate/test_annotate_ray.py"


def _pytest(session: nox.Session, *paths: str, options: tuple[str, ...] = ()) -> None:
    present = [p for p in paths if (ROOT / p).exists()]
    if not present:
        session.error(f"no tests found under {paths}")
    session.run(*PYTEST, *options, *present, *session.posargs)


@nox.session(python="3.11")
def core(session: nox.Session) -> None:
    """The engine, formats, CLI, tracer and annotation: no agent framework installed."""
    session.install("-e", ".[dev,lite,otel,parquet,ray]")
    session.run("python", "-c", "import sys, agentracer.cli; "
                "bad = [m for m in ('autogen_agentchat', 'camel', 'metagpt', 'torch') if m in sys.modules]; "
                "sys.exit(f'core imported {bad}' if bad else 0)")
    # Ray leaves process-wide state behind in its driver (a SIGTERM handler, threads, atexit hooks): its test runs in
    # a pytest process of its own, so that nothing of Ray's outlives it in the process that runs the other tests
    _pytest(session, "tests/core", "tests/tracer", "tests/annotate", options=(f"--ignore={RAY_TEST}",))
    _pytest(session, RAY_TEST)


@nox.session(python="3.11")
def autogen(session: nox.Session) -> None:
    """AutoGen plugin, examples and the demo; with the ``otel`` extra and OpenInference's AutoGen instrumentor for
    the interop test (one resolution: installed one after the other, the OTLP exporter's protobuf would replace the
    5.x that autogen-core pins)."""
    session.install("-e", ".[dev,autogen,lite,parquet,otel]", "openinference-instrumentation-autogen-agentchat>=0.1.20")
    _pytest(session, "tests/autogen")


@nox.session(python="3.11")
def camel(session: nox.Session) -> None:
    """CAMEL / OWL plugin."""
    session.install("-e", ".[dev,camel,parquet]")
    _pytest(session, "tests/camel")


@nox.session(python="3.11")
def metagpt(session: nox.Session) -> None:
    """MetaGPT and MaAS plugins in their own environment (see envs/metagpt/)."""
    session.run("bash", "envs/metagpt/install.sh", session.virtualenv.location, external=True)
    _pytest(session, "tests/metagpt", "tests/maas")


@nox.session(python="3.11", venv_backend="venv")
def train(session: nox.Session) -> None:
    """Trainer and local-model backends: CPU torch from this machine's wheel (pip, not uv)."""
    session.env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    session.run("bash", "envs/train/install.sh", session.virtualenv.location, external=True)
    _pytest(session, "tests/trainer", "tests/hf")

