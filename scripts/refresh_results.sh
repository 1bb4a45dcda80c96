#!/usr/bin/env bash
# Regenerate every committed result that is derived from the committed feature tables, in the
# order they depend on each other: the transfer evaluation, the shipped `selected` file fitted on
# the candidate it selected, the two sample-size benchmarks and the lockbox run. Run it after a
# table of the corpus changed; tests pin each result to the tables' digests. Up to an hour on
# 2 cores. `--no-lockbox` leaves results/lockbox.json as it is (the lockbox run is most of the
# hour: 51 min while another evaluation shared the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
step() { echo "$(date +%T) $*"; }

step "1/5 demogen evaluate -> results/evaluate.json"
.venv/bin/demogen evaluate --out results/evaluate.json
selected=$($py -c 'import json; print(json.load(open("results/evaluate.json"))["selected"])')
step "2/5 demogen fit --candidate $selected -> demogen/frozen/resources/selected.json"
.venv/bin/demogen fit --candidate "$selected" features_cache/corpus.csv --out demogen/frozen/resources/selected.json
step "3/5 benchmarks/train_accuracy_sample.py -> results/train_accuracy_sample.json"
$py benchmarks/train_accuracy_sample.py --out results/train_accuracy_sample.json
step "4/5 benchmarks/budget_curve.py -> results/budget_curve.json, .png"
$py benchmarks/budget_curve.py --out results/budget_curve.json
if [ "${1:-}" = "--no-lockbox" ]; then
  step "5/5 lockbox: skipped"
else
  step "5/5 demogen evaluate --lockbox -> results/lockbox.json"
  .venv/bin/demogen evaluate --lockbox --out results/lockbox.json
fi
step "done: review git diff, then update the figures the docs quote"
