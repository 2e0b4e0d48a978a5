#!/usr/bin/env bash
# The evaluation records of a model card, under the kept classifier of its dataset
# (bench/classifiers/<data>.safetensors), N = 1000, seed 0, appended as JSON lines to OUT:
# the reference points (1000 held-out images and their VQGAN reconstructions), samples (class
# chains: balanced with guidance 1.5 and 2, without guidance, and the null class; segmentation chains:
# on the held-out maps of DATA-segmentation, without guidance and with 2; a chain shipped with a
# guide: with its default autoguidance and without, --guidance 1) and upper-half completions of 1000
# held-out images (likewise). Then: imagebart chain card --manifest … --metrics OUT.
#
#   scripts/card-metrics.sh MODEL_DIR DATA OUT.jsonl      e.g. models/mnist mnist models/mnist/metrics.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 3 ] || { sed -n 2,8p "$0" >&2; exit 2; }
model=$1 data=$2 out=$3
classifier=bench/classifiers/$data.safetensors
[ -f "$classifier" ] || { echo "no kept classifier for $data ($classifier)" >&2; exit 2; }
ib() { node dist/src/cli/main.js "$@"; }
common=(--chain "$model" --classifier "$classifier" --count 1000 --seed 0 --log "$out")

ib eval reference "${common[@]}" --data "$data"
if grep -q '"kind": "class"' "$model/chain.json"; then
  for g in 1.5 2; do ib eval samples "${common[@]}" --guidance "$g"; done
  ib eval samples "${common[@]}"
  ib eval samples "${common[@]}" --class null
  ib eval completion "${common[@]}" --data "$data" --mask upper-half --class label --guidance 1.5
elif grep -q '"kind": "segmentation"' "$model/chain.json"; then
  # conditioned on the held-out label maps of DATA-segmentation (the record adds their mean IoU)
  ib eval samples "${common[@]}" --data "$data-segmentation"
  if grep -q '"nullable": true' "$model/chain.json"; then ib eval samples "${common[@]}" --data "$data-segmentation" --guidance 2; fi
else
  ib eval samples "${common[@]}"
  ib eval completion "${common[@]}" --data "$data" --mask upper-half
  if grep -q '"guide"' "$model/chain.json"; then
    ib eval samples "${common[@]}" --guidance 1
    ib eval completion "${common[@]}" --data "$data" --mask upper-half --guidance 1
  fi
fi
