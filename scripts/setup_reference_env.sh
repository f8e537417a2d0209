#!/usr/bin/env bash
# Creates .venv/ with the PyTorch reference stack used to generate fixtures.
# Usage: bash scripts/setup_reference_env.sh   (needs python3 >= 3.8 with venv)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -m venv --help >/dev/null 2>&1; then
  apt-get update && apt-get install -y python3-venv
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install --quiet --upgrade "pip<24"
.venv/bin/pip install --quiet -r scripts/requirements-reference.txt
.venv/bin/python - <<'PY'
import torch, transformers, diffusers, PIL, numpy, gguf
print("reference env ok: torch", torch.__version__, "transformers", transformers.__version__,
      "diffusers", diffusers.__version__, "pillow", PIL.__version__, "numpy", numpy.__version__)
PY
