#!/usr/bin/env bash
# Install lit_tiny into a virtual environment (default .venv) in one step.
#
#   bash install.sh            # core package
#   bash install.sh test       # with the test tools (what CI uses)
#   bash install.sh eval,test  # any extras from pyproject.toml, comma separated
#
# Without a GPU, PyTorch is pinned to the CPU build (requirements/cpu-constraints.txt) and the
# torchvision wheel that litdata pulls in is removed: it is a CUDA build that breaks `import lightning`
# next to CPU torch, and lit_tiny does not use it. Set VENV=path to install elsewhere, PYTHON=python3.x
# to pick the interpreter, LIT_TINY_GPU=1 or 0 to override the GPU detection.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${1:-}
SPEC="."
[ -n "$EXTRAS" ] && SPEC=".[$EXTRAS]"

if [ -z "${LIT_TINY_GPU:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then LIT_TINY_GPU=1; else LIT_TINY_GPU=0; fi
fi

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "lit_tiny needs Python >= 3.10"'
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip

if [ "$LIT_TINY_GPU" = "1" ]; then
  echo "Installing lit_tiny$([ -n "$EXTRAS" ] && echo "[$EXTRAS]") for GPU into $VENV ..."
  "${PIP[@]}" install -e "$SPEC"
else
  echo "Installing lit_tiny$([ -n "$EXTRAS" ] && echo "[$EXTRAS]") for CPU into $VENV ..."
  "${PIP[@]}" install -c requirements/cpu-constraints.txt -e "$SPEC"
  if "${PIP[@]}" show torchvision >/dev/null 2>&1; then
    "${PIP[@]}" uninstall -y -q torchvision
  fi
fi

"$VENV/bin/python" -c "import torch, lightning, litdata, lit_tiny; print(f'lit_tiny ready: torch {torch.__version__}, lightning {lightning.__version__}, litdata {litdata.__version__}')"
