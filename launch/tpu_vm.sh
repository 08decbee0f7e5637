#!/usr/bin/env bash
# Train on a Cloud TPU VM slice (one host or many), in the background.
#
#   TPU_NAME=melody ZONE=us-central2-b ACCELERATOR_TYPE=v4-32 bash launch/tpu_vm.sh create
#   TPU_NAME=melody ZONE=us-central2-b REPO_URL=<git url> bash launch/tpu_vm.sh setup
#   TPU_NAME=melody ZONE=us-central2-b bash launch/tpu_vm.sh run configs/vqvae.py \
#       gs://bucket/runs/vqvae --config.data.dataset_dir=gs://bucket/data
#   TPU_NAME=melody ZONE=us-central2-b bash launch/tpu_vm.sh logs [WORKER]
#   TPU_NAME=melody ZONE=us-central2-b bash launch/tpu_vm.sh supervise configs/vqvae.py \
#       gs://bucket/runs/vqvae --config.data.dataset_dir=gs://bucket/data
#   TPU_NAME=melody ZONE=us-central2-b bash launch/tpu_vm.sh delete
#
# `run` starts the same command on every worker (--worker=all) with
# --jax_distributed, detached (nohup), each writing ~/melodygan-logs/RUN.log on
# its worker; `logs` tails one worker's log. WORKDIR and the data set must be
# storage every worker sees at the same path (gs://, or an NFS/GCS-FUSE mount):
# Orbax writes one checkpoint from all hosts and each host reads its own share
# of the shards. `supervise` keeps a spot (SPOT=1) or queued-resource
# (QUEUED_RESOURCE=1) slice training: when the slice is preempted or gone it
# recreates it, sets it up and runs again, which resumes from the last
# checkpoint in WORKDIR; it returns when the run has finished. Hyperparameters
# belong in the config, not here.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  cat <<'EOF'
Commands: create | setup | run CONFIG WORKDIR [--config.X=Y ...] | logs [WORKER] | status
          | stop | supervise CONFIG WORKDIR [--config.X=Y ...] | delete
Variables: TPU_NAME, ZONE (always); ACCELERATOR_TYPE (default v4-8), RUNTIME_VERSION
  (default tpu-ubuntu2204-base), SPOT=1, QUEUED_RESOURCE=1 (create); REPO_URL (setup,
  default: this checkout's origin); REMOTE_DIR (default melodygan-jax); RUN_NAME (log
  name, default: the workdir's last part); POLL_S (supervise, default 120).
EOF
}

case "${1:-}" in
  -h|--help|help) usage; exit 0 ;;
  '') usage >&2; exit 2 ;;
esac

missing=0
require() {  # require NAME WHAT: one line for each missing variable.
  if [ -z "${!1:-}" ]; then
    echo "tpu_vm.sh: set $1 ($2)" >&2
    missing=1
  fi
}
require TPU_NAME "the TPU VM's name, e.g. TPU_NAME=melody"
require ZONE "its zone, e.g. ZONE=us-central2-b"
[ "$missing" = 0 ] || exit 2
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v4-8}"
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
REMOTE_DIR="${REMOTE_DIR:-melodygan-jax}"
POLL_S="${POLL_S:-120}"
# shellcheck disable=SC2016  # Expanded on the workers, not here.
LOG_DIR='$HOME/melodygan-logs'

ssh_workers() {  # ssh_workers WORKER COMMAND
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker="$1" --command="$2"
}

create() {
  local spot=()
  [ "${SPOT:-0}" = 1 ] && spot=(--spot)
  if [ "${QUEUED_RESOURCE:-0}" = 1 ]; then
    gcloud compute tpus queued-resources create "$TPU_NAME" --node-id="$TPU_NAME" \
        --zone="$ZONE" --accelerator-type="$ACCELERATOR_TYPE" \
        --runtime-version="$RUNTIME_VERSION" "${spot[@]}"
    until [ "$(state)" = READY ]; do sleep 30; done
  else
    gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" \
        --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" "${spot[@]}"
  fi
}

