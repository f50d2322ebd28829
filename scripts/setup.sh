#!/usr/bin/env bash
# Create .venv (once) and install bigramlm with its pinned dependencies into it.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch==2.13.0 is pinned: an unpinned torch would pull GBs of CUDA wheels.
.venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
