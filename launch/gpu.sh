#!/usr/bin/env bash
# Train on GPUs: one host with several GPUs, or several hosts under SLURM.
#
#   bash launch/gpu.sh setup                        # pip install -e '.[cuda12]' (CUDA=13: '.[cuda13]')
#   bash launch/gpu.sh local configs/vqvae.py runs/vqvae --config.data.dataset_dir=data/
#   sbatch --nodes=4 --gpus-per-node=8 --wrap \
#       "bash launch/gpu.sh slurm configs/vqvae.py /shared/runs/vqvae --config.data.dataset_dir=/shared/data"
#   COORDINATOR_ADDRESS=host0:1234 NUM_PROCESSES=2 PROCESS_ID=0 \
#       bash launch/gpu.sh hosts configs/vqvae.py /shared/runs/vqvae   # on each host, PROCESS_ID=0..N-1
#
# `local` runs one process that sees every GPU of this host (JAX drives them
# all; the batch is split over them). `slurm` runs inside an allocation: srun
# starts one process per node and --jax_distributed reads the SLURM variables
# to join them. `hosts` is for machines without a scheduler: start it on every
# host with its PROCESS_ID. With several hosts the workdir and data set must be
# storage every host sees at the same path (NFS, or gs://). SIGTERM (scancel,
# a preempted VM) makes every process save at the same step and exit; running
# the same command again resumes. Hyperparameters belong in the config.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  cat <<'EOF2'
Commands: setup | local|slurm|hosts CONFIG WORKDIR [--config.X=Y ...]
Variables: PYTHON (default .venv/bin/python); setup: CUDA (12 or 13, default 12);
  hosts: COORDINATOR_ADDRESS, NUM_PROCESSES, PROCESS_ID; slurm: the allocation's SLURM_JOB_ID and SLURM_NNODES.
EOF2
}
case "${1:-}" in
  -h|--help|help) usage; exit 0 ;;
  '') usage >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-.venv/bin/python}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
missing=0
require() {  # require NAME WHAT: one line for each missing variable.
  if [ -z "${!1:-}" ]; then
    echo "gpu.sh: set $1 ($2)" >&2
    missing=1
  fi
}
need_run_args() {
  if [ "$#" -lt 2 ]; then
    echo "gpu.sh: give CONFIG and WORKDIR (e.g. configs/vqvae.py runs/vqvae)" >&2
    exit 2
  fi
}

command="$1"
shift
case "$command" in
  setup)
    # The extra pins JAX with the flax/optax/orbax releases that run on it.
    "$PYTHON" -m pip install -q -e ".[cuda${CUDA:-12}]"
    "$PYTHON" -m melodygan_jax.doctor || true  # Prints the devices, and any problem as one line.
    ;;
  local)
    need_run_args "$@"
    config="$1" workdir="$2"
    shift 2
    exec "$PYTHON" -m melodygan_jax.train --config="$config" --workdir="$workdir" "$@"
    ;;
  slurm)
    need_run_args "$@"
    require SLURM_JOB_ID "run inside an allocation: sbatch or salloc"
    require SLURM_NNODES "run inside an allocation: sbatch or salloc"
    [ "$missing" = 0 ] || exit 2
    config="$1" workdir="$2"
    shift 2
    exec srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
        "$PYTHON" -m melodygan_jax.train --config="$config" --workdir="$workdir" \
        --jax_distributed "$@"
    ;;
  hosts)
    need_run_args "$@"
    require COORDINATOR_ADDRESS "HOST:PORT of process 0, the same on every host"
    require NUM_PROCESSES "how many hosts take part"
    require PROCESS_ID "this host's index, 0 to NUM_PROCESSES-1"
    [ "$missing" = 0 ] || exit 2
    config="$1" workdir="$2"
    shift 2
    exec "$PYTHON" -m melodygan_jax.train --config="$config" --workdir="$workdir" \
        --coordinator_address="$COORDINATOR_ADDRESS" --num_processes="$NUM_PROCESSES" \
        --process_id="$PROCESS_ID" "$@"
    ;;
  *) echo "gpu.sh: unknown command '$command' (setup, local, slurm or hosts; see --help)" >&2; exit 2 ;;
esac
