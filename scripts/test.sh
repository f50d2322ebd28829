#!/usr/bin/env bash
# Set everything up, type-check the package and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The services the tests use, from Debian where they are missing (root only: elsewhere their
# tests skip, and this says so): Chromium for the browser tests (Playwright cannot download
# browsers here), PostgreSQL's server for the team's store (tests/pg_cluster.py starts a
# throwaway one from its binaries).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} not installed (apt-get install ${missing[*]}): those tests will skip" >&2
  fi
fi
if [ -z "${BIGRAMLM_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export BIGRAMLM_DATA_DIR="$(cd ../shared/data && pwd)"
fi
# The type check first ([tool.mypy] in pyproject.toml: src/bigramlm): seconds, and a type error fails here.
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
