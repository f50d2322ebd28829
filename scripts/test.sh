#!/usr/bin/env bash
# Set everything up, type-check the package and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The services the tests use, from Debian where they are missing (root only: elsewhere their
# tests skip, and this says so; in CI a skipped test fails, see tests/conftest.py): Chromium for
# the browser tests (Playwright cannot download browsers here), PostgreSQL's server for the
# team's store (tests/pg_cluster.py starts a throwaway one from its binaries), nginx and openssl
# for the reverse-proxy deployments (tests/test_server_deploy.py, tests/test_team_postgresql.py),
# Request Tracker 5 for the helpdesk connector (tests/test_helpdesk_rt.py).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Request Tracker 5 for the helpdesk connector's end-to-end test (tests/rt_server.py runs its
# standalone server on loopback with a throwaway SQLite database; about 90 s to install).
[ -x /usr/share/request-tracker5/libexec/rt-server ] || missing+=(request-tracker5 rt5-db-sqlite rt5-standalone)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # The packages' own services (a PostgreSQL cluster on 5432, nginx on port 80) are not
    # started: the tests run their own on loopback. policy-rc.d's exit 101 is Debian's "deny".
    deny_start=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && deny_start=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    if [ -n "$deny_start" ]; then rm -f /usr/sbin/policy-rc.d; fi
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