delete() {
  if [ "${QUEUED_RESOURCE:-0}" = 1 ]; then
    gcloud compute tpus queued-resources delete "$TPU_NAME" --zone="$ZONE" --force --quiet || true
  else
    gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" --quiet || true
  fi
}

state() {  # READY, PREEMPTED, CREATING, ... or MISSING.
  gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone="$ZONE" --format='value(state)' \
      2>/dev/null || echo MISSING
}

setup() {
  local repo_url="${REPO_URL:-$(git config --get remote.origin.url || true)}"
  if [ -z "$repo_url" ]; then
    echo "tpu_vm.sh: set REPO_URL (the git URL of this repository; no origin remote here)" >&2
    exit 2
  fi
  # The [tpu] extra pins JAX (and so libtpu) with the flax/optax/orbax releases
  # that run on it; an unpinned jax[tpu] upgrade would move past them.
  ssh_workers all "set -e; [ -d $REMOTE_DIR ] || git clone $repo_url $REMOTE_DIR; \
      cd $REMOTE_DIR; git pull --ff-only; python3 -m venv .venv; \
      .venv/bin/pip install -q -U pip; .venv/bin/pip install -q -e '.[tpu]'"
}

run_name() { basename "${RUN_NAME:-$1}"; }

start() {  # start CONFIG WORKDIR [overrides]: detached on every worker.
  local config="$1" workdir="$2" name
  shift 2
  name="$(run_name "$workdir")"
  local log="$LOG_DIR/$name.log"
  # The done marker tells `supervise` that the run finished (exit 0 at num_steps).
  ssh_workers all "mkdir -p $LOG_DIR; rm -f $log.done; cd $REMOTE_DIR && \
      (TF_CPP_MIN_LOG_LEVEL=2 nohup .venv/bin/python -m melodygan_jax.train \
      --config=$config --workdir=$workdir --jax_distributed $* >$log 2>&1 \
      && touch $log.done) >/dev/null 2>&1 </dev/null &"
  echo "started on every worker; follow with: $0 logs [WORKER]  (log: ~/melodygan-logs/$name.log)"
}

running() {  # Whether worker 0 still runs a train process.
  ssh_workers 0 "pgrep -f melodygan_jax.train >/dev/null" >/dev/null 2>&1
}

finished() {  # finished NAME: worker 0 wrote the done marker.
  ssh_workers 0 "test -e $LOG_DIR/$1.log.done" >/dev/null 2>&1
}

command="$1"
shift
case "$command" in
  create) create ;;
  setup) setup ;;
  run)
    [ $# -ge 2 ] || { echo "tpu_vm.sh run: give CONFIG and WORKDIR" >&2; exit 2; }
    start "$@"
    ;;
  logs)
    if [ -n "${RUN_NAME:-}" ]; then log="$LOG_DIR/$(basename "$RUN_NAME").log"
    else log="\$(ls -t $LOG_DIR/*.log | head -1)"; fi  # The newest run's.
    ssh_workers "${1:-0}" "tail -n 100 -f $log"
    ;;
  status)
    echo "slice: $(state)"
    if running; then echo "training: running"; else echo "training: not running"; fi
    ;;
  stop) ssh_workers all "pkill -TERM -f melodygan_jax.train || true" ;;  # SIGTERM: save, then exit.
  supervise)
    [ $# -ge 2 ] || { echo "tpu_vm.sh supervise: give CONFIG and WORKDIR" >&2; exit 2; }
    name="$(run_name "$2")"
    while true; do
      case "$(state)" in
        READY)
          if finished "$name"; then echo "finished: $2"; exit 0; fi
          running || start "$@"
          ;;
        PREEMPTED|TERMINATED|MISSING|FAILED|SUSPENDED)
          echo "$(date -u +%FT%TZ) slice $(state): recreating it; the run resumes from its last checkpoint"
          delete
          create
          setup
          start "$@"
          ;;
        *) ;;  # CREATING, STARTING, REPAIRING...: wait.
      esac
      sleep "$POLL_S"
    done
    ;;
  delete) delete ;;
  *) echo "tpu_vm.sh: unknown command '$command' (see --help)" >&2; exit 2 ;;
esac
