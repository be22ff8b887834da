#!/usr/bin/env bash
# Creates .venv/ with the agentracer CLI and every extra that shares one environment (AutoGen, CAMEL, the CPU
# tracer, OpenTelemetry, Parquet, dev tools). Idempotent: a second run only checks. MetaGPT and the trainer get
# their own environments from nox (see noxfile.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "uv>=0.4"
.venv/bin/uv pip install --python .venv/bin/python -q -e ".[dev,autogen,camel,lite,otel,parquet,ray]"
