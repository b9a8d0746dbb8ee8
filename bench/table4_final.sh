#!/usr/bin/env bash
# Table 4's classic methods on the test splits, one line each appended to bench/results/table4.jsonl.
# Bacterial: train on the first N of 001-100, test 101-200. Nuclei: the recorded 50/50 split.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
m="$py bench/table4_measure.py"
$m lecount bacterial --n 32 --eval test --log
$m lecount nuclei --eval test --log
$m ledetect bacterial --n 32 --eval test --log
$m ledetect nuclei --eval test --log
$m lecount bacterial --n 50 --eval test --log
$m lecount bacterial --n 100 --eval test --log
