#!/usr/bin/env bash
# The main job: set everything up, train the bigram on Tiny Shakespeare and print a sample;
# then train the support assistant on the Bitext sample within a short budget, ask it about
# two customer messages, and say how to open the agent desk.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Use the shared offline corpora when they sit beside the checkout; otherwise bigramlm
# looks in its user cache and then downloads the corpora (checked by sha256).
if [ -z "${BIGRAMLM_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export BIGRAMLM_DATA_DIR="$(cd ../shared/data && pwd)"
fi
BIGRAMLM=.venv/bin/bigramlm

OUT=${OUT:-runs/shakespeare-bigram}
$BIGRAMLM train --data tinyshakespeare --model bigram --method sgd --out "$OUT" --overwrite "$@"
echo
$BIGRAMLM sample "$OUT" --tokens 500 --seed 1337
echo

# The support assistant. The full recipe takes 20 minutes (--time-limit 1200, the
# default); the demo gives it SUPPORT_BUDGET seconds (240 by default), which buys a small
# GPT: its replies are rougher than the full recipe's, its understanding the same.
SUPPORT_DATA=${SUPPORT_DATA:-}
if [ -z "$SUPPORT_DATA" ] && [ -f "${BIGRAMLM_DATA_DIR:-}/bitext/bitext-sample.csv" ]; then
  SUPPORT_DATA="$BIGRAMLM_DATA_DIR/bitext/bitext-sample.csv"
fi
SUPPORT_DATA=${SUPPORT_DATA:-bitext}
SUPPORT_OUT=${SUPPORT_OUT:-runs/support-demo}
echo "== training the support assistant on $SUPPORT_DATA for ${SUPPORT_BUDGET:-240} s =="
$BIGRAMLM train --data "$SUPPORT_DATA" --recipe support --time-limit "${SUPPORT_BUDGET:-240}" \
  --out "$SUPPORT_OUT" --overwrite --no-progress
# A sample brand profile ("Acme"), so the suggestions read as a company's rather than
# as {{Slot}} templates; kept if it is there already (you may have made it yours).
BRAND=${SUPPORT_BRAND:-$SUPPORT_OUT-brand.toml}
[ -f "$BRAND" ] || cp src/bigramlm/resources/sample-brand.toml "$BRAND"
echo "== brand profile: $BRAND (sample values: edit them, or start from \`$BIGRAMLM brand init\`) =="
for message in "I want to cancel the order I placed yesterday" "my money never came back after I sent the parcel back"; do
  echo
  echo "== assist: \"$message\" =="
  $BIGRAMLM assist "$SUPPORT_OUT" "$message" --n 3 --max-tokens 200 --seed 0 --brand "$BRAND"
done
echo
echo "Open the agent desk on this run with:"
echo "  $BIGRAMLM serve $SUPPORT_OUT --brand $BRAND        # then http://127.0.0.1:8000/"
