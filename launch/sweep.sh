#!/usr/bin/env bash
# Start NUM_WORKERS Optuna workers on one study (melodygan_jax/training/sweep.py).
#
#   NUM_WORKERS=2 bash launch/sweep.sh configs/vqvae.py sweeps/vqvae \
#       --config.data.dataset_dir=data/ --config.train.num_steps=2000
#
# Locally the workers share SWEEP_DIR/optuna.journal; on a GPU box each gets
# one GPU in turn. On several machines run this on every host (one worker
# each) with SWEEP_DIR on storage they share (the journal) or with
# STORAGE=postgresql://user@dbhost/optuna (password in PGPASSWORD or ~/.pgpass);
# on a TPU slice:
#   gcloud compute tpus tpu-vm ssh $TPU_NAME --zone=$ZONE --worker=all --command \
#       "cd melodygan-jax && bash launch/sweep.sh configs/vqvae.py /mnt/shared/sweeps/vqvae ..."
# Each worker trains whole trials on its own host's devices. Run it again to
# add workers or to finish a stopped sweep. Environment: NUM_WORKERS (1),
# NUM_TRIALS (20), STUDY_NAME (basename of SWEEP_DIR), STORAGE.
set -euo pipefail
config="${1:?config file}"; sweep_dir="${2:?sweep folder}"; shift 2
num_workers="${NUM_WORKERS:-1}"
study_name="${STUDY_NAME:-$(basename "$sweep_dir")}"
if [[ -n "${STORAGE:-}" ]]; then
  export MELODYGAN_SWEEP_STORAGE="$STORAGE"  # Not a flag: the URL stays out of logs.
fi
num_gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  num_gpus="$(nvidia-smi --list-gpus | wc -l)"
fi
mkdir -p "$sweep_dir"
pids=()
for ((worker = 0; worker < num_workers; worker++)); do
  gpu_env=()
  if (( num_gpus > 1 && num_workers > 1 )); then
    gpu_env=(CUDA_VISIBLE_DEVICES="$((worker % num_gpus))")
  fi
  env "${gpu_env[@]}" TF_CPP_MIN_LOG_LEVEL=2 python -m melodygan_jax.sweep \
      --config="$config" --workdir="$sweep_dir" --study_name="$study_name" \
      --num_trials="${NUM_TRIALS:-20}" "$@" \
      >"$sweep_dir/worker_$(hostname)_$worker.log" 2>&1 &
  pids+=("$!")
  echo "worker $worker: pid ${pids[-1]}, log $sweep_dir/worker_$(hostname)_$worker.log"
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
# Every worker prints the table and writes the results; show the last one's.
tail -n 40 "$sweep_dir/worker_$(hostname)_$((num_workers - 1)).log" | grep -v -e '^I[0-9]' -e '^W[0-9]'
exit "$status"
