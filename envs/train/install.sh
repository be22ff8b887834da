#!/usr/bin/env bash
# Installs the trainer's test environment into an existing virtualenv: bash envs/train/install.sh VENV_DIR
#
# pip (never uv): torch==2.13.0 comes first, from this machine's CPU wheel (PIP_FIND_LINKS=/opt/wheels);
# every later call runs under constraints.txt, which holds torch at that version, so no dependency can
# swap in a CUDA build. verl is installed when it resolves under that constraint; when it does not, the
# environment is still complete for everything but the verl hook test, and this script says so.
set -euo pipefail

VENV=${1:?usage: install.sh VENV_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check --progress-bar off -q)
CONSTRAINTS=(-c "$HERE/constraints.txt")
VERL_SPEC=${AGENTRACER_VERL_SPEC:-verl==0.9.1}

[ -x "$PY" ] || { echo "install.sh: $PY is not a python interpreter (create the venv first)" >&2; exit 2; }
export PIP_FIND_LINKS="${PIP_FIND_LINKS:-/opt/wheels}"

"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" "${CONSTRAINTS[@]}" -e "$ROOT[dev,parquet]" "transformers>=5.5.3,<5.11" "tokenizers>=0.22" "pyyaml>=6.0"
if "${PIP[@]}" "${CONSTRAINTS[@]}" "$VERL_SPEC"; then
    echo "install.sh: $VERL_SPEC installed"
else
    echo "install.sh: $VERL_SPEC did not install with torch==2.13.0 held; the verl hook test will report it" >&2
fi
"$PY" - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"torch {torch.__version__} replaced the CPU wheel"
print(f"install.sh: torch {torch.__version__}, cuda={torch.version.cuda}")
PY
