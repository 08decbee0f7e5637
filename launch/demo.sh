#!/usr/bin/env bash
# The whole pipeline on the built-in demo corpus, on this machine's CPU or GPU.
# Usage: bash launch/demo.sh [DEMO_DIR]   (default: demo/)
set -euo pipefail
DEMO_DIR="${1:-demo}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

echo "== 1/2 build the demo corpus"
python -m data_prep.demo_corpus --output_dir="$DEMO_DIR/corpus"

echo "== 2/2 prepare the data set"
python -m data_prep.prepare --input_dir="$DEMO_DIR/corpus/songs" --output_dir="$DEMO_DIR/data"
