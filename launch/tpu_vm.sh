#!/usr/bin/env bash
# Train on a Cloud TPU VM (one host or a multi-host pod slice).
#
#   TPU_NAME=melody ZONE=us-central2-b ACCELERATOR_TYPE=v4-32 bash launch/tpu_vm.sh create
#   TPU_NAME=melody ZONE=us-central2-b bash launch/tpu_vm.sh setup
#   TPU_NAME=melody ZONE=us-central2-b bash launch/tpu_vm.sh run configs/vqvae.py /mnt/runs/vqvae \
#       --config.data.dataset_dir=/mnt/data
#   TPU_NAME=melody ZONE=us-central2-b bash launch/tpu_vm.sh delete
#
# `run` starts the same command on every host (--worker=all) with
# --jax_distributed, so one mesh spans all chips. WORKDIR and the data set must
# be on storage every host sees at the same path (a Filestore/NFS or GCS-FUSE
# mount): Orbax writes one checkpoint from all hosts, and each host reads its
# own share of the shards. Hyperparameters belong in the config, not here.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v4-8}"
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
REPO_URL="${REPO_URL:-$(git config --get remote.origin.url || true)}"
REMOTE_DIR="${REMOTE_DIR:-melodygan-jax}"

ssh_all() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="$1"
}

case "${1:-}" in
  create)
    gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" \
        --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION"
    ;;
  setup)
    : "${REPO_URL:?set REPO_URL (the git URL of this repository)}"
    ssh_all "set -e; [ -d $REMOTE_DIR ] || git clone $REPO_URL $REMOTE_DIR; cd $REMOTE_DIR; \
        git pull --ff-only; python3 -m venv .venv; .venv/bin/pip install -q -U pip; \
        .venv/bin/pip install -q -e . && .venv/bin/pip install -q -U 'jax[tpu]'"
    ;;
  run)
    config="${2:?config file}"; workdir="${3:?workdir}"; shift 3
    ssh_all "cd $REMOTE_DIR && TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m melodygan_jax.train \
        --config=$config --workdir=$workdir --jax_distributed $*"
    ;;
  delete)
    gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" --quiet
    ;;
  *)
    echo "usage: $0 create|setup|run CONFIG WORKDIR [--config.X=Y ...]|delete" >&2
    exit 2
    ;;
esac
