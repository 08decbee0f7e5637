#!/usr/bin/env bash
# The whole pipeline on the built-in demo corpus, on this machine's CPU or GPU
# (a few minutes on a 2-core laptop CPU).
# Usage: bash launch/demo.sh [DEMO_DIR]   (default: demo/)
set -euo pipefail
DEMO_DIR="${1:-demo}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# Output filters. grep exits 1 when no line matches, which under pipefail would
# fail a stage that succeeded; only grep's own errors (2) count. A stage that
# fails still fails the pipeline: pipefail reports the python's status.
keep() { grep "$@" || [ "$?" -eq 1 ]; }
quiet() { keep -v -e 'absl::InitializeLog' -e 'oneDNN custom operations' -e "backend 'tpu'"; }

echo "== 1/6 build the demo corpus"
python -m data_prep.demo_corpus --output_dir="$DEMO_DIR/corpus"

echo "== 2/6 prepare the data set"
python -m data_prep.prepare --input_dir="$DEMO_DIR/corpus/songs" --output_dir="$DEMO_DIR/data" 2>&1 | quiet

echo "== 3/6 train the tiny VQ-VAE"
python -m melodygan_jax.train --config=configs/vqvae_tiny.py --workdir="$DEMO_DIR/vqvae" \
    --config.data.dataset_dir="$DEMO_DIR/data" 2>&1 | quiet | keep -e 'eval at' -e 'step [0-9]*/' -e 'rror'

echo "== 4/6 train the tiny latent GAN"
python -m melodygan_jax.train --config=configs/gan_tiny.py --workdir="$DEMO_DIR/gan" \
    --config.vqvae_workdir="$DEMO_DIR/vqvae" 2>&1 | quiet | keep -e 'eval at' -e 'step [0-9]*/' -e 'rror'

echo "== 5/6 evaluate (validation split)"
python -m melodygan_jax.evaluate --vqvae_workdir="$DEMO_DIR/vqvae" --gan_workdir="$DEMO_DIR/gan" \
    --data_dir="$DEMO_DIR/data" --output="$DEMO_DIR/metrics.json" 2>&1 | quiet | keep -v '^{'

echo "== 6/6 sample"
python -m melodygan_jax.sample --workdir="$DEMO_DIR/gan" --output_dir="$DEMO_DIR/samples" \
    --num_samples=4 --seconds=8 2>&1 | quiet | keep -v -e '^sample:' -e 'I[0-9]'
