#!/usr/bin/env bash
# The main job: set everything up, train the bigram on Tiny Shakespeare, print a sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Use the shared offline corpora when they sit beside the checkout; otherwise bigramlm
# looks in its user cache and then downloads Tiny Shakespeare (checked by sha256).
if [ -z "${BIGRAMLM_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export BIGRAMLM_DATA_DIR="$(cd ../shared/data && pwd)"
fi
OUT=${OUT:-runs/shakespeare-bigram}
.venv/bin/bigramlm train --data tinyshakespeare --model bigram --method sgd --out "$OUT" --overwrite "$@"
echo
.venv/bin/bigramlm sample "$OUT" --tokens 500 --seed 1337
