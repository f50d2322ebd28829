#!/usr/bin/env bash
# Set everything up, type-check the package and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${BIGRAMLM_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export BIGRAMLM_DATA_DIR="$(cd ../shared/data && pwd)"
fi
# The type check first ([tool.mypy] in pyproject.toml: src/bigramlm): seconds, and a type error fails here.
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
