#!/usr/bin/env bash
# An Optuna sweep of a config; run it again (or on several machines sharing
# SWEEP_DIR) to add trials to the same study.
#
#   bash launch/sweep.sh configs/vqvae.py sweeps/vqvae --config.data.dataset_dir=data/
set -euo pipefail
config="${1:?config file}"; sweep_dir="${2:?sweep folder}"; shift 2
study_name="${STUDY_NAME:-$(basename "$sweep_dir")}"
TF_CPP_MIN_LOG_LEVEL=2 python -m melodygan_jax.sweep --config="$config" --workdir="$sweep_dir" \
    --study_name="$study_name" --num_trials="${NUM_TRIALS:-20}" \
    --trial_steps="${TRIAL_STEPS:-2000}" "$@"
