#!/usr/bin/env bash
# Build the MetaGPT test environment: agentracer (editable, with its dev extra) + metagpt 0.8.2.
#
#   bash envs/metagpt/install.sh [VENV_DIR]      (default: .venv-metagpt; created when missing)
#
# metagpt 0.8.2 cannot share an environment with AutoGen or CAMEL (it pins old openai/httpx/wrapt) and
# no longer installs with a plain resolver: its lancedb==0.4.0 pin is gone from PyPI. So:
#   1. resolve metagpt's own requirements (metagpt-requirements.txt, lancedb left out) together with
#      agentracer[dev] in one uv call, with a date cut-off so unpinned packages get metagpt-era releases;
#   2. install metagpt==0.8.2 itself with --no-deps.
# The project is installed editable, so the environment follows the working tree.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${1:-$ROOT/.venv-metagpt}"
CUTOFF="${METAGPT_EXCLUDE_NEWER:-2025-03-10}"
UV="${UV:-$(command -v uv || echo "$ROOT/.venv/bin/uv")}"

[ -x "$UV" ] || { echo "install.sh: uv not found (set UV=/path/to/uv)" >&2; exit 2; }
if [ ! -x "$VENV/bin/python" ]; then
  "$UV" venv --python 3.11 "$VENV"
fi
PY="$VENV/bin/python"
start=$(date +%s)

"$UV" pip install --python "$PY" --exclude-newer "$CUTOFF" --compile-bytecode \
  -r "$HERE/metagpt-requirements.txt" -e "$ROOT[dev]"
"$UV" pip install --python "$PY" --exclude-newer "$CUTOFF" --compile-bytecode --no-deps "metagpt==0.8.2"

"$PY" - <<'EOF'
import importlib.metadata as md
print(f"metagpt {md.version('metagpt')} + agentracer {md.version('agentracer')} ready")
EOF
echo "install.sh: $(( $(date +%s) - start )) s"
