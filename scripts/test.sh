#!/usr/bin/env bash
# Set everything up, type-check the package and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The PostgreSQL tests start a throwaway server from the installed binaries (tests/pg_cluster.py);
# install Debian's server where it is missing (root only: elsewhere they skip, and say so).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "note: PostgreSQL's server is not installed (apt-get install postgresql): its tests will skip" >&2
  fi
fi
if [ -z "${BIGRAMLM_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export BIGRAMLM_DATA_DIR="$(cd ../shared/data && pwd)"
fi
# The type check first ([tool.mypy] in pyproject.toml: src/bigramlm): seconds, and a type error fails here.
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
