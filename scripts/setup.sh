#!/usr/bin/env bash
# Set up .venv with matssl and its tools. Installs torch first and explicitly: the CUDA build when an
# NVIDIA GPU is visible or MATSSL_TORCH=cuda, else the CPU build (a bare `torch` requirement would pull a
# multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
if .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') already installed"
elif [ "${MATSSL_TORCH:-}" = cuda ]; then
  # the CUDA build on a machine without a GPU: a cluster's login node setting up for its GPU nodes
  $PIP install -q "torch==$TORCH_VERSION"
elif $PIP install -q --no-index --no-deps "torch==$TORCH_VERSION" 2>/dev/null; then
  echo "torch $TORCH_VERSION from a local wheel (pip find-links)"
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  $PIP install -q "torch==$TORCH_VERSION"
else
  $PIP install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
fi
$PIP install -q -e ".[dev]"
echo "matssl is installed in .venv (activate with: source .venv/bin/activate)"
